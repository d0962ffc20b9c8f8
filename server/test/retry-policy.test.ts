// The retry schedule, exactly: the clock and the random source are arguments, so every bound is
// checked without waiting.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { backoffCeilingMs, decide, DEFAULT_RETRY_POLICY, parseRetryAfter, type AttemptResult } from "../src/delivery/retry-policy.ts";

const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);
const failed = (statusCode = 500, retryAfter?: string): AttemptResult => ({ outcome: "http_error", statusCode, retryAfter });
const timeout: AttemptResult = { outcome: "timeout", statusCode: undefined, retryAfter: undefined };
const networkError: AttemptResult = { outcome: "network_error", statusCode: undefined, retryAfter: undefined };
/** A random source that always answers `r`. */
const fixed = (r: number) => () => r;
/** Just below 1, the largest value Math.random() can return. */
const TOP = 1 - Number.EPSILON;

function delayAfter(result: AttemptResult, attempt: number, random: () => number, maxAttempts = 50, policy = DEFAULT_RETRY_POLICY): number {
  const d = decide(result, attempt, maxAttempts, NOW, random, policy);
  if (d.kind !== "retry") throw new Error(`expected a retry, got ${d.kind}`);
  return d.atMs - NOW;
}

describe("exponential backoff with full jitter", () => {
  it("the ceiling starts at 1 s and doubles per attempt up to the 512 s cap", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 30, 1000].map((n) => backoffCeilingMs(n))).toEqual([
      1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 512_000, 512_000, 512_000, 512_000, 512_000,
    ]);
  });

  it("the delay after attempt n is uniformly drawn from [0, ceiling(n)): the random source picks the point", () => {
    for (const n of [1, 2, 5, 10, 11, 20]) {
      const ceiling = backoffCeilingMs(n);
      expect(delayAfter(failed(), n, fixed(0))).toBe(0);
      expect(delayAfter(failed(), n, fixed(0.5))).toBe(ceiling / 2);
      expect(delayAfter(failed(), n, fixed(0.25))).toBe(ceiling / 4);
      expect(delayAfter(failed(), n, fixed(TOP))).toBe(ceiling - 1);
    }
  });

  it("every delay lies in [0, min(512 s, 1 s · 2^(n-1))) for any attempt and any random value", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 49 }), fc.double({ min: 0, max: TOP, noNaN: true }), fc.constantFrom(failed(500), failed(502), timeout, networkError), (n, r, result) => {
        const delay = delayAfter(result, n, fixed(r));
        expect(delay).toBeGreaterThanOrEqual(0);
        expect(delay).toBeLessThan(Math.min(512_000, 1_000 * 2 ** (n - 1)));
        expect(Number.isInteger(delay)).toBe(true);
      }),
    );
  });

  it("a configured base and cap scale the same schedule", () => {
    const policy = { baseMs: 20, capMs: 100 };
    expect([1, 2, 3, 4, 9].map((n) => delayAfter(failed(), n, fixed(TOP), 50, policy))).toEqual([19, 39, 79, 99, 99]);
  });

  it("timeouts and network errors are retried like 5xx", () => {
    expect(decide(timeout, 1, 10, NOW, fixed(0.5)).kind).toBe("retry");
    expect(decide(networkError, 1, 10, NOW, fixed(0.5)).kind).toBe("retry");
    expect(decide(failed(400), 1, 10, NOW, fixed(0.5)).kind).toBe("retry");
    expect(decide(failed(301), 1, 10, NOW, fixed(0.5)).kind).toBe("retry");
  });
});

describe("Retry-After", () => {
  it("on 429 and 503, delta-seconds replace the jittered delay", () => {
    expect(delayAfter(failed(429, "120"), 1, fixed(0))).toBe(120_000);
    expect(delayAfter(failed(503, "7"), 3, fixed(TOP))).toBe(7_000);
    expect(delayAfter(failed(429, "0"), 5, fixed(0.9))).toBe(0);
  });

  it("on 429 and 503, an HTTP date is honoured as the time to wait until", () => {
    const in90s = new Date(NOW + 90_000).toUTCString();
    expect(delayAfter(failed(429, in90s), 1, fixed(0))).toBe(90_000);
    expect(delayAfter(failed(503, in90s), 1, fixed(0))).toBe(90_000);
    // A date in the past means now.
    expect(delayAfter(failed(429, new Date(NOW - 60_000).toUTCString()), 4, fixed(0.5))).toBe(0);
  });

  it("is bounded by the cap, whether seconds or a date", () => {
    expect(delayAfter(failed(429, "100000"), 1, fixed(0))).toBe(512_000);
    expect(delayAfter(failed(429, "999999999999999999999999"), 1, fixed(0))).toBe(512_000);
    expect(delayAfter(failed(503, new Date(NOW + 3_600_000).toUTCString()), 1, fixed(0))).toBe(512_000);
    expect(delayAfter(failed(429, "10"), 1, fixed(0), 50, { baseMs: 20, capMs: 5_000 })).toBe(5_000);
  });

  it("is ignored on other statuses", () => {
    expect(delayAfter(failed(500, "120"), 1, fixed(0.5))).toBe(500);
    expect(delayAfter(failed(502, "120"), 1, fixed(0.5))).toBe(500);
  });

  it("a value that is neither delta-seconds nor an HTTP date falls back to the jittered backoff", () => {
    for (const bad of ["1.5", "-1", "soon", "2026-01-15", " 12 s", "", "0x10"]) {
      expect(parseRetryAfter(bad, NOW), bad).toBeUndefined();
      expect(delayAfter(failed(429, bad), 2, fixed(0.5)), bad).toBe(1_000);
    }
  });

  it("parses the three HTTP date forms of RFC 9110 as GMT", () => {
    const at = Date.UTC(2026, 0, 15, 12, 1, 30);
    expect(parseRetryAfter("Thu, 15 Jan 2026 12:01:30 GMT", NOW)).toBe(at - NOW);
    expect(parseRetryAfter("Thursday, 15-Jan-26 12:01:30 GMT", NOW)).toBe(at - NOW);
    expect(parseRetryAfter("Thu Jan 15 12:01:30 2026", NOW)).toBe(at - NOW);
    expect(parseRetryAfter(" 30 ", NOW)).toBe(30_000);
    expect(parseRetryAfter(undefined, NOW)).toBeUndefined();
  });
});

describe("final outcomes", () => {
  it("2xx is delivered", () => {
    expect(decide({ outcome: "delivered", statusCode: 204, retryAfter: undefined }, 10, 10, NOW, fixed(0.5))).toEqual({ kind: "delivered" });
  });

  it("410 Gone disables the endpoint, on any attempt", () => {
    for (const n of [1, 5, 10]) {
      expect(decide(failed(410), n, 10, NOW, fixed(0.5))).toEqual({ kind: "disable", reason: "destination answered 410 Gone" });
    }
  });

  it("the last allowed attempt failing dead-letters the event; earlier ones retry", () => {
    expect(decide(failed(500), 9, 10, NOW, fixed(0.5)).kind).toBe("retry");
    expect(decide(failed(500), 10, 10, NOW, fixed(0.5))).toEqual({ kind: "failed", reason: "no success after 10 attempts" });
    expect(decide(timeout, 1, 1, NOW, fixed(0.5))).toEqual({ kind: "failed", reason: "no success after 1 attempt" });
    // Retry-After does not buy an attempt past the limit.
    expect(decide(failed(429, "1"), 3, 3, NOW, fixed(0.5)).kind).toBe("failed");
  });
});
