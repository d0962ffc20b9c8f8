// What ingest needs to know about a source (an inbound URL), cached for a moment like endpoints:
// its tenant, how its sender signs, where the event type comes from, and its fixed channels.
import { sql } from "slonik";
import { z } from "zod";
import type { DatabasePool } from "../db/pool.ts";
import { LoadingCache } from "../loading-cache.ts";
import type { SecretBox } from "../secrets/secret-box.ts";
import { sourceSecret } from "../secrets/secret-columns.ts";
import type { SourceConfig, SourceSchemeName } from "./source-verification.ts";
import type { EventTypeOrigin } from "./event-type-origin.ts";

export interface IngestSource {
  id: string;
  tenantId: string;
  verification: SourceConfig;
  eventType: EventTypeOrigin;
  channels: string[];
}

const row = z.object({
  id: z.string(),
  tenant_id: z.string(),
  scheme: z.string(),
  secret: z.instanceof(Buffer),
  previous_secret: z.instanceof(Buffer).nullable(),
  header: z.string(),
  tolerance_seconds: z.number(),
  event_type_from: z.string(),
  event_type_header: z.string(),
  event_type_pointer: z.string(),
  channels: z.array(z.string()),
});

export class SourceCache {
  readonly #pool: DatabasePool;
  readonly #secrets: SecretBox;
  readonly #cache: LoadingCache<IngestSource | undefined>;

  /** `secrets` opens the sealed secrets once per load; the entry keeps them open. */
  constructor(pool: DatabasePool, secrets: SecretBox, options: { ttlMs?: number; max?: number } = {}) {
    this.#pool = pool;
    this.#secrets = secrets;
    this.#cache = new LoadingCache((id) => this.#load(id), { ttlMs: options.ttlMs ?? 1_000, max: options.max ?? 50_000 });
  }

  /** The source, or undefined when it does not exist or was deleted. Id must be a UUID. */
  get(id: string): Promise<IngestSource | undefined> {
    return this.#cache.get(id);
  }

  invalidate(id?: string): void {
    this.#cache.invalidate(id);
  }

  async #load(id: string): Promise<IngestSource | undefined> {
    const r = await this.#pool.maybeOne(sql.type(row)`
      SELECT id, tenant_id, scheme, secret,
        CASE WHEN previous_secret_expires_at > now() THEN previous_secret END AS previous_secret,
        header, tolerance_seconds, event_type_from, event_type_header, event_type_pointer, channels
      FROM sources WHERE id = ${id} AND deleted_at IS NULL`);
    if (!r) return undefined;
    return {
      id: r.id,
      tenantId: r.tenant_id,
      verification: {
        scheme: r.scheme as SourceSchemeName,
        secret: this.#secrets.openTextOrNone(r.secret, sourceSecret(r.id, "secret")),
        previousSecret: r.previous_secret === null ? undefined : this.#secrets.openTextOrNone(r.previous_secret, sourceSecret(r.id, "previous_secret")),
        header: r.header,
        toleranceSeconds: r.tolerance_seconds,
      },
      eventType: { from: r.event_type_from as EventTypeOrigin["from"], header: r.event_type_header, pointer: r.event_type_pointer },
      channels: r.channels,
    };
  }
}
