// WatchEvents: the tenant's events as they are received and as their delivery state changes, for
// the console's live timeline. Each stream polls Postgres (so changes made by any server process
// are seen), cheaply:
// - new events: the tenant's events received since the last look, through the
//   (tenant_id, received_at) index;
// - changed events: every delivery outcome inserts an attempt in the same transaction as the
//   event's new status, and attempts carry an increasing `seq` (unique index), so the events of
//   the attempts recorded since the last look are exactly the ones that changed.
// Both looks re-read a short overlap (a transaction may commit a little after a later one), and an
// event is sent again only when its status or attempt count moved. The stream is a live view,
// bounded per look; the list (ListEvents) stays the source of truth, which is why the first message
// is empty: "you are subscribed, (re)load the list now".
// Bounded: a per-tenant (per-process) cap on concurrent streams (E1005 beyond it), each stream
// ends at its deadline or after MAX_LIFETIME_MS, whichever comes first.
import type { HandlerContext } from "@connectrpc/connect";
import { sql, type DatabasePool } from "slonik";
import { z } from "zod";
import { tenantOf } from "../auth/auth-context.ts";
import { KapselError } from "../errors.ts";
import type { Event, WatchEventsRequest } from "@kapsel/contracts/management";
import { requireUuid } from "../uuid.ts";
import { checkSubscription, takesType } from "../ingest/subscriptions.ts";
import { EVENT_COLUMNS, EVENTS, eventRow, toProto, type EventRow } from "./events.ts";
import { sleep } from "../abortable-sleep.ts";

export interface WatchEventsOptions {
  /** Concurrent streams one tenant may hold in this process. */
  maxStreamsPerTenant: number;
  /** A stream without a shorter deadline ends (normally) after this long; clients reopen it. */
  maxLifetimeMs: number;
  pollMs: number;
  /** An empty message after this much silence keeps idle proxies from cutting the stream. */
  heartbeatMs: number;
}

export const WATCH_DEFAULTS: WatchEventsOptions = {
  maxStreamsPerTenant: 10,
  maxLifetimeMs: 10 * 60_000,
  pollMs: 1000,
  heartbeatMs: 15_000,
};

/** How far back each look re-reads, for transactions that commit out of order. */
const OVERLAP_MS = 2000;
/** Rows one look reads at most, per kind. */
const LOOK_LIMIT = 1000;
/** Events whose last sent state is remembered (to send only changes). */
const REMEMBERED = 50_000;

const micros = (us: bigint) => sql.fragment`(to_timestamp(0) + ${us.toString()}::bigint * interval '1 microsecond')`;

export class EventWatch {
  readonly #pool: DatabasePool;
  readonly #options: WatchEventsOptions;
  readonly #streams = new Map<string, number>();

  constructor(pool: DatabasePool, options: Partial<WatchEventsOptions> = {}) {
    this.#pool = pool;
    this.#options = { ...WATCH_DEFAULTS, ...options };
  }

  /** Open streams per tenant (for tests and metrics). */
  open(tenantId: string): number {
    return this.#streams.get(tenantId) ?? 0;
  }

  async *watchEvents(req: WatchEventsRequest, ctx: HandlerContext) {
    const tenantId = tenantOf(ctx);
    const endpointId = req.endpointId === "" ? undefined : requireUuid(req.endpointId, "endpoint_id");
    if (req.eventType !== "") checkSubscription([req.eventType], []);
    if (endpointId) {
      const exists = await this.#pool.maybeOne(sql.unsafe`SELECT 1 FROM endpoints WHERE id = ${endpointId} AND tenant_id = ${tenantId}`);
      if (!exists) throw new KapselError("E1003");
    }
    const held = this.open(tenantId);
    if (held >= this.#options.maxStreamsPerTenant) {
      throw new KapselError("E1005", `this tenant already holds ${held} WatchEvents streams (at most ${this.#options.maxStreamsPerTenant})`, { retryAfterMs: 5000 });
    }
    this.#streams.set(tenantId, held + 1);
    try {
      yield* this.#stream(tenantId, endpointId, req.eventType, ctx);
    } finally {
      const left = this.open(tenantId) - 1;
      if (left > 0) this.#streams.set(tenantId, left);
      else this.#streams.delete(tenantId);
    }
  }

  async *#stream(tenantId: string, endpointId: string | undefined, eventType: string, ctx: HandlerContext) {
    const { pollMs, heartbeatMs, maxLifetimeMs } = this.#options;
    const endsAt = Date.now() + Math.min(ctx.timeoutMs() ?? Infinity, maxLifetimeMs);
    const start = await this.#pool.one(sql.type(z.object({ now_us: z.string(), seq: z.string() }))`
      SELECT (extract(epoch FROM now()) * 1000000)::bigint::text AS now_us,
        coalesce((SELECT max(seq) FROM delivery_attempts), 0)::text AS seq`);
    let newestUs = BigInt(start.now_us);
    let saturated = false;
    // (when, highest seq then): a look reads attempts after the mark made OVERLAP_MS ago.
    const seqMarks: { at: number; seq: bigint }[] = [{ at: Date.now(), seq: BigInt(start.seq) }];
    const sent = new Map<string, string>();
    const endpointFilter = (...column: string[]) => (endpointId ? sql.fragment`AND ${sql.identifier(column)} = ${endpointId}` : sql.fragment``);

    yield { events: [] };
    let lastYield = Date.now();
    for (;;) {
      const wait = Math.min(pollMs, endsAt - Date.now());
      if (wait > 0) await sleep(wait, ctx.signal);
      // A deadline or cancellation reaches the client as such; our own lifetime ends normally.
      if (ctx.signal.aborted) throw ctx.signal.reason;
      if (Date.now() >= endsAt) return;

      const fromUs: bigint = saturated ? newestUs : newestUs - BigInt(OVERLAP_MS * 1000);
      const received: readonly EventRow[] = await this.#pool.any(sql.type(eventRow)`
        SELECT ${EVENT_COLUMNS} FROM ${EVENTS}
        WHERE events.tenant_id = ${tenantId} ${endpointFilter("events", "endpoint_id")} AND events.received_at >= ${micros(fromUs)}
        ORDER BY events.received_at, events.id LIMIT ${LOOK_LIMIT}`);
      saturated = received.length === LOOK_LIMIT;
      for (const r of received) if (BigInt(r.received_us) > newestUs) newestUs = BigInt(r.received_us);

      const now = Date.now();
      const mark = [...seqMarks].reverse().find((m) => m.at <= now - OVERLAP_MS) ?? seqMarks[0]!;
      const changes = await this.#pool.one(sql.type(z.object({ top: z.string().nullable(), ids: z.array(z.string()) }))`
        SELECT (SELECT max(seq) FROM delivery_attempts)::text AS top,
          array(SELECT DISTINCT event_id FROM (
            SELECT event_id FROM delivery_attempts
            WHERE seq > ${mark.seq.toString()}::bigint AND tenant_id = ${tenantId} ${endpointFilter("endpoint_id")}
            ORDER BY seq LIMIT ${LOOK_LIMIT}) recent)::text[] AS ids`);
      seqMarks.push({ at: now, seq: BigInt(changes.top ?? "0") });
      while (seqMarks.length > 1 && seqMarks[1]!.at <= now - OVERLAP_MS) seqMarks.shift();
      const changed = changes.ids.length === 0 ? [] : await this.#pool.any(sql.type(eventRow)`
        SELECT ${EVENT_COLUMNS} FROM ${EVENTS} WHERE events.id = ANY(${sql.array(changes.ids, "uuid")}) AND events.tenant_id = ${tenantId}`);

      const events = this.#unsent([...received, ...changed], eventType, sent);
      if (events.length > 0 || Date.now() - lastYield >= heartbeatMs) {
        yield { events };
        lastYield = Date.now();
      }
    }
  }

  /** The rows whose state was not sent yet (converted, type-filtered), remembering what is sent. */
  #unsent(rows: readonly EventRow[], eventType: string, sent: Map<string, string>): Event[] {
    const out = new Map<string, Event>();
    for (const row of rows) {
      const event = toProto(row);
      if (eventType !== "" && !takesType([eventType], event.eventType)) continue;
      const version = `${row.status}/${row.attempt_count}`;
      if (sent.get(row.id) === version) continue;
      sent.delete(row.id);
      sent.set(row.id, version);
      out.set(row.id, event);
    }
    while (sent.size > REMEMBERED) sent.delete(sent.keys().next().value!);
    return [...out.values()];
  }
}
