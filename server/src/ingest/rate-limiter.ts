// Per-tenant token buckets for ingest. In memory per process (DESIGN.md: the only per-process
// state), with an injected clock; limits come from the tenant row and are re-read now and then.

export interface Limit {
  perSecond: number;
  burst: number;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
  limit: Limit;
  limitReadMs: number;
}

export class RateLimiter {
  readonly #buckets = new Map<string, Bucket>();
  readonly #limitOf: (tenantId: string) => Promise<Limit>;
  readonly #now: () => number;
  readonly #refreshMs: number;

  constructor(limitOf: (tenantId: string) => Promise<Limit>, options: { now?: () => number; refreshMs?: number } = {}) {
    this.#limitOf = limitOf;
    this.#now = options.now ?? Date.now;
    this.#refreshMs = options.refreshMs ?? 10_000;
  }

  /**
   * Takes n tokens. Returns 0 when allowed, else how many milliseconds until n tokens would be
   * there (nothing is taken then). A request for more than the burst (a big batch) can never find
   * n tokens, so it goes through when the bucket is full and leaves it in debt: the long-run rate
   * still holds, and the retry delay it answers is one that can succeed.
   */
  async take(tenantId: string, n = 1): Promise<number> {
    const now = this.#now();
    let bucket = this.#buckets.get(tenantId);
    if (!bucket || now - bucket.limitReadMs > this.#refreshMs) {
      const limit = await this.#limitOf(tenantId);
      bucket = this.#buckets.get(tenantId) ?? { tokens: limit.burst, updatedMs: now, limit, limitReadMs: now };
      bucket.limit = limit;
      bucket.limitReadMs = now;
      this.#buckets.set(tenantId, bucket);
    }
    const { perSecond, burst } = bucket.limit;
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.updatedMs) / 1000) * perSecond);
    bucket.updatedMs = now;
    if (bucket.tokens >= Math.min(n, burst)) {
      bucket.tokens -= n;
      return 0;
    }
    const missing = Math.min(n, burst) - bucket.tokens;
    return Math.max(1, Math.ceil((missing / perSecond) * 1000));
  }

  /** Forget a tenant's limit so the next request reads the new one. */
  invalidate(tenantId: string): void {
    const bucket = this.#buckets.get(tenantId);
    if (bucket) bucket.limitReadMs = -Infinity;
  }
}
