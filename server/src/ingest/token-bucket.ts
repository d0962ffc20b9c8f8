// A token bucket: `burst` tokens, refilled at `perSecond`. Pure, with the time passed in; time
// never runs backwards for a bucket, so a caller that read the clock before an await (and comes
// back after a later caller) cannot drain tokens it never had.

export interface Limit {
  perSecond: number;
  burst: number;
}

export class TokenBucket {
  #tokens: number;
  #updatedMs: number;

  constructor(limit: Limit, nowMs: number) {
    this.#tokens = limit.burst;
    this.#updatedMs = nowMs;
  }

  /** Adds what the time since the last look earned, capped by the (possibly new) burst. */
  #refill(limit: Limit, nowMs: number): void {
    const elapsedMs = Math.max(0, nowMs - this.#updatedMs);
    this.#tokens = Math.min(limit.burst, this.#tokens + (elapsedMs / 1000) * limit.perSecond);
    this.#updatedMs = Math.max(this.#updatedMs, nowMs);
  }

  /**
   * Takes n tokens. Returns 0 when allowed, else how many milliseconds until n tokens would be
   * there (nothing is taken then). A request for more than the burst (a big batch) can never find
   * n tokens, so it goes through when the bucket is full and leaves it in debt: the long-run rate
   * still holds, and the retry delay it answers is one that can succeed.
   */
  take(limit: Limit, n: number, nowMs: number): number {
    this.#refill(limit, nowMs);
    const need = Math.min(n, limit.burst);
    if (this.#tokens >= need) {
      this.#tokens -= n;
      return 0;
    }
    return Math.max(1, Math.ceil(((need - this.#tokens) / limit.perSecond) * 1000));
  }

  /** Milliseconds until one token is there (0: now), taking nothing. */
  waitForOne(limit: Limit, nowMs: number): number {
    this.#refill(limit, nowMs);
    return this.#tokens >= 1 ? 0 : Math.max(1, Math.ceil(((1 - this.#tokens) / limit.perSecond) * 1000));
  }

  /** Takes one token even into debt (a cost already incurred). */
  charge(limit: Limit, nowMs: number): void {
    this.#refill(limit, nowMs);
    this.#tokens = Math.max(-limit.burst, this.#tokens - 1);
  }
}
