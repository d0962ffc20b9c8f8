// Sources: inbound URLs (`POST /ingest/sources/{id}`) for webhook senders such as Stripe or
// GitHub, each with its sender's verification and where the event type comes from. A request to a
// source is verified once and fanned out to the tenant's subscribed endpoints.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext } from "@connectrpc/connect";
import {
  EventTypeFrom, SourceSchema,
  type CreateSourceRequest, type DeleteSourceRequest, type GetSourceRequest, type ListSourcesRequest,
  type RotateSourceSecretRequest, type Source, type UpdateSourceRequest,
} from "@kapsel/contracts/management";
import { randomBytes, randomUUID } from "node:crypto";
import { sql, type DatabasePool } from "slonik";
import { z } from "zod";
import { tenantOf } from "../auth/auth-context.ts";
import { KapselError } from "../errors.ts";
import { isHeaderName } from "../http/header-names.ts";
import { checkJsonPointer, type EventTypeFromName } from "../ingest/event-type-origin.ts";
import type { SourceSchemeName } from "../ingest/source-verification.ts";
import { checkSubscription } from "../ingest/subscriptions.ts";
import { reseal, type SecretBox } from "../secrets/secret-box.ts";
import { sourceSecret } from "../secrets/secret-columns.ts";
import { requireUuid } from "../uuid.ts";
import { decodeCursor, pageSize, paginate } from "./pagination.ts";
import { checkSource, checkTolerance, SCHEME_ENUMS, schemeName, storedSecret } from "./source-schemes.ts";

/** How long the previous secret keeps verifying after a rotation. */
export const SOURCE_SECRET_OVERLAP_MS = 24 * 3600 * 1000;

const FROM_NAMES: Record<EventTypeFrom, EventTypeFromName | undefined> = {
  [EventTypeFrom.UNSPECIFIED]: undefined,
  [EventTypeFrom.NONE]: "none",
  [EventTypeFrom.HEADER]: "header",
  [EventTypeFrom.JSON_POINTER]: "json_pointer",
  [EventTypeFrom.GITHUB]: "github",
  [EventTypeFrom.STRIPE]: "stripe",
  [EventTypeFrom.SHOPIFY]: "shopify",
  [EventTypeFrom.STANDARD_WEBHOOKS]: "standard_webhooks",
};
const FROM_ENUMS = Object.fromEntries(
  Object.entries(FROM_NAMES).filter(([, v]) => v !== undefined).map(([k, v]) => [v, Number(k)]),
) as Record<EventTypeFromName, EventTypeFrom>;

/** The preset that goes with a scheme when the request names none: a GitHub source finds its type
 * where GitHub puts it, and so on. */
const DEFAULT_FROM: Record<SourceSchemeName, EventTypeFromName> = {
  none: "none",
  hmac_sha256: "none",
  github: "github",
  stripe: "stripe",
  standard_webhooks: "standard_webhooks",
};

const sourceRow = z.object({
  id: z.string(),
  seq: z.string(),
  tenant_id: z.string(),
  name: z.string(),
  scheme: z.string(),
  header: z.string(),
  tolerance_seconds: z.number(),
  event_type_from: z.string(),
  event_type_header: z.string(),
  event_type_pointer: z.string(),
  channels: z.array(z.string()),
  secret_rotated_at: z.date(),
  created_at: z.date(),
  updated_at: z.date(),
});
type SourceRow = z.infer<typeof sourceRow>;

const COLUMNS = sql.fragment`id, seq, tenant_id, name, scheme, header, tolerance_seconds, event_type_from, event_type_header,
  event_type_pointer, channels, secret_rotated_at, created_at, updated_at`;

function toProto(row: SourceRow): Source {
  return create(SourceSchema, {
    id: row.id,
    name: row.name,
    scheme: SCHEME_ENUMS[row.scheme as SourceSchemeName],
    header: row.header,
    toleranceSeconds: row.tolerance_seconds,
    eventTypeFrom: FROM_ENUMS[row.event_type_from as EventTypeFromName],
    eventTypeHeader: row.event_type_header,
    eventTypePointer: row.event_type_pointer,
    channels: row.channels,
    ingestPath: `/ingest/sources/${row.id}`,
    createdAt: timestampFromDate(row.created_at),
    updatedAt: timestampFromDate(row.updated_at),
    secretRotatedAt: timestampFromDate(row.secret_rotated_at),
  });
}

/** A secret for a sender that lets us pick one: Standard Webhooks' format for that scheme (the
 * sender signs with it as is), 32 random bytes in hex for the others. */
function generateSecret(scheme: SourceSchemeName): string {
  return scheme === "standard_webhooks" ? `whsec_${randomBytes(24).toString("base64")}` : randomBytes(32).toString("hex");
}

function checkName(name: string): string {
  const trimmed = name.trim();
  if (trimmed.length < 1 || trimmed.length > 200 || trimmed.includes("\0")) throw new KapselError("E1006", "name must be 1 to 200 characters");
  return trimmed;
}

function fromName(value: EventTypeFrom): EventTypeFromName | undefined {
  if (!(value in FROM_NAMES)) throw new KapselError("E1006", "event_type_from is not valid");
  return FROM_NAMES[value];
}

/** The type origin's settings: a header origin needs a header name, a JSON pointer origin a pointer. */
function checkOrigin(from: EventTypeFromName, header: string, pointer: string): void {
  if (from === "header" && !isHeaderName(header)) throw new KapselError("E1006", "EVENT_TYPE_FROM_HEADER needs a valid event_type_header");
  if (header !== "" && !isHeaderName(header)) throw new KapselError("E1006", "event_type_header is not a valid header name");
  checkJsonPointer(pointer);
  if (from === "json_pointer" && pointer === "") throw new KapselError("E1006", "EVENT_TYPE_FROM_JSON_POINTER needs an event_type_pointer");
}

export class Sources {
  readonly #pool: DatabasePool;
  readonly #secrets: SecretBox;
  readonly #onChanged: (sourceId: string) => void;

  /** `secrets` seals a source's secrets before they are stored; `onChanged` lets ingest forget a
   * changed source at once. */
  constructor(pool: DatabasePool, secrets: SecretBox, onChanged: (sourceId: string) => void = () => {}) {
    this.#pool = pool;
    this.#secrets = secrets;
    this.#onChanged = onChanged;
  }

  async #find(tenantId: string, rawId: string): Promise<SourceRow & { secret: Buffer }> {
    const id = requireUuid(rawId, "source_id");
    const row = await this.#pool.maybeOne(sql.type(sourceRow.extend({ secret: z.instanceof(Buffer) }))`
      SELECT ${COLUMNS}, secret FROM sources WHERE id = ${id} AND tenant_id = ${tenantId} AND deleted_at IS NULL`);
    // Another tenant's source is indistinguishable from one that does not exist.
    if (!row) throw new KapselError("E2005");
    return row;
  }

  createSource = async (req: CreateSourceRequest, ctx: HandlerContext) => {
    const tenantId = tenantOf(ctx);
    const scheme = schemeName(req.scheme);
    const header = (req.header || "x-signature").toLowerCase();
    const secret = req.secret === "" && scheme !== "none" ? generateSecret(scheme) : req.secret;
    checkSource(scheme, secret, header, "secret");
    checkTolerance(req.toleranceSeconds);
    const from = fromName(req.eventTypeFrom) ?? DEFAULT_FROM[scheme];
    const typeHeader = req.eventTypeHeader.toLowerCase();
    checkOrigin(from, typeHeader, req.eventTypePointer);
    const { channels } = checkSubscription([], req.channels);
    // The id is made here: it is bound into the sealed secret.
    const id = randomUUID();
    const row = await this.#pool.one(sql.type(sourceRow)`
      INSERT INTO sources (id, tenant_id, name, scheme, secret, header, tolerance_seconds, event_type_from, event_type_header,
        event_type_pointer, channels)
      VALUES (${id}, ${tenantId}, ${checkName(req.name)}, ${scheme}, ${sql.binary(this.#secrets.seal(secret, sourceSecret(id, "secret")))}, ${header}, ${req.toleranceSeconds || 300}, ${from},
        ${typeHeader}, ${req.eventTypePointer}, ${sql.array(channels, "text")})
      RETURNING ${COLUMNS}`);
    return { source: toProto(row), secret };
  };

  getSource = async (req: GetSourceRequest, ctx: HandlerContext) => {
    return { source: toProto(await this.#find(tenantOf(ctx), req.sourceId)) };
  };

  listSources = async (req: ListSourcesRequest, ctx: HandlerContext) => {
    const tenantId = tenantOf(ctx);
    const limit = pageSize(req.pageSize);
    const after = decodeCursor(req.pageToken, 1);
    const rows = await this.#pool.any(sql.type(sourceRow)`
      SELECT ${COLUMNS} FROM sources
      WHERE tenant_id = ${tenantId} AND deleted_at IS NULL AND seq > ${after?.[0] ?? "0"}
      ORDER BY seq LIMIT ${limit + 1}`);
    const page = paginate(rows, limit, (r) => [r.seq]);
    return { sources: page.items.map(toProto), nextPageToken: page.next };
  };

  updateSource = async (req: UpdateSourceRequest, ctx: HandlerContext) => {
    const current = await this.#find(tenantOf(ctx), req.sourceId);
    const scheme = req.scheme === undefined ? (current.scheme as SourceSchemeName) : schemeName(req.scheme);
    const header = req.header?.toLowerCase() ?? current.header;
    const secret = storedSecret(scheme, this.#secrets.openTextOrNone(current.secret, sourceSecret(current.id, "secret")), "RotateSourceSecret sets a new one");
    checkSource(scheme, secret, header, "secret");
    checkTolerance(req.toleranceSeconds);
    const from = (req.eventTypeFrom === undefined ? undefined : fromName(req.eventTypeFrom)) ?? (current.event_type_from as EventTypeFromName);
    const typeHeader = req.eventTypeHeader?.toLowerCase() ?? current.event_type_header;
    const pointer = req.eventTypePointer ?? current.event_type_pointer;
    checkOrigin(from, typeHeader, pointer);
    const { channels } = checkSubscription([], req.channels);
    const row = await this.#pool.one(sql.type(sourceRow)`
      UPDATE sources SET
        name = ${req.name === undefined ? current.name : checkName(req.name)},
        scheme = ${scheme},
        header = ${header},
        tolerance_seconds = coalesce(${req.toleranceSeconds || null}::integer, tolerance_seconds),
        event_type_from = ${from},
        event_type_header = ${typeHeader},
        event_type_pointer = ${pointer},
        channels = CASE WHEN ${req.updateChannels} THEN ${sql.array(channels, "text")} ELSE channels END,
        updated_at = now()
      WHERE id = ${current.id}
      RETURNING ${COLUMNS}`);
    this.#onChanged(row.id);
    return { source: toProto(row) };
  };

  deleteSource = async (req: DeleteSourceRequest, ctx: HandlerContext) => {
    const row = await this.#find(tenantOf(ctx), req.sourceId);
    // Soft delete: its messages keep pointing at it; its URL answers E2005 from now on.
    await this.#pool.query(sql.unsafe`UPDATE sources SET deleted_at = now(), updated_at = now() WHERE id = ${row.id}`);
    this.#onChanged(row.id);
    return {};
  };

  rotateSourceSecret = async (req: RotateSourceSecretRequest, ctx: HandlerContext) => {
    const current = await this.#find(tenantOf(ctx), req.sourceId);
    const scheme = current.scheme as SourceSchemeName;
    const secret = req.secret === "" ? generateSecret(scheme) : req.secret;
    checkSource(scheme, secret, current.header, "secret");
    const row = await this.#pool.transaction(async (tx) => {
      // The current secret becomes the previous one: opened and sealed again for its new column
      // (dropped if it cannot be opened: a rotation is the way back to a usable secret).
      const stored = await tx.oneFirst(sql.type(z.object({ s: z.instanceof(Buffer) }))`SELECT secret AS s FROM sources WHERE id = ${current.id} FOR UPDATE`);
      const previous = reseal(this.#secrets, stored, sourceSecret(current.id, "secret"), sourceSecret(current.id, "previous_secret"));
      return tx.one(sql.type(sourceRow)`
        UPDATE sources SET
          previous_secret = ${previous === undefined ? null : sql.binary(previous)},
          previous_secret_expires_at = now() + ${SOURCE_SECRET_OVERLAP_MS} * interval '1 millisecond',
          secret = ${sql.binary(this.#secrets.seal(secret, sourceSecret(current.id, "secret")))},
          secret_rotated_at = now(),
          updated_at = now()
        WHERE id = ${current.id}
        RETURNING ${COLUMNS}`);
    });
    this.#onChanged(row.id);
    return { source: toProto(row), secret };
  };
}
