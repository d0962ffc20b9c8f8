// Per-tenant token buckets for ingest. In memory per process (DESIGN.md: the only per-process
// state), with an injected clock; limits come from the tenant row and are re-read now and then.

import { TokenBucket, type Limit } from "./token-bucket.ts";

export type { Limit };

interface Bucket {
  bucket: TokenBucket;
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

  /** Takes n tokens from the tenant's bucket: 0 when allowed, else the milliseconds until n
   * tokens would be there (see TokenBucket.take). */
  async take(tenantId: string, n = 1): Promise<number> {
    let entry = this.#buckets.get(tenantId);
    if (!entry || this.#now() - entry.limitReadMs > this.#refreshMs) {
      const limit = await this.#limitOf(tenantId);
      // The clock is read after the await: a concurrent request may have used the bucket since.
      const now = this.#now();
      entry = this.#buckets.get(tenantId) ?? { bucket: new TokenBucket(limit, now), limit, limitReadMs: now };
      entry.limit = limit;
      entry.limitReadMs = now;
      this.#buckets.set(tenantId, entry);
    }
    return entry.bucket.take(entry.limit, n, this.#now());
  }

  /** Forget a tenant's limit so the next request reads the new one. */
  invalidate(tenantId: string): void {
    const entry = this.#buckets.get(tenantId);
    if (entry) entry.limitReadMs = -Infinity;
  }
}
