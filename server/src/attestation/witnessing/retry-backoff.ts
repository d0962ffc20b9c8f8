// How long a cosigning loop waits after failed exchanges with a witness: doubling from 1 s to a
// 5-minute cap, with jitter so that a log's retries (and many logs' retries to one public witness)
// do not arrive in lockstep. Half the delay is fixed, so a witness that is down is not asked again
// almost at once by an unlucky draw.

export const BACKOFF_FIRST_MS = 1_000;
export const BACKOFF_CAP_MS = 5 * 60_000;

/** Delay before the next try after `failures` consecutive failures. Requires failures ≥ 1. */
export function witnessBackoffMs(failures: number, random: () => number = Math.random): number {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_FIRST_MS * 2 ** Math.min(failures - 1, 30));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
