// When to try a failed unary call again, and after how long: exponential backoff with full jitter
// (the spread that keeps many clients from retrying in lockstep), never sooner than the server's
// RetryInfo asks. Pure functions with an injected random source; the interceptor does the waiting.
import type { KapselError } from "./kapsel-error.ts";

/** Opt-in automatic retries for Unavailable and ResourceExhausted (unary calls only). */
export interface RetryOptions {
  /** Attempts in total, the first included (default 4). */
  maxAttempts?: number;
  /** The backoff ceiling of the first retry; it doubles per retry (default 200 ms). */
  initialDelayMs?: number;
  /** The largest backoff ceiling (default 10 s). */
  maxDelayMs?: number;
  /**
   * The longest server-requested pause (RetryInfo) to honour; when the server asks for more, the
   * error is thrown instead of holding the call that long (default 60 s).
   */
  maxRetryAfterMs?: number;
  /** Called before each pause, e.g. to log or count retries. */
  onRetry?: (event: RetryEvent) => void;
}

export interface RetryEvent {
  /** The attempt that failed, 1-based. */
  attempt: number;
  /** How long the client waits before the next attempt. */
  delayMs: number;
  error: KapselError;
}

export type ResolvedRetryOptions = Required<Omit<RetryOptions, "onRetry">> & Pick<RetryOptions, "onRetry">;

export const DEFAULT_RETRY_OPTIONS: ResolvedRetryOptions = {
  maxAttempts: 4,
  initialDelayMs: 200,
  maxDelayMs: 10_000,
  maxRetryAfterMs: 60_000,
};

/** `true` means the defaults; `false` or undefined means no retries. */
export function resolveRetryOptions(retry: RetryOptions | boolean | undefined): ResolvedRetryOptions | undefined {
  if (retry === undefined || retry === false) return undefined;
  const resolved = { ...DEFAULT_RETRY_OPTIONS, ...(retry === true ? {} : retry) };
  for (const name of ["maxAttempts", "initialDelayMs", "maxDelayMs", "maxRetryAfterMs"] as const) {
    if (!Number.isFinite(resolved[name]) || resolved[name] < 0) throw new RangeError(`retry.${name} must be a finite number >= 0`);
  }
  if (resolved.maxAttempts < 1) throw new RangeError("retry.maxAttempts must be at least 1");
  return resolved;
}

/**
 * The pause before retrying after failed attempt number `attempt` (1-based), or undefined when
 * the call should not be retried: attempts are used up, or the server asked for a longer pause
 * than `maxRetryAfterMs`. Requires `attempt >= 1` and `random()` in [0, 1).
 */
export function retryDelayMs(
  attempt: number,
  options: ResolvedRetryOptions,
  retryAfterMs: number | undefined,
  random: () => number = Math.random,
): number | undefined {
  if (attempt >= options.maxAttempts) return undefined;
  const ceiling = Math.min(options.maxDelayMs, options.initialDelayMs * 2 ** (attempt - 1));
  const jitter = Math.floor(random() * ceiling);
  if (retryAfterMs === undefined) return jitter;
  if (retryAfterMs > options.maxRetryAfterMs) return undefined;
  // The server's pause is a floor; jitter on top spreads clients that were told the same thing.
  return retryAfterMs + jitter;
}
