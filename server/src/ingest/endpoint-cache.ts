// What ingest needs to know about an endpoint, cached for a moment: every gateway request and
// every ingested event looks its endpoint up, and a database round trip each would halve
// throughput. Changes made through this process drop the entry at once; other processes see them
// within the TTL.
import { sql } from "slonik";
import { z } from "zod";
import type { DatabasePool } from "../db/pool.ts";
import { LoadingCache } from "../loading-cache.ts";
import type { SecretBox } from "../secrets/secret-box.ts";
import { endpointSecret } from "../secrets/secret-columns.ts";
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
  source_secret: z.instanceof(Buffer),
  source_header: z.string(),
  source_tolerance_seconds: z.number(),
});

export class EndpointCache {
  readonly #pool: DatabasePool;
  readonly #secrets: SecretBox;
  /** Unknown ids (strangers guessing among them) are cached as misses and go first when full. */
  readonly #cache: LoadingCache<IngestEndpoint | undefined>;

  /** `secrets` opens the sealed verification secret once per load; the entry keeps it open. */
  constructor(pool: DatabasePool, secrets: SecretBox, options: { ttlMs?: number; max?: number } = {}) {
    this.#pool = pool;
    this.#secrets = secrets;
    this.#cache = new LoadingCache((id) => this.#load(id), { ttlMs: options.ttlMs ?? 1_000, max: options.max ?? 50_000 });
  }

  /** The endpoint, or undefined when it does not exist or was deleted. Id must be a UUID. */
  get(id: string): Promise<IngestEndpoint | undefined> {
    return this.#cache.get(id);
  }

  invalidate(id?: string): void {
    this.#cache.invalidate(id);
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
      source: {
        scheme: r.source_scheme as SourceSchemeName,
        secret: this.#secrets.openTextOrNone(r.source_secret, endpointSecret(r.id, "source_secret")),
        header: r.source_header,
        toleranceSeconds: r.source_tolerance_seconds,
      },
    };
  }
}
