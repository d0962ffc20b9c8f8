// What ingest needs to know about an endpoint, cached for a moment: every gateway request and
// every ingested event looks its endpoint up, and a database round trip each would halve
// throughput. Changes made through this process drop the entry at once; other processes see them
// within the TTL.
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
  readonly #ttlMs: number;
  readonly #entries = new Map<string, { value: IngestEndpoint | undefined; until: number; pending?: Promise<IngestEndpoint | undefined> }>();

  constructor(pool: DatabasePool, ttlMs = 1_000) {
    this.#pool = pool;
    this.#ttlMs = ttlMs;
  }

  /** The endpoint, or undefined when it does not exist or was deleted. Id must be a UUID. */
  async get(id: string): Promise<IngestEndpoint | undefined> {
    const now = Date.now();
    const hit = this.#entries.get(id);
    if (hit && hit.until > now) return hit.value;
    if (hit?.pending) return hit.pending;
    const pending = this.#load(id);
    const entry = { value: hit?.value, until: 0, pending };
    this.#entries.set(id, entry);
    try {
      const value = await pending;
      // Invalidated while loading: the row may have been read before the change, so it is
      // answered to the callers already waiting but not kept.
      if (this.#entries.get(id) === entry) {
        if (this.#entries.size > 50_000) this.#entries.clear();
        this.#entries.set(id, { value, until: Date.now() + this.#ttlMs });
      }
      return value;
    } catch (err) {
      if (this.#entries.get(id) === entry) this.#entries.delete(id);
      throw err;
    }
  }

  invalidate(id?: string): void {
    if (id === undefined) this.#entries.clear();
    else this.#entries.delete(id);
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
