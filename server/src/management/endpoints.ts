// Endpoints: destinations, their inbound verification and outbound signing secrets.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext } from "@connectrpc/connect";
import { randomBytes, randomUUID } from "node:crypto";
import { sql, type DatabaseTransactionConnection } from "slonik";
import { z } from "zod";
import { tenantOf } from "../auth/auth-context.ts";
import type { DatabasePool } from "../db/pool.ts";
import { validateDestination, type DestinationPolicy } from "../delivery/destination-policy.ts";
import { cancelForEndpoint } from "../delivery/job-queue.ts";
import { KapselError } from "../errors.ts";
import { keptNameProblem } from "../http/header-names.ts";
import {
  EndpointSchema,
  type CreateEndpointRequest, type DeleteEndpointRequest, type Endpoint, type GetEndpointRequest,
  type ListEndpointsRequest, type RotateEndpointSecretRequest, type UpdateEndpointRequest,
} from "@kapsel/contracts/management";
import { emitOperationalEvents } from "../ingest/operational-events.ts";
import type { SourceSchemeName } from "../ingest/source-verification.ts";
import { checkEventType, checkSubscription, takesTypeSql } from "../ingest/subscriptions.ts";
import { reseal, type SecretBox } from "../secrets/secret-box.ts";
import { endpointSecret } from "../secrets/secret-columns.ts";
import { requireUuid } from "../uuid.ts";
import { decodeCursor, pageSize, paginate } from "./pagination.ts";
import { checkSource, checkTolerance, schemeName, SCHEME_ENUMS, storedSecret } from "./source-schemes.ts";

/** How long the previous outbound secret keeps signing after a rotation. */
export const SECRET_OVERLAP_MS = 24 * 3600 * 1000;

export const endpointRow = z.object({
  id: z.string(),
  seq: z.string(),
  tenant_id: z.string(),
  url: z.string(),
  description: z.string(),
  enabled: z.boolean(),
  disabled_reason: z.string(),
  allow_http: z.boolean(),
  source_scheme: z.string(),
  source_header: z.string(),
  source_tolerance_seconds: z.number(),
  kept_headers: z.array(z.string()),
  event_types: z.array(z.string()),
  channels: z.array(z.string()),
  max_attempts: z.number(),
  timeout_ms: z.number(),
  secret_rotated_at: z.date(),
  created_at: z.date(),
  updated_at: z.date(),
});
export type EndpointRow = z.infer<typeof endpointRow>;

const COLUMNS = sql.fragment`id, seq, tenant_id, url, description, enabled, disabled_reason, allow_http, source_scheme,
  source_header, source_tolerance_seconds, kept_headers, event_types, channels, max_attempts, timeout_ms, secret_rotated_at, created_at, updated_at`;

export function generateSigningSecret(): string {
  return `whsec_${randomBytes(24).toString("base64")}`;
}

export function endpointToProto(row: EndpointRow): Endpoint {
  return create(EndpointSchema, {
    id: row.id,
    url: row.url,
    description: row.description,
    enabled: row.enabled,
    disabledReason: row.disabled_reason,
    allowHttp: row.allow_http,
    sourceScheme: SCHEME_ENUMS[row.source_scheme as SourceSchemeName],
    sourceHeader: row.source_header,
    sourceToleranceSeconds: row.source_tolerance_seconds,
    keptHeaders: row.kept_headers,
    eventTypes: row.event_types,
    channels: row.channels,
    maxAttempts: row.max_attempts,
    timeoutMs: row.timeout_ms,
    createdAt: timestampFromDate(row.created_at),
    updatedAt: timestampFromDate(row.updated_at),
    secretRotatedAt: timestampFromDate(row.secret_rotated_at),
  });
}

function checkHeaders(names: readonly string[]): string[] {
  const lower = [...new Set(names.map((n) => n.toLowerCase()))];
  if (lower.length > 50) throw new KapselError("E1006", "kept_headers must be at most 50 header names");
  for (const name of lower) {
    const problem = keptNameProblem(name);
    if (problem !== undefined) throw new KapselError("E1006", `kept_headers: ${problem}`);
  }
  return lower;
}

function checkDescription(description: string | undefined): void {
  if (description !== undefined && (description.length > 1000 || description.includes("\0"))) {
    throw new KapselError("E1006", "description must be at most 1000 characters, without NUL");
  }
}

function checkLimits(maxAttempts: number | undefined, timeoutMs: number | undefined): void {
  if (maxAttempts !== undefined && maxAttempts !== 0 && (maxAttempts < 1 || maxAttempts > 50)) throw new KapselError("E1006", "max_attempts must be 1 to 50");
  if (timeoutMs !== undefined && timeoutMs !== 0 && (timeoutMs < 100 || timeoutMs > 120_000)) throw new KapselError("E1006", "timeout_ms must be 100 to 120000");
}

/** Disables endpoints on Kapsel's own account (410 Gone), in the caller's transaction. */
export async function disableEndpoints(tx: DatabaseTransactionConnection, ids: readonly string[], reason: string): Promise<void> {
  await tx.query(sql.unsafe`
    UPDATE endpoints SET enabled = false, disabled_reason = ${reason}, updated_at = now()
    WHERE id = ANY(${sql.array([...ids], "uuid")})`);
}

export class Endpoints {
  readonly #pool: DatabasePool;
  readonly #policy: DestinationPolicy;
  readonly #defaultTimeoutMs: number;
  readonly #onChanged: (endpointId: string, tenantId: string) => void;
  readonly #secrets: SecretBox;

  /** `secrets` seals the endpoint's secrets before they are stored; `onChanged` lets caches drop
   * an endpoint at once after a change. */
  constructor(pool: DatabasePool, secrets: SecretBox, policy: DestinationPolicy, defaultTimeoutMs: number, onChanged: (endpointId: string, tenantId: string) => void = () => {}) {
    this.#pool = pool;
    this.#secrets = secrets;
    this.#policy = policy;
    this.#defaultTimeoutMs = defaultTimeoutMs;
    this.#onChanged = onChanged;
  }

  async #find(tenantId: string, rawId: string): Promise<EndpointRow> {
    const id = requireUuid(rawId, "endpoint_id");
    const row = await this.#pool.maybeOne(sql.type(endpointRow)`
      SELECT ${COLUMNS} FROM endpoints WHERE id = ${id} AND tenant_id = ${tenantId} AND deleted_at IS NULL`);
    // Another tenant's endpoint is indistinguishable from one that does not exist.
    if (!row) throw new KapselError("E1003");
    return row;
  }

  createEndpoint = async (req: CreateEndpointRequest, ctx: HandlerContext) => {
    const tenantId = tenantOf(ctx);
    const url = await validateDestination(req.url, { allowHttp: req.allowHttp, policy: this.#policy });
    const scheme = schemeName(req.sourceScheme);
    const header = (req.sourceHeader || "x-signature").toLowerCase();
    checkSource(scheme, req.sourceSecret, header);
    checkTolerance(req.sourceToleranceSeconds);
    checkLimits(req.maxAttempts, req.timeoutMs);
    checkDescription(req.description);
    const subscription = checkSubscription(req.eventTypes, req.channels);
    const secret = generateSigningSecret();
    // The id is made here: it is bound into the sealed secrets.
    const id = randomUUID();
    const seal = (value: string, column: "signing_secret" | "source_secret") => sql.binary(this.#secrets.seal(value, endpointSecret(id, column)));
    const row = await this.#pool.one(sql.type(endpointRow)`
      INSERT INTO endpoints (id, tenant_id, url, description, enabled, allow_http, source_scheme, source_secret,
        source_header, source_tolerance_seconds, kept_headers, event_types, channels, max_attempts, timeout_ms, signing_secret)
      VALUES (${id}, ${tenantId}, ${url}, ${req.description}, ${!req.disabled}, ${req.allowHttp}, ${scheme},
        ${seal(req.sourceSecret, "source_secret")}, ${header}, ${req.sourceToleranceSeconds || 300},
        ${sql.array(checkHeaders(req.keptHeaders), "text")}, ${sql.array(subscription.eventTypes, "text")},
        ${sql.array(subscription.channels, "text")}, ${req.maxAttempts || 10},
        ${req.timeoutMs || this.#defaultTimeoutMs}, ${seal(secret, "signing_secret")})
      RETURNING ${COLUMNS}`);
    this.#onChanged(row.id, row.tenant_id);
    return { endpoint: endpointToProto(row), signingSecret: secret };
  };

  getEndpoint = async (req: GetEndpointRequest, ctx: HandlerContext) => {
    return { endpoint: endpointToProto(await this.#find(tenantOf(ctx), req.endpointId)) };
  };

  listEndpoints = async (req: ListEndpointsRequest, ctx: HandlerContext) => {
    const tenantId = tenantOf(ctx);
    const limit = pageSize(req.pageSize);
    const after = decodeCursor(req.pageToken, 1);
    const byType = req.eventType === "" ? sql.fragment`true` : takesTypeSql(checkEventType(req.eventType));
    const rows = await this.#pool.any(sql.type(endpointRow)`
      SELECT ${COLUMNS} FROM endpoints
      WHERE tenant_id = ${tenantId} AND deleted_at IS NULL AND seq > ${after?.[0] ?? "0"} AND ${byType}
      ORDER BY seq LIMIT ${limit + 1}`);
    const page = paginate(rows, limit, (r) => [r.seq]);
    return { endpoints: page.items.map(endpointToProto), nextPageToken: page.next };
  };

  updateEndpoint = async (req: UpdateEndpointRequest, ctx: HandlerContext) => {
    const tenantId = tenantOf(ctx);
    const current = await this.#find(tenantId, req.endpointId);
    const allowHttp = req.allowHttp ?? current.allow_http;
    const url = req.url !== undefined || allowHttp !== current.allow_http
      ? await validateDestination(req.url ?? current.url, { allowHttp, policy: this.#policy })
      : null;
    // The same limits as CreateEndpoint, for whatever the request sets.
    checkLimits(req.maxAttempts, req.timeoutMs);
    checkDescription(req.description);
    checkTolerance(req.sourceToleranceSeconds);
    const scheme = req.sourceScheme === undefined ? null : schemeName(req.sourceScheme);
    const header = req.sourceHeader?.toLowerCase() ?? null;
    if (scheme !== null || req.sourceSecret !== undefined || header !== null) {
      const stored = await this.#pool.oneFirst(sql.type(z.object({ s: z.instanceof(Buffer) }))`SELECT source_secret AS s FROM endpoints WHERE id = ${current.id}`);
      const newScheme = scheme ?? (current.source_scheme as SourceSchemeName);
      const secret = req.sourceSecret ?? storedSecret(newScheme, this.#secrets.openTextOrNone(stored, endpointSecret(current.id, "source_secret")),
        "send a new source_secret with this change");
      checkSource(newScheme, secret, header ?? current.source_header);
    }
    const sourceSecret = req.sourceSecret === undefined ? null : sql.binary(this.#secrets.seal(req.sourceSecret, endpointSecret(current.id, "source_secret")));
    const subscription = checkSubscription(req.eventTypes, req.channels);
    const disabling = req.enabled === false && current.enabled;
    const row = await this.#pool.transaction(async (tx) => {
      const updated = await tx.one(sql.type(endpointRow)`
      UPDATE endpoints SET
        url = coalesce(${url}, url),
        description = coalesce(${req.description ?? null}, description),
        enabled = coalesce(${req.enabled ?? null}::boolean, enabled),
        disabled_reason = CASE WHEN ${req.enabled ?? null}::boolean THEN '' ELSE disabled_reason END,
        allow_http = ${allowHttp},
        source_scheme = coalesce(${scheme}, source_scheme),
        source_secret = coalesce(${sourceSecret}::bytea, source_secret),
        source_header = coalesce(${header}, source_header),
        source_tolerance_seconds = coalesce(${req.sourceToleranceSeconds ?? null}::integer, source_tolerance_seconds),
        kept_headers = CASE WHEN ${req.updateKeptHeaders} THEN ${sql.array(checkHeaders(req.keptHeaders), "text")} ELSE kept_headers END,
        event_types = CASE WHEN ${req.updateEventTypes} THEN ${sql.array(subscription.eventTypes, "text")} ELSE event_types END,
        channels = CASE WHEN ${req.updateChannels} THEN ${sql.array(subscription.channels, "text")} ELSE channels END,
        max_attempts = coalesce(${req.maxAttempts || null}::integer, max_attempts),
        timeout_ms = coalesce(${req.timeoutMs || null}::integer, timeout_ms),
        updated_at = now()
      WHERE id = ${current.id}
      RETURNING ${COLUMNS}`);
      if (disabling) await emitOperationalEvents(tx, [{ type: "kapsel.endpoint.disabled", tenantId, endpointId: current.id, reason: "disabled through the API" }]);
      return updated;
    });
    this.#onChanged(row.id, row.tenant_id);
    return { endpoint: endpointToProto(row) };
  };

  deleteEndpoint = async (req: DeleteEndpointRequest, ctx: HandlerContext) => {
    const row = await this.#find(tenantOf(ctx), req.endpointId);
    // Soft delete: events and attempts keep pointing at it for history and proofs. Pending
    // deliveries stop: their jobs go and their events end as failed (an endpoint that is gone
    // cannot be retried, unlike a disabled one).
    await this.#pool.transaction(async (tx) => {
      await tx.query(sql.unsafe`UPDATE endpoints SET deleted_at = now(), enabled = false, updated_at = now() WHERE id = ${row.id}`);
      await cancelForEndpoint(tx, row.id);
    });
    this.#onChanged(row.id, row.tenant_id);
    return {};
  };

  rotateEndpointSecret = async (req: RotateEndpointSecretRequest, ctx: HandlerContext) => {
    const tenantId = tenantOf(ctx);
    const current = await this.#find(tenantId, req.endpointId);
    const secret = generateSigningSecret();
    const expires = new Date(Date.now() + SECRET_OVERLAP_MS);
    const row = await this.#pool.transaction(async (tx) => {
      // The current secret becomes the previous one: opened and sealed again for its new column
      // (a sealed value is bound to its column). One that cannot be opened is dropped: a rotation
      // is how an endpoint gets back a secret it can sign with.
      const stored = await tx.oneFirst(sql.type(z.object({ s: z.instanceof(Buffer) }))`
        SELECT signing_secret AS s FROM endpoints WHERE id = ${current.id} FOR UPDATE`);
      const previous = reseal(this.#secrets, stored, endpointSecret(current.id, "signing_secret"), endpointSecret(current.id, "previous_signing_secret"));
      const rotated = await tx.one(sql.type(endpointRow)`
        UPDATE endpoints SET
          previous_signing_secret = ${previous === undefined ? null : sql.binary(previous)},
          previous_secret_expires_at = ${expires.toISOString()},
          signing_secret = ${sql.binary(this.#secrets.seal(secret, endpointSecret(current.id, "signing_secret")))},
          secret_rotated_at = now(),
          updated_at = now()
        WHERE id = ${current.id}
        RETURNING ${COLUMNS}`);
      await emitOperationalEvents(tx, [{ type: "kapsel.endpoint.secret_rotated", tenantId, endpointId: current.id, previousSecretExpiresAt: expires }]);
      return rotated;
    });
    this.#onChanged(row.id, row.tenant_id);
    return { endpoint: endpointToProto(row), signingSecret: secret };
  };
}
