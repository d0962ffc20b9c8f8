// Per-tenant token buckets for ingest. In memory per process (DESIGN.md: the only per-process
// state), with an injected clock; limits come from the tenant row and are re-read now and then.
//
// A limit is read once per tenant however many requests want it at that moment (under a flood,
// one read per request queued thousands of identical queries ahead of the ingest writes on the
// pool). A limit past its refresh interval is re-read in the background while requests go on with
// the one they have; only a tenant never read, or one whose limit was changed (invalidate), waits
// for the read.

import { TokenBucket, type Limit } from "./token-bucket.ts";

export type { Limit };

interface Bucket {
  bucket: TokenBucket;
  limit: Limit;
  /** When the limit was read; -Infinity once invalidated (the next request waits for a read). */
  limitReadMs: number;
}

export class RateLimiter {
  readonly #buckets = new Map<string, Bucket>();
  /** The read in flight per tenant, shared by everyone who wants it. */
  readonly #reading = new Map<string, Promise<Bucket>>();
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
    if (!entry || entry.limitReadMs === -Infinity) entry = await this.#read(tenantId);
    else if (this.#now() - entry.limitReadMs > this.#refreshMs) {
      // A failed refresh keeps the limit there is; the next request past the interval tries again.
      this.#read(tenantId).catch(() => {});
    }
    // The clock is read after any await: a concurrent request may have used the bucket since.
    return entry.bucket.take(entry.limit, n, this.#now());
  }

  /** Forget a tenant's limit so the next request reads the new one. */
  invalidate(tenantId: string): void {
    const entry = this.#buckets.get(tenantId);
    if (entry) entry.limitReadMs = -Infinity;
    // A read in flight may predate the change: it still answers its waiters, but the next request
    // starts its own.
    this.#reading.delete(tenantId);
  }

  #read(tenantId: string): Promise<Bucket> {
    const inFlight = this.#reading.get(tenantId);
    if (inFlight) return inFlight;
    // (Assigned before it is awaited: the body compares its own promise after its first await.)
    let read!: Promise<Bucket>;
    read = (async () => {
      try {
        const limit = await this.#limitOf(tenantId);
        const now = this.#now();
        let entry = this.#buckets.get(tenantId);
        if (!entry) this.#buckets.set(tenantId, (entry = { bucket: new TokenBucket(limit, now), limit, limitReadMs: -Infinity }));
        // Kept only when no change came since this read began (invalidate let go of it); its
        // waiters, who came before the change, use what it read either way.
        if (this.#reading.get(tenantId) !== read) return { ...entry, limit };
        entry.limit = limit;
        entry.limitReadMs = now;
        return entry;
      } finally {
        if (this.#reading.get(tenantId) === read) this.#reading.delete(tenantId);
      }
    })();
    this.#reading.set(tenantId, read);
    return read;
  }
}
