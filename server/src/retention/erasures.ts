// Erasure on request: EraseEvents removes the selected events' payloads, headers and response
// excerpts at once (erase-messages.ts) and writes an erasure record — who asked, what they
// selected, what was removed, never any content — in the same transaction; ListErasures reads the
// records. The erasures table is this module's.
import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import {
  ErasureSchema,
  type EraseEventsRequest, type Erasure, type ListErasuresRequest,
} from "@kapsel/contracts/management";
import { sql, type DatabasePool, type FragmentSqlToken } from "slonik";
import { z } from "zod";
import { callerOf } from "../auth/auth-context.ts";
import { KapselError } from "../errors.ts";
import { decodeCursor, encodeCursor, pageSize, paginate } from "../management/pagination.ts";
import { at, atMicros, microsOf, timestampFromMicros } from "../management/timestamps.ts";
import { isUuid, requireUuid, uuidv7 } from "../uuid.ts";
import { clearResponseExcerpts, eraseMessages } from "./erase-messages.ts";
import type { RetentionMetrics } from "./retention-metrics.ts";
import { tenantFor } from "./retention-policies.ts";

export const MAX_EVENT_IDS = 100;
export const DEFAULT_ERASE_LIMIT = 100;
export const MAX_ERASE_LIMIT = 1000;
const MAX_BIGINT = 2n ** 63n - 1n;

/** What an EraseEvents call selects: exactly one kind. */
type Selector =
  | { kind: "events"; eventIds: string[] }
  | { kind: "message"; messageId: string }
  | { kind: "range"; endpointId: string | undefined; after: FragmentSqlToken | undefined; before: FragmentSqlToken | undefined };

function selectorOf(req: EraseEventsRequest): Selector {
  const given = [req.eventIds.length > 0, req.messageId !== "", req.endpointId !== "" || req.receivedAfter !== undefined || req.receivedBefore !== undefined];
  if (given.filter(Boolean).length !== 1) {
    throw new KapselError("E1006", "select events by exactly one of: event_ids; message_id; endpoint_id and/or received_after/received_before");
  }
  if (req.eventIds.length > 0) {
    if (req.eventIds.length > MAX_EVENT_IDS) throw new KapselError("E1006", `event_ids holds at most ${MAX_EVENT_IDS} ids`);
    return { kind: "events", eventIds: [...new Set(req.eventIds.map((id) => requireUuid(id, "event_ids")))] };
  }
  if (req.messageId !== "") return { kind: "message", messageId: requireUuid(req.messageId, "message_id") };
  return {
    kind: "range",
    endpointId: req.endpointId === "" ? undefined : requireUuid(req.endpointId, "endpoint_id"),
    after: req.receivedAfter && at(req.receivedAfter, "received_after"),
    before: req.receivedBefore && at(req.receivedBefore, "received_before"),
  };
}

function limitOf(requested: number): number {
  if (requested === 0) return DEFAULT_ERASE_LIMIT;
  if (requested > MAX_ERASE_LIMIT) throw new KapselError("E1006", `limit must be at most ${MAX_ERASE_LIMIT}`);
  return requested;
}

const selectedRow = z.object({ id: z.string(), message_id: z.string(), received_us: z.string() });

const erasureRow = z.object({
  id: z.string(),
  seq: z.string(),
  api_key_id: z.string().nullable(),
  event_ids: z.array(z.string()),
  message_id: z.string().nullable(),
  endpoint_id: z.string().nullable(),
  after_us: z.string().nullable(),
  before_us: z.string().nullable(),
  events_matched: z.number(),
  events_erased: z.number(),
  messages_erased: z.number(),
  attempts_erased: z.number(),
  events_skipped: z.number(),
  erased_us: z.string(),
});
type ErasureRow = z.infer<typeof erasureRow>;

const ERASURE_COLUMNS = sql.fragment`id, seq, api_key_id, event_ids::text[] AS event_ids, message_id, endpoint_id,
  ${microsOf(sql.identifier(["received_after"]))} AS after_us, ${microsOf(sql.identifier(["received_before"]))} AS before_us,
  events_matched, events_erased, messages_erased, attempts_erased, events_skipped, ${microsOf(sql.identifier(["erased_at"]))} AS erased_us`;

function toProto(row: ErasureRow): Erasure {
  return create(ErasureSchema, {
    id: row.id,
    erasedAt: timestampFromMicros(row.erased_us),
    apiKeyId: row.api_key_id ?? "",
    eventIds: row.event_ids,
    messageId: row.message_id ?? "",
    endpointId: row.endpoint_id ?? "",
    receivedAfter: row.after_us === null ? undefined : timestampFromMicros(row.after_us),
    receivedBefore: row.before_us === null ? undefined : timestampFromMicros(row.before_us),
    eventsMatched: row.events_matched,
    eventsErased: row.events_erased,
    messagesErased: row.messages_erased,
    attemptsErased: row.attempts_erased,
    eventsSkipped: row.events_skipped,
  });
}

export class Erasures {
  readonly #pool: DatabasePool;
  readonly #metrics: RetentionMetrics;

  constructor(pool: DatabasePool, metrics: RetentionMetrics) {
    this.#pool = pool;
    this.#metrics = metrics;
  }

  /** Unknown ids (or another tenant's) answer NotFound before anything is erased. */
  async #checkExists(tenantId: string, selector: Selector): Promise<void> {
    if (selector.kind === "events") {
      const found = await this.#pool.anyFirst(sql.type(z.object({ id: z.string() }))`
        SELECT id FROM events WHERE id = ANY(${sql.array(selector.eventIds, "uuid")}) AND tenant_id = ${tenantId}`);
      if (found.length !== selector.eventIds.length) throw new KapselError("E2002", "one or more event_ids are not events of this tenant");
    } else if (selector.kind === "message") {
      const found = await this.#pool.maybeOne(sql.unsafe`SELECT 1 FROM messages WHERE id = ${selector.messageId} AND tenant_id = ${tenantId}`);
      if (!found) throw new KapselError("E2004");
    } else if (selector.endpointId !== undefined) {
      // A deleted endpoint's events stay, and so may be erased.
      const found = await this.#pool.maybeOne(sql.unsafe`SELECT 1 FROM endpoints WHERE id = ${selector.endpointId} AND tenant_id = ${tenantId}`);
      if (!found) throw new KapselError("E1003");
    }
  }

  eraseEvents = async (req: EraseEventsRequest, ctx: HandlerContext) => {
    const caller = callerOf(ctx);
    if (caller.kind !== "tenant") throw new KapselError("E1004", "this call needs a tenant API key", { forbidden: true });
    const tenantId = caller.tenantId;
    const selector = selectorOf(req);
    const limit = limitOf(req.limit);
    const cursor = decodeCursor(req.pageToken, 2);
    await this.#checkExists(tenantId, selector);

    const conditions = [sql.fragment`tenant_id = ${tenantId}`];
    if (selector.kind === "events") conditions.push(sql.fragment`id = ANY(${sql.array(selector.eventIds, "uuid")})`);
    if (selector.kind === "message") conditions.push(sql.fragment`message_id = ${selector.messageId}`);
    if (selector.kind === "range") {
      if (selector.endpointId !== undefined) conditions.push(sql.fragment`endpoint_id = ${selector.endpointId}`);
      if (selector.after) conditions.push(sql.fragment`received_at >= ${selector.after}`);
      if (selector.before) conditions.push(sql.fragment`received_at < ${selector.before}`);
    }
    if (cursor) conditions.push(sql.fragment`(received_at, id) > (${atMicros(cursor[0]!)}, ${requireUuid(cursor[1]!, "page_token")}::uuid)`);

    const erasureId = uuidv7();
    const { row, next } = await this.#pool.transaction(async (tx) => {
      const rows = await tx.any(sql.type(selectedRow)`
        SELECT id, message_id, ${microsOf(sql.identifier(["received_at"]))} AS received_us FROM events
        WHERE ${sql.join(conditions, sql.fragment` AND `)}
        ORDER BY received_at, id LIMIT ${limit + 1}`);
      const page = rows.slice(0, limit);
      const messageIds = [...new Set(page.map((r) => r.message_id))];
      const erased = await eraseMessages(tx, messageIds, { erasureId });
      const attempts = await clearResponseExcerpts(tx, [...erased.messages, ...erased.alreadyErased]);
      const skipped = new Set(erased.skipped);
      const row = await tx.one(sql.type(erasureRow)`
        INSERT INTO erasures (id, tenant_id, api_key_id, event_ids, message_id, endpoint_id, received_after, received_before,
          events_matched, events_erased, messages_erased, attempts_erased, events_skipped)
        VALUES (${erasureId}, ${tenantId}, ${isUuid(caller.keyId) ? caller.keyId : null},
          ${sql.array(selector.kind === "events" ? selector.eventIds : [], "uuid")},
          ${selector.kind === "message" ? selector.messageId : null}, ${selector.kind === "range" ? selector.endpointId ?? null : null},
          ${selector.kind === "range" && selector.after ? selector.after : null}, ${selector.kind === "range" && selector.before ? selector.before : null},
          ${page.length}, ${erased.events.length}, ${erased.messages.length}, ${attempts}, ${page.filter((r) => skipped.has(r.message_id)).length})
        RETURNING ${ERASURE_COLUMNS}`);
      const last = page.at(-1);
      return { row, next: rows.length > limit && last ? encodeCursor([last.received_us, last.id]) : "" };
    });
    this.#metrics.erased(row.messages_erased, row.events_erased, row.attempts_erased);
    return { erasure: toProto(row), nextPageToken: next };
  };

  listErasures = async (req: ListErasuresRequest, ctx: HandlerContext) => {
    const tenantId = await tenantFor(this.#pool, req.tenantId, ctx);
    const limit = pageSize(req.pageSize);
    const cursor = decodeCursor(req.pageToken, 1);
    if (cursor && !(/^\d{1,19}$/.test(cursor[0]!) && BigInt(cursor[0]!) <= MAX_BIGINT)) throw new KapselError("E1006", "page_token is not valid");
    const rows = await this.#pool.any(sql.type(erasureRow)`
      SELECT ${ERASURE_COLUMNS} FROM erasures
      WHERE tenant_id = ${tenantId} ${cursor ? sql.fragment`AND seq < ${cursor[0]!}::bigint` : sql.fragment``}
      ORDER BY seq DESC LIMIT ${limit + 1}`);
    const page = paginate(rows, limit, (r) => [r.seq]);
    return { erasures: page.items.map(toProto), nextPageToken: page.next };
  };
}
