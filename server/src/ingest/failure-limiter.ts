// Limits failed source verifications (wrong or missing signatures), apart from the tenant's rate:
// a stranger who knows an endpoint or source id can make requests fail, but cannot spend the
// tenant's budget, and past a few failures a second it is refused before its body is even read.
//
// Buckets are per sender address (a looser limit: senders such as Stripe share addresses across
// tenants, and one tenant's wrong secret must not block the others) and per sender address and
// target (the tighter one). Nothing is keyed by the target alone: that would let strangers at other
// addresses block the tenant's genuine sender, the very starvation this exists to prevent.
// Buckets are bounded in number (least recently used go).
import { LRUCache } from "lru-cache";
import { TokenBucket, type Limit } from "./token-bucket.ts";

export interface FailureLimiterOptions {
  /** Per sender address and target. */
  limit: Limit;
  /** Per sender address, over all targets. */
  addressLimit: Limit;
  /** Keys remembered at most (targets and addresses together). */
  max?: number;
  now?: () => number;
}

export class FailureLimiter {
  readonly #limit: Limit;
  readonly #addressLimit: Limit;
  readonly #buckets: LRUCache<string, TokenBucket>;
  readonly #now: () => number;

  constructor(options: FailureLimiterOptions) {
    this.#limit = options.limit;
    this.#addressLimit = options.addressLimit;
    this.#buckets = new LRUCache({ max: options.max ?? 100_000 });
    this.#now = options.now ?? Date.now;
  }

  /** Milliseconds until this sender may fail again on this target; 0 when it may. */
  blockedFor(address: string | undefined, target: string): number {
    const now = this.#now();
    return Math.max(0, ...this.#keys(address, target).map(([key, limit]) => this.#buckets.get(key)?.waitForOne(limit, now) ?? 0));
  }

  /** Counts a failed verification of this sender on this target. */
  failed(address: string | undefined, target: string): void {
    const now = this.#now();
    for (const [key, limit] of this.#keys(address, target)) {
      let bucket = this.#buckets.get(key);
      if (!bucket) {
        bucket = new TokenBucket(limit, now);
        this.#buckets.set(key, bucket);
      }
      bucket.charge(limit, now);
    }
  }

  #keys(address: string | undefined, target: string): [string, Limit][] {
    const sender = address ?? "unknown";
    return [[`address ${sender}`, this.#addressLimit], [`address ${sender} target ${target}`, this.#limit]];
  }
}
