// A tenant's enabled endpoints and what each subscribes to, cached for a moment: fan-out reads it
// for every message. A change to any endpoint of the tenant made in this process drops the
// tenant's entry at once; other processes see it within the TTL (a new endpoint may miss a message
// sent in that second elsewhere, as with any subscription taking effect).
import { sql } from "slonik";
import { z } from "zod";
import type { DatabasePool } from "../db/pool.ts";
import { LoadingCache } from "../loading-cache.ts";
import { subscribes, type Subscription } from "./subscriptions.ts";

export interface Subscriber extends Subscription {
  endpointId: string;
}

const row = z.object({ id: z.string(), event_types: z.array(z.string()), channels: z.array(z.string()) });

export class SubscriberCache {
  readonly #pool: DatabasePool;
  readonly #cache: LoadingCache<Subscriber[]>;

  constructor(pool: DatabasePool, options: { ttlMs?: number; max?: number } = {}) {
    this.#pool = pool;
    this.#cache = new LoadingCache((tenantId) => this.#load(tenantId), { ttlMs: options.ttlMs ?? 1_000, max: options.max ?? 10_000 });
  }

  /** The tenant's enabled endpoints that take a message of this type and these channels, in the
   * order they were created. */
  async matching(tenantId: string, eventType: string, channels: readonly string[]): Promise<string[]> {
    const all = await this.#cache.get(tenantId);
    return all.filter((s) => subscribes(s, eventType, channels)).map((s) => s.endpointId);
  }

  invalidate(tenantId?: string): void {
    this.#cache.invalidate(tenantId);
  }

  async #load(tenantId: string): Promise<Subscriber[]> {
    const rows = await this.#pool.any(sql.type(row)`
      SELECT id, event_types, channels FROM endpoints
      WHERE tenant_id = ${tenantId} AND enabled AND deleted_at IS NULL ORDER BY seq`);
    return rows.map((r) => ({ endpointId: r.id, eventTypes: r.event_types, channels: r.channels }));
  }
}
