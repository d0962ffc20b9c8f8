// Events and their attempts: listing, inspection, manual retry, bulk recovery, watching, and
// per-endpoint delivery health. Every query is filtered by the caller's tenant.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext } from "@connectrpc/connect";
import { sql, type DatabasePool } from "slonik";
import { z } from "zod";
import { tenantOf } from "../auth/auth-context.ts";
import type { NotifyChannel } from "../db/notify-channel.ts";
import { ATTEMPT_OUTCOMES, type AttemptOutcome as AttemptOutcomeName } from "../delivery/attempt-outcome.ts";
import type { EventChanges } from "../delivery/event-changes.ts";
import { eventStatusIs, eventStatusSql, type EventStatusName, type JobQueue } from "../delivery/job-queue.ts";
import { KapselError } from "../errors.ts";
import {
  AttemptOutcome, AttemptSchema, CircuitState, EventSchema, EventStatus,
  type Attempt, type Event, type GetEndpointHealthRequest, type GetEventRequest, type ListEventsRequest,
  type RecoverEventsRequest, type RetryEventRequest, type WatchEventRequest,
} from "@kapsel/contracts/management";
import { requireUuid } from "../uuid.ts";
import { eventTypeIs } from "./event-type-filter.ts";
import { decodeCursor, pageSize, paginate } from "./pagination.ts";
import { at, atMicros, microsOf, timestampFromMicros } from "./timestamps.ts";

const STATUS: Record<EventStatusName, EventStatus> = {
  pending: EventStatus.PENDING,
  delivering: EventStatus.DELIVERING,
  delivered: EventStatus.DELIVERED,
  failed: EventStatus.FAILED,
};
const STATUS_NAME = Object.fromEntries(Object.entries(STATUS).map(([k, v]) => [v, k])) as Record<number, EventStatusName>;
const OUTCOME: Record<AttemptOutcomeName, AttemptOutcome> = {
  delivered: AttemptOutcome.DELIVERED,
  http_error: AttemptOutcome.HTTP_ERROR,
  timeout: AttemptOutcome.TIMEOUT,
  network_error: AttemptOutcome.NETWORK_ERROR,
};
const CIRCUIT: Record<string, CircuitState> = { closed: CircuitState.CLOSED, open: CircuitState.OPEN, half_open: CircuitState.HALF_OPEN };

export const eventRow = z.object({
  id: z.string(),
  endpoint_id: z.string(),
  message_id: z.string(),
  event_type: z.string(),
  channels: z.array(z.string()),
  status: z.enum(["pending", "delivering", "delivered", "failed"]),
  content_type: z.string(),
  idempotency_key: z.string().nullable(),
  headers: z.record(z.string(), z.string()),
  attempt_count: z.number(),
  next_attempt_at: z.date().nullable(),
  request_id: z.string(),
  payload_size: z.number(),
  /** received_at in microseconds since the epoch: Postgres keeps microseconds, a JS Date only
   * milliseconds, and a page cursor or a time filter must not lose the difference. */
  received_us: z.string(),
  /** When the payload was erased (microseconds, as received_us), or null while kept. */
  erased_us: z.string().nullable(),
  erasure_id: z.string().nullable(),
});
export type EventRow = z.infer<typeof eventRow>;
/** An event with what its message says of it. The table is not aliased: eventStatusSql names it. */
export const EVENT_COLUMNS = sql.fragment`events.id, events.endpoint_id, events.message_id, m.event_type, m.channels, ${eventStatusSql} AS status,
  m.content_type, m.idempotency_key, m.headers, events.attempt_count, events.next_attempt_at, m.request_id,
  octet_length(m.payload) AS payload_size, ${microsOf(sql.identifier(["events", "received_at"]))} AS received_us,
  ${microsOf(sql.identifier(["events", "payload_erased_at"]))} AS erased_us, m.erasure_id`;
export const EVENTS = sql.fragment`events JOIN messages m ON m.id = events.message_id`;

const attemptRow = z.object({
  id: z.string(),
  attempt: z.number(),
  outcome: z.enum(ATTEMPT_OUTCOMES),
  status_code: z.number().nullable(),
  url: z.string(),
  started_at: z.date(),
  duration_ms: z.number(),
  error: z.string(),
  response_excerpt: z.string(),
  payload_sha256: z.string(),
  response_sha256: z.string().nullable(),
});

function erasedError(message = "the event's payload was erased; it cannot be delivered again (its receipts and proofs remain)"): KapselError {
  return new KapselError("E2006", message);
}

export const FINAL_STATUSES = new Set(["delivered", "failed"]);

export function toProto(row: EventRow, extra: { payload?: Uint8Array; attempts?: Attempt[] } = {}): Event {
  return create(EventSchema, {
    id: row.id,
    endpointId: row.endpoint_id,
    messageId: row.message_id,
    eventType: row.event_type,
    channels: row.channels,
    status: STATUS[row.status],
    contentType: row.content_type,
    idempotencyKey: row.idempotency_key ?? "",
    receivedAt: timestampFromMicros(row.received_us),
    headers: row.headers,
    attemptCount: row.attempt_count,
    nextAttemptAt: row.status === "pending" && row.next_attempt_at ? timestampFromDate(row.next_attempt_at) : undefined,
    requestId: row.request_id,
    payloadSize: row.payload_size,
    payloadErasedAt: row.erased_us === null ? undefined : timestampFromMicros(row.erased_us),
    erasureId: row.erasure_id ?? "",
    ...extra,
  });
}

export class Events {
  readonly #pool: DatabasePool;
  readonly #queue: JobQueue;
  readonly #changes: EventChanges;
  readonly #jobs: NotifyChannel;

  constructor(pool: DatabasePool, queue: JobQueue, changes: EventChanges, jobs: NotifyChannel) {
    this.#pool = pool;
    this.#queue = queue;
    this.#changes = changes;
    this.#jobs = jobs;
  }

  async #find(tenantId: string, rawId: string): Promise<EventRow> {
    const id = requireUuid(rawId, "event_id");
    const row = await this.#pool.maybeOne(sql.type(eventRow)`SELECT ${EVENT_COLUMNS} FROM ${EVENTS} WHERE events.id = ${id} AND events.tenant_id = ${tenantId}`);
    if (!row) throw new KapselError("E2002");
    return row;
  }

  async #attempts(eventId: string) {
    const rows = await this.#pool.any(sql.type(attemptRow)`
      SELECT id, attempt, outcome, status_code, url, started_at, duration_ms, error, response_excerpt, payload_sha256, response_sha256
      FROM delivery_attempts WHERE event_id = ${eventId} ORDER BY attempt, started_at`);
    return rows.map((a) => create(AttemptSchema, {
      id: a.id,
      attempt: a.attempt,
      outcome: OUTCOME[a.outcome],
      statusCode: a.status_code ?? 0,
      url: a.url,
      startedAt: timestampFromDate(a.started_at),
      durationMs: a.duration_ms,
      error: a.error,
      responseExcerpt: a.response_excerpt,
      payloadSha256: a.payload_sha256,
      responseSha256: a.response_sha256 ?? "",
    }));
  }

  listEvents = async (req: ListEventsRequest, ctx: HandlerContext) => {
    const tenantId = tenantOf(ctx);
    const limit = pageSize(req.pageSize);
    const cursor = decodeCursor(req.pageToken, 2);
    const conditions = [sql.fragment`events.tenant_id = ${tenantId}`];
    if (req.endpointId !== "") conditions.push(sql.fragment`events.endpoint_id = ${requireUuid(req.endpointId, "endpoint_id")}`);
    if (req.messageId !== "") conditions.push(sql.fragment`events.message_id = ${requireUuid(req.messageId, "message_id")}`);
    if (req.eventType !== "") conditions.push(eventTypeIs(sql.identifier(["m", "event_type"]), req.eventType));
    if (req.status !== EventStatus.UNSPECIFIED) {
      const name = STATUS_NAME[req.status];
      if (!name) throw new KapselError("E1006", "status is not valid");
      conditions.push(eventStatusIs(name));
    }
    if (req.receivedAfter) conditions.push(sql.fragment`events.received_at >= ${at(req.receivedAfter, "received_after")}`);
    if (req.receivedBefore) conditions.push(sql.fragment`events.received_at < ${at(req.receivedBefore, "received_before")}`);
    if (cursor) conditions.push(sql.fragment`(events.received_at, events.id) < (${atMicros(cursor[0]!)}, ${requireUuid(cursor[1]!, "page_token")}::uuid)`);
    const rows = await this.#pool.any(sql.type(eventRow)`
      SELECT ${EVENT_COLUMNS} FROM ${EVENTS} WHERE ${sql.join(conditions, sql.fragment` AND `)}
      ORDER BY events.received_at DESC, events.id DESC LIMIT ${limit + 1}`);
    const page = paginate(rows, limit, (r) => [r.received_us, r.id]);
    return { events: page.items.map((r) => toProto(r)), nextPageToken: page.next };
  };

  getEvent = async (req: GetEventRequest, ctx: HandlerContext) => {
    const row = await this.#find(tenantOf(ctx), req.eventId);
    const payload = await this.#pool.oneFirst(sql.type(z.object({ payload: z.instanceof(Buffer) }))`SELECT payload FROM messages WHERE id = ${row.message_id}`);
    return { event: toProto(row, { payload: new Uint8Array(payload), attempts: await this.#attempts(row.id) }) };
  };

  retryEvent = async (req: RetryEventRequest, ctx: HandlerContext) => {
    const tenantId = tenantOf(ctx);
    const current = await this.#find(tenantId, req.eventId);
    if (current.erased_us !== null) throw erasedError();
    const [requeued] = await this.#queue.requeueFailed(tenantId, { eventId: current.id });
    if (!requeued) {
      // An erasure may have committed between the look-up and the requeue (which re-checks it).
      const now = await this.#find(tenantId, current.id);
      if (now.erased_us !== null) throw erasedError();
      // Its endpoint is gone for good: a job for it would never be claimed.
      const deleted = await this.#pool.maybeOne(sql.unsafe`SELECT 1 FROM endpoints WHERE id = ${current.endpoint_id} AND deleted_at IS NOT NULL`);
      if (deleted) throw new KapselError("E2003", "the event's endpoint was deleted; it cannot be retried");
      throw new KapselError("E2003", `event is ${now.status}; only failed events can be retried`);
    }
    const row = await this.#find(tenantId, requeued);
    this.#changes.changed([row.id]);
    this.#jobs.notify();
    return { event: toProto(row) };
  };

  recoverEvents = async (req: RecoverEventsRequest, ctx: HandlerContext) => {
    const tenantId = tenantOf(ctx);
    if (req.endpointId === "" && req.eventType === "") throw new KapselError("E1006", "endpoint_id or event_type is required");
    const endpointId = req.endpointId === "" ? undefined : requireUuid(req.endpointId, "endpoint_id");
    if (endpointId !== undefined) {
      const exists = await this.#pool.maybeOne(sql.unsafe`SELECT 1 FROM endpoints WHERE id = ${endpointId} AND tenant_id = ${tenantId} AND deleted_at IS NULL`);
      if (!exists) throw new KapselError("E1003");
    }
    if (!req.since) throw new KapselError("E1006", "since is required");
    const until = req.until ? at(req.until, "until") : sql.fragment`now()`;
    const since = at(req.since, "since");
    const eventType = req.eventType === "" ? undefined : eventTypeIs(sql.identifier(["m", "event_type"]), req.eventType);
    const ids = await this.#queue.requeueFailed(tenantId, { endpointId, eventType, since, until });
    this.#changes.changed(ids);
    if (ids.length > 0) this.#jobs.notify();
    // Failed events of the selection that stayed failed because their payload is gone.
    const erased = await this.#pool.oneFirst(sql.type(z.object({ n: z.number() }))`
      SELECT count(*)::int AS n FROM events JOIN messages m ON m.id = events.message_id
      WHERE events.tenant_id = ${tenantId} AND events.status = 'failed' AND events.payload_erased_at IS NOT NULL
        ${endpointId === undefined ? sql.fragment`` : sql.fragment`AND events.endpoint_id = ${endpointId}`}
        ${eventType === undefined ? sql.fragment`` : sql.fragment`AND ${eventType}`}
        AND events.received_at >= ${since} AND events.received_at < ${until}`);
    if (ids.length === 0 && erased > 0) throw erasedError(`all ${erased} failed events selected have an erased payload; they cannot be delivered again`);
    return { count: ids.length, erased };
  };

  async *watchEvent(req: WatchEventRequest, ctx: HandlerContext) {
    const tenantId = tenantOf(ctx);
    let row = await this.#find(tenantId, req.eventId);
    let last = "";
    for (;;) {
      const key = `${row.status}/${row.attempt_count}`;
      if (key !== last) {
        last = key;
        yield { event: toProto(row, { attempts: await this.#attempts(row.id) }) };
      }
      if (FINAL_STATUSES.has(row.status)) return;
      // A deadline or cancellation must reach the client as such, not as a normal end of stream.
      if (ctx.signal.aborted) throw ctx.signal.reason;
      await this.#changes.next(row.id, 1000, ctx.signal);
      if (ctx.signal.aborted) throw ctx.signal.reason;
      row = await this.#find(tenantId, row.id);
    }
  }

  getEndpointHealth = async (req: GetEndpointHealthRequest, ctx: HandlerContext) => {
    const tenantId = tenantOf(ctx);
    const endpointId = requireUuid(req.endpointId, "endpoint_id");
    const h = await this.#pool.maybeOne(sql.type(z.object({
      state: z.string().nullable(),
      opened_at: z.date().nullable(),
      consecutive_failures: z.number().nullable(),
      recent: z.number(),
      delivered: z.number(),
      last_attempt_at: z.date().nullable(),
      last_error: z.string().nullable(),
      pending: z.number(),
    }))`
      SELECT cb.state, cb.opened_at, cb.consecutive_failures,
        (SELECT count(*)::int FROM delivery_attempts a WHERE a.endpoint_id = p.id AND a.started_at > now() - interval '1 hour') AS recent,
        (SELECT count(*)::int FROM delivery_attempts a WHERE a.endpoint_id = p.id AND a.started_at > now() - interval '1 hour' AND a.outcome = 'delivered') AS delivered,
        (SELECT max(started_at) FROM delivery_attempts a WHERE a.endpoint_id = p.id) AS last_attempt_at,
        (SELECT CASE WHEN a.error <> '' THEN a.error ELSE 'HTTP ' || a.status_code END FROM delivery_attempts a
          WHERE a.endpoint_id = p.id AND a.outcome <> 'delivered' ORDER BY a.started_at DESC LIMIT 1) AS last_error,
        (SELECT count(*)::int FROM delivery_jobs j WHERE j.endpoint_id = p.id) AS pending
      FROM endpoints p LEFT JOIN circuit_breakers cb ON cb.endpoint_id = p.id
      WHERE p.id = ${endpointId} AND p.tenant_id = ${tenantId} AND p.deleted_at IS NULL`);
    if (!h) throw new KapselError("E1003");
    return {
      endpointId,
      circuitState: CIRCUIT[h.state ?? "closed"],
      openedAt: h.opened_at ? timestampFromDate(h.opened_at) : undefined,
      consecutiveFailures: h.consecutive_failures ?? 0,
      successRate: h.recent === 0 ? 1 : h.delivered / h.recent,
      recentAttempts: h.recent,
      lastError: h.last_error ?? "",
      lastAttemptAt: h.last_attempt_at ? timestampFromDate(h.last_attempt_at) : undefined,
      pendingEvents: h.pending,
    };
  };
}
