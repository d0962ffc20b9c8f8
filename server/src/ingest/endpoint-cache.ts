// What ingest needs to know about an endpoint, cached for a moment: every gateway request and
// every ingested event looks its endpoint up, and a database round trip each would halve
// throughput. Changes made through this process drop the entry at once; other processes see them
// within the TTL.
import { LRUCache } from "lru-cache";
import { sql } from "slonik";
import { z } from "zod";
import type { DatabasePool } from "../db/pool.ts";
import type { SourceConfig, SourceSchemeName } from "./source-verification.ts";

export interface IngestEndpoint {
  id: string;
  tenantId: string;
  enabled: boolean;
  keptHeaders: string[];
  source: SourceConfig;
}

const row = z.object({
  id: z.string(),
  tenant_id: z.string(),
  enabled: z.boolean(),
  kept_headers: z.array(z.string()),
  source_scheme: z.string(),
  source_secret: z.string(),
  source_header: z.string(),
  source_tolerance_seconds: z.number(),
});

export class EndpointCache {
  readonly #pool: DatabasePool;
  /** Bounded: ids nobody uses again (unknown ones sent by strangers among them) are the first to
   * go, and never push the hot entries out all at once. A miss (unknown id) is cached too. */
  readonly #entries: LRUCache<string, { value: IngestEndpoint | undefined }>;
  /** Loads in flight, shared by concurrent requests for one id. */
  readonly #loading = new Map<string, Promise<IngestEndpoint | undefined>>();

  constructor(pool: DatabasePool, options: { ttlMs?: number; max?: number } = {}) {
    this.#pool = pool;
    this.#entries = new LRUCache({ max: options.max ?? 50_000, ttl: options.ttlMs ?? 1_000 });
  }

  /** The endpoint, or undefined when it does not exist or was deleted. Id must be a UUID. */
  async get(id: string): Promise<IngestEndpoint | undefined> {
    const hit = this.#entries.get(id);
    if (hit) return hit.value;
    const loading = this.#loading.get(id);
    if (loading) return loading;
    const load = this.#load(id);
    this.#loading.set(id, load);
    try {
      const value = await load;
      // Invalidated while loading: the row may have been read before the change, so it is
      // answered to the callers already waiting but not kept.
      if (this.#loading.get(id) === load) this.#entries.set(id, { value });
      return value;
    } finally {
      if (this.#loading.get(id) === load) this.#loading.delete(id);
    }
  }

  invalidate(id?: string): void {
    if (id === undefined) {
      this.#entries.clear();
      this.#loading.clear();
    } else {
      this.#entries.delete(id);
      this.#loading.delete(id);
    }
  }

  async #load(id: string): Promise<IngestEndpoint | undefined> {
    const r = await this.#pool.maybeOne(sql.type(row)`
      SELECT id, tenant_id, enabled, kept_headers, source_scheme, source_secret, source_header, source_tolerance_seconds
      FROM endpoints WHERE id = ${id} AND deleted_at IS NULL`);
    if (!r) return undefined;
    return {
      id: r.id,
      tenantId: r.tenant_id,
      enabled: r.enabled,
      keptHeaders: r.kept_headers,
      source: { scheme: r.source_scheme as SourceSchemeName, secret: r.source_secret, header: r.source_header, toleranceSeconds: r.source_tolerance_seconds },
    };
  }
}
