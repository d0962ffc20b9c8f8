// When to try again. Pure: the clock and the random source are arguments, so the schedule is
// unit-tested exactly. Exponential backoff with full jitter (a uniformly random delay up to
// 1 s · 2^(n-1), capped at 512 s), so retries from many events spread out instead of arriving at
// the destination together.

import type { AttemptOutcome, LocalRefusal } from "./attempt-outcome.ts";

export interface RetryPolicy {
  baseMs: number;
  capMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { baseMs: 1_000, capMs: 512_000 };

export type Decision =
  | { kind: "delivered" }
  | { kind: "retry"; atMs: number }
  | { kind: "failed"; reason: string }
  /** 410 Gone: the destination says it is gone for good. */
  | { kind: "disable"; reason: string };

export interface AttemptResult {
  outcome: AttemptOutcome;
  statusCode: number | undefined;
  /** The Retry-After header, when the destination sent one. */
  retryAfter: string | undefined;
  /** "request": the request could not be written at all (it never will be). */
  refusedLocally?: LocalRefusal | undefined;
}

/** The upper bound of the jittered delay before attempt n+1, after n attempts (n ≥ 1). */
export function backoffCeilingMs(attempt: number, policy: RetryPolicy = DEFAULT_RETRY_POLICY): number {
  return Math.min(policy.capMs, policy.baseMs * 2 ** Math.min(attempt - 1, 40));
}

// RFC 9110 §5.6.7: IMF-fixdate, and the obsolete RFC 850 and asctime forms (asctime has no zone and
// means GMT). Matched before Date.parse, which would otherwise read "1.5" or "-1" as dates in 2001
// and turn a malformed header into an immediate retry.
const DAY = "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)";
const MONTH = "(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)";
const IMF_FIXDATE = new RegExp(`^${DAY}, \\d{2} ${MONTH} \\d{4} \\d{2}:\\d{2}:\\d{2} GMT$`);
const RFC_850 = new RegExp(`^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), \\d{2}-${MONTH}-\\d{2} \\d{2}:\\d{2}:\\d{2} GMT$`);
const ASCTIME = new RegExp(`^${DAY} ${MONTH} [ \\d]\\d \\d{2}:\\d{2}:\\d{2} \\d{4}$`);

/** Parses Retry-After (delta-seconds or an HTTP date) into milliseconds from now; undefined if absent or bad. */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  let date = Number.NaN;
  if (IMF_FIXDATE.test(trimmed) || RFC_850.test(trimmed)) date = Date.parse(trimmed);
  else if (ASCTIME.test(trimmed)) date = Date.parse(`${trimmed} GMT`);
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs);
}

/**
 * Decides what follows an attempt. `attemptInRound` counts attempts since the event was (re)queued;
 * requires attemptInRound ≥ 1 and maxAttempts ≥ 1.
 */
export function decide(
  result: AttemptResult,
  attemptInRound: number,
  maxAttempts: number,
  nowMs: number,
  random: () => number,
  policy: RetryPolicy = DEFAULT_RETRY_POLICY,
): Decision {
  if (result.outcome === "delivered") return { kind: "delivered" };
  if (result.statusCode === 410) return { kind: "disable", reason: "destination answered 410 Gone" };
  // Retrying cannot help: the same stored request would be refused the same way.
  if (result.refusedLocally === "request") return { kind: "failed", reason: "the event's request cannot be sent as HTTP (see the attempt's error)" };
  if (attemptInRound >= maxAttempts) {
    return { kind: "failed", reason: `no success after ${attemptInRound} attempt${attemptInRound === 1 ? "" : "s"}` };
  }
  const ceiling = backoffCeilingMs(attemptInRound, policy);
  let delay = Math.floor(random() * ceiling);
  if (result.statusCode === 429 || result.statusCode === 503) {
    const asked = parseRetryAfter(result.retryAfter, nowMs);
    // Honour the destination's wish, but never past the cap.
    if (asked !== undefined) delay = Math.min(policy.capMs, Math.max(asked, 0));
  }
  return { kind: "retry", atMs: nowMs + delay };
}
