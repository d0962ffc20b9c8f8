// A read-through cache for rows that every request looks up (endpoints, sources, a tenant's
// subscribers): bounded by count with least-recently-used eviction, entries live `ttlMs`, misses
// are cached too, concurrent lookups of one key share one load, and a load that was in flight
// when its key was invalidated answers its waiters but is not kept (it may predate the change).
// Invalidation is immediate in this process; other processes see a change within the TTL.
import { LRUCache } from "lru-cache";

export interface LoadingCacheOptions {
  ttlMs: number;
  max: number;
}

export class LoadingCache<V> {
  readonly #load: (key: string) => Promise<V>;
  readonly #entries: LRUCache<string, { value: V }>;
  readonly #loading = new Map<string, Promise<V>>();

  constructor(load: (key: string) => Promise<V>, options: LoadingCacheOptions) {
    this.#load = load;
    this.#entries = new LRUCache({ max: options.max, ttl: options.ttlMs });
  }

  async get(key: string): Promise<V> {
    const hit = this.#entries.get(key);
    if (hit) return hit.value;
    const loading = this.#loading.get(key);
    if (loading) return loading;
    const load = this.#load(key);
    this.#loading.set(key, load);
    try {
      const value = await load;
      if (this.#loading.get(key) === load) this.#entries.set(key, { value });
      return value;
    } finally {
      if (this.#loading.get(key) === load) this.#loading.delete(key);
    }
  }

  invalidate(key?: string): void {
    if (key === undefined) {
      this.#entries.clear();
      this.#loading.clear();
    } else {
      this.#entries.delete(key);
      this.#loading.delete(key);
    }
  }
}
