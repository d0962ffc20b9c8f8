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
   * there (nothing is taken then).
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
    if (bucket.tokens >= n) {
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
