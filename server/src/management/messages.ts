// Messages: what was sent once, before fan-out — listing (newest first, by type, source, channel
// and time) and one message with its payload and each of its events' status.
import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import {
  EventStatus, MessageEventSchema, MessageSchema,
  type GetMessageRequest, type ListMessagesRequest, type Message,
} from "@kapsel/contracts/management";
import { sql, type DatabasePool } from "slonik";
import { z } from "zod";
import { tenantOf } from "../auth/auth-context.ts";
import { eventStatusSql } from "../delivery/job-queue.ts";
import { KapselError } from "../errors.ts";
import { requireUuid } from "../uuid.ts";
import { eventTypeIs } from "./event-type-filter.ts";
import { decodeCursor, pageSize, paginate } from "./pagination.ts";
import { at, atMicros, microsOf, timestampFromMicros } from "./timestamps.ts";

const STATUS: Record<string, EventStatus> = {
  pending: EventStatus.PENDING,
  delivering: EventStatus.DELIVERING,
  delivered: EventStatus.DELIVERED,
  failed: EventStatus.FAILED,
};

const messageRow = z.object({
  id: z.string(),
  event_type: z.string(),
  channels: z.array(z.string()),
  content_type: z.string(),
  headers: z.record(z.string(), z.string()),
  idempotency_key: z.string().nullable(),
  source_id: z.string().nullable(),
  request_id: z.string(),
  payload_size: z.number(),
  event_count: z.number(),
  received_us: z.string(),
  erased_us: z.string().nullable(),
  erasure_id: z.string().nullable(),
});
type MessageRow = z.infer<typeof messageRow>;

const COLUMNS = sql.fragment`id, event_type, channels, content_type, headers, idempotency_key, source_id, request_id,
  octet_length(payload) AS payload_size, event_count, ${microsOf(sql.identifier(["received_at"]))} AS received_us,
  ${microsOf(sql.identifier(["payload_erased_at"]))} AS erased_us, erasure_id`;

const eventRow = z.object({ id: z.string(), endpoint_id: z.string(), status: z.string(), attempt_count: z.number() });

function toProto(row: MessageRow, extra: Partial<Pick<Message, "payload" | "events">> = {}): Message {
  return create(MessageSchema, {
    id: row.id,
    eventType: row.event_type,
    channels: row.channels,
    contentType: row.content_type,
    headers: row.headers,
    idempotencyKey: row.idempotency_key ?? "",
    receivedAt: timestampFromMicros(row.received_us),
    sourceId: row.source_id ?? "",
    payloadSize: row.payload_size,
    eventCount: row.event_count,
    requestId: row.request_id,
    payloadErasedAt: row.erased_us === null ? undefined : timestampFromMicros(row.erased_us),
    erasureId: row.erasure_id ?? "",
    ...extra,
  });
}

const CHANNEL = /^[A-Za-z0-9_.:-]{1,128}$/;

export class Messages {
  readonly #pool: DatabasePool;

  constructor(pool: DatabasePool) {
    this.#pool = pool;
  }

  listMessages = async (req: ListMessagesRequest, ctx: HandlerContext) => {
    const tenantId = tenantOf(ctx);
    const limit = pageSize(req.pageSize);
    const cursor = decodeCursor(req.pageToken, 2);
    const conditions = [sql.fragment`tenant_id = ${tenantId}`];
    if (req.eventType !== "") conditions.push(eventTypeIs(sql.identifier(["event_type"]), req.eventType));
    if (req.sourceId !== "") conditions.push(sql.fragment`source_id = ${requireUuid(req.sourceId, "source_id")}`);
    if (req.channel !== "") {
      if (!CHANNEL.test(req.channel)) throw new KapselError("E1006", "channel is not valid");
      conditions.push(sql.fragment`${req.channel} = ANY(channels)`);
    }
    if (req.receivedAfter) conditions.push(sql.fragment`received_at >= ${at(req.receivedAfter, "received_after")}`);
    if (req.receivedBefore) conditions.push(sql.fragment`received_at < ${at(req.receivedBefore, "received_before")}`);
    if (cursor) conditions.push(sql.fragment`(received_at, id) < (${atMicros(cursor[0]!)}, ${requireUuid(cursor[1]!, "page_token")}::uuid)`);
    const rows = await this.#pool.any(sql.type(messageRow)`
      SELECT ${COLUMNS} FROM messages WHERE ${sql.join(conditions, sql.fragment` AND `)}
      ORDER BY received_at DESC, id DESC LIMIT ${limit + 1}`);
    const page = paginate(rows, limit, (r) => [r.received_us, r.id]);
    return { messages: page.items.map((r) => toProto(r)), nextPageToken: page.next };
  };

  getMessage = async (req: GetMessageRequest, ctx: HandlerContext) => {
    const tenantId = tenantOf(ctx);
    const id = requireUuid(req.messageId, "message_id");
    const row = await this.#pool.maybeOne(sql.type(messageRow.extend({ payload: z.instanceof(Buffer) }))`
      SELECT ${COLUMNS}, payload FROM messages WHERE id = ${id} AND tenant_id = ${tenantId}`);
    // Another tenant's message is indistinguishable from one that does not exist.
    if (!row) throw new KapselError("E2004");
    const events = await this.#pool.any(sql.type(eventRow)`
      SELECT events.id, events.endpoint_id, ${eventStatusSql} AS status, events.attempt_count
      FROM events WHERE events.message_id = ${id} ORDER BY events.id`);
    return {
      message: toProto(row, {
        payload: new Uint8Array(row.payload),
        events: events.map((e) => create(MessageEventSchema, { eventId: e.id, endpointId: e.endpoint_id, status: STATUS[e.status], attemptCount: e.attempt_count })),
      }),
    };
  };
}
