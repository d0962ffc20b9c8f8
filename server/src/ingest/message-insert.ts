// The ingest statement: idempotency keys, messages, their events (one per destination endpoint)
// and the events' delivery jobs, written by one multi-row statement — in autocommit with
// synchronous_commit on for ingest (durable when it returns), or inside the caller's transaction
// for Kapsel's own operational events — and the read-back of keys that lost to an earlier
// message. The batching in front of it is group-commit.ts.
import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { handOffEndpointsSql, type HandedEndpoint, type HandOffReservation } from "../delivery/job-handoff.ts";
import { enqueueJobsSql, type ClaimedRow } from "../delivery/job-queue.ts";
import type { CarriedContext } from "../tracing/trace-context.ts";

/** The idempotency scope of fan-out by the RPCs: keys are per tenant. */
export const TENANT_SCOPE = "00000000-0000-0000-0000-000000000000";

export interface NewMessage {
  id: string;
  tenantId: string;
  /** Where its idempotency key is unique: the endpoint (endpoint-targeted), the source, or
   * TENANT_SCOPE (fan-out by the RPCs). */
  scopeId: string;
  eventType: string;
  channels: string[];
  payload: Buffer;
  contentType: string;
  headers: Record<string, string>;
  idempotencyKey: string | undefined;
  sourceId: string | undefined;
  requestId: string;
  /** The trace its deliveries continue (tracing/ingest-tracing.ts); undefined: none. */
  trace?: CarriedContext | undefined;
  /** One event per destination endpoint (none when nothing subscribes), ids made by the caller. */
  events: { id: string; endpointId: string }[];
}

export interface Accepted {
  messageId: string;
  /** The message's events, in the order they were made. */
  eventIds: string[];
  duplicate: boolean;
}

/** An idempotency key's identity: unique per tenant and scope. Undefined without a key. */
export function idempotencyKeyOf(m: Pick<NewMessage, "tenantId" | "scopeId" | "idempotencyKey">): string | undefined {
  return m.idempotencyKey === undefined ? undefined : `${m.tenantId}\n${m.scopeId}\n${m.idempotencyKey}`;
}

/** A key that lost its insert but whose winner cannot be read back: it expired and was replaced
 * between the two statements, which a window far longer than a statement makes impossible in
 * practice. The batch fails rather than answer a wrong id. */
export class IdempotencyKeyLost extends Error {
  readonly messageId: string;

  constructor(messageId: string) {
    super(`idempotency key of message ${messageId} neither stored nor found`);
    this.messageId = messageId;
  }
}

const idRow = z.object({ id: z.string() });
/** The statement's answer: stored messages, jobs inserted leased to this process, and their
 * endpoints (job-handoff.ts), one kind per row. */
const writtenRow = z.object({
  kind: z.enum(["message", "job", "endpoint"]),
  id: z.string(),
  url: z.string().nullable(),
  signing_secret: z.instanceof(Buffer).nullable(),
  previous_secret: z.instanceof(Buffer).nullable(),
  max_attempts: z.number().nullable(),
  timeout_ms: z.number().nullable(),
});

/** What a batch's statement did: one answer per message, and the jobs handed to this process's
 * dispatcher (none without a reservation). */
export interface Inserted {
  accepted: Accepted[];
  handed: ClaimedRow[];
}
const keyRow = z.object({ tenant_id: z.string(), scope_id: z.string(), key: z.string(), message_id: z.string(), event_ids: z.array(z.string()) });

/** A batch with its duplicates resolved in memory: the messages to write, and for each message of
 * the batch the index of the first one with its key (its own index when it is first). */
interface Plan {
  unique: NewMessage[];
  sameAs: number[];
}

function plan(messages: readonly NewMessage[]): Plan {
  const firstByKey = new Map<string, number>();
  const unique: NewMessage[] = [];
  const sameAs: number[] = messages.map((m, i) => {
    const k = idempotencyKeyOf(m);
    if (k === undefined) {
      unique.push(m);
      return i;
    }
    const first = firstByKey.get(k);
    if (first !== undefined) return first;
    firstByKey.set(k, i);
    unique.push(m);
    return i;
  });
  return { unique, sameAs };
}

/** Stores messages with their events and jobs in one statement. Duplicates — within the batch or
 * against earlier messages — get the first message and its events. `marker` leads the statement's
 * text as a comment, naming it among the database's sessions (and for the tests' proxy). With a reservation, the jobs of its events whose endpoint may be
 * sent to now are inserted leased and returned ready to send (delivery/job-handoff.ts). */
export async function insertMessages(db: CommonQueryMethods, messages: readonly NewMessage[], idempotencyWindowMs: number, marker?: string,
  handOff?: HandOffReservation): Promise<Inserted> {
  const batch = plan(messages);
  const { stored, handed } = await writeMessages(db, batch.unique, idempotencyWindowMs, marker, handOff);
  return { accepted: await answer(db, messages, batch, stored), handed };
}

/** What a batch's statement left behind, read afresh: the answers if any of its messages is
 * stored (the statement committed), or if every one lost to an earlier message with its key (the
 * statement wrote nothing either way); undefined when it cannot have committed. For the moment
 * after a lost connection, once no session can still be running the statement. */
export async function answerFromStored(db: CommonQueryMethods, messages: readonly NewMessage[]): Promise<Accepted[] | undefined> {
  const batch = plan(messages);
  const ids = batch.unique.map((m) => m.id);
  const stored = new Set(await db.anyFirst(sql.type(idRow)`SELECT id FROM messages WHERE id = ANY(${sql.array(ids, "uuid")})`));
  if (stored.size === 0 && batch.unique.some((m) => m.idempotencyKey === undefined)) return undefined;
  try {
    return await answer(db, messages, batch, stored);
  } catch (err) {
    // Nothing stored and a key that no message holds: the statement did not commit.
    if (err instanceof IdempotencyKeyLost && stored.size === 0) return undefined;
    throw err;
  }
}

/** The one statement; returns the ids of the messages it stored and the jobs it handed over. */
async function writeMessages(db: CommonQueryMethods, unique: readonly NewMessage[], idempotencyWindowMs: number, marker: string | undefined,
  handOff: HandOffReservation | undefined): Promise<{ stored: Set<string>; handed: ClaimedRow[] }> {
  const receivedAt = new Date();
  // One row per message (and per event) as parallel arrays, so the statement text and its bind
  // parameters stay the same whatever the batch size. Payloads travel as one binary parameter
  // sliced by offset, not as a bytea[] that would go as hex text.
  const offsets: number[] = [];
  let bytes = 0;
  for (const m of unique) {
    offsets.push(bytes + 1);
    bytes += m.payload.length;
  }
  const column = <T>(f: (m: NewMessage) => T) => unique.map(f);
  const events = unique.flatMap((m) => m.events.map((e) => ({ ...e, messageId: m.id })));
  // UUIDs and integers never need quoting, so their array literals are joined here rather than
  // escaped element by element by the driver.
  const plain = (values: (string | number)[]) => `{${values.join(",")}}`;
  // Without trace context (the rule when tracing is off) the columns go as empty arrays, which
  // unnest pads with NULLs: no per-row work for them.
  const traced = unique.some((m) => m.trace !== undefined);
  const rows = await db.any(sql.type(writtenRow)`
    ${marker === undefined ? sql.fragment`` : sql.fragment`/* ${sql.literalValue(marker)} */`}
    WITH input AS (
      SELECT id, tenant_id, scope_id, event_type, channels::text[] AS channels,
        substring(${sql.binary(Buffer.concat(column((m) => m.payload), bytes))}::bytea FROM payload_start FOR payload_length) AS payload,
        content_type, headers, idempotency_key, source_id, request_id, event_count, traceparent, tracestate
      FROM unnest(${plain(column((m) => m.id))}::uuid[], ${plain(column((m) => m.tenantId))}::uuid[],
        ${plain(column((m) => m.scopeId))}::uuid[], ${sql.array(column((m) => m.eventType), "text")},
        ${sql.array(column((m) => `{${m.channels.join(",")}}`), "text")},
        ${plain(offsets)}::int4[], ${plain(column((m) => m.payload.length))}::int4[],
        ${sql.array(column((m) => m.contentType), "text")}, ${sql.array(column((m) => JSON.stringify(m.headers)), "jsonb")},
        ${sql.array(column((m) => m.idempotencyKey ?? null), "text")}, ${sql.array(column((m) => m.sourceId ?? null), "uuid")},
        ${sql.array(column((m) => m.requestId), "text")}, ${plain(column((m) => m.events.length))}::int4[],
        ${sql.array(traced ? column((m) => m.trace?.traceparent ?? null) : [], "text")},
        ${sql.array(traced ? column((m) => m.trace?.tracestate ?? null) : [], "text")})
        AS t (id, tenant_id, scope_id, event_type, channels, payload_start, payload_length, content_type, headers,
          idempotency_key, source_id, request_id, event_count, traceparent, tracestate)
    ),
    keys AS (
      INSERT INTO idempotency_keys AS k (tenant_id, scope_id, key, message_id)
      SELECT tenant_id, scope_id, idempotency_key, id FROM input WHERE idempotency_key IS NOT NULL
      -- Every statement takes key locks in one global order, so two processes whose batches
      -- share keys wait for each other instead of deadlocking.
      ORDER BY tenant_id, scope_id, idempotency_key
      ON CONFLICT (tenant_id, scope_id, key) DO UPDATE SET message_id = excluded.message_id, created_at = now()
        WHERE k.created_at < now() - ${idempotencyWindowMs} * interval '1 millisecond'
      RETURNING message_id
    ),
    accepted AS (
      SELECT * FROM input WHERE idempotency_key IS NULL OR id IN (SELECT message_id FROM keys)
    ),
    stored AS (
      INSERT INTO messages (id, tenant_id, event_type, channels, payload, content_type, headers, idempotency_key,
        source_id, request_id, event_count, traceparent, tracestate)
      SELECT id, tenant_id, event_type, channels, payload, content_type, headers, idempotency_key, source_id, request_id, event_count,
        traceparent, tracestate
      FROM accepted
      RETURNING id
    ),
    fanned AS (
      SELECT e.id, a.tenant_id, e.endpoint_id, e.message_id, e.handoff
      FROM unnest(${plain(events.map((e) => e.id))}::uuid[], ${plain(events.map((e) => e.endpointId))}::uuid[],
        ${plain(events.map((e) => e.messageId))}::uuid[], ${plain(events.map((e) => (handOff?.eventIds.has(e.id) ? "t" : "f")))}::bool[])
        AS e (id, endpoint_id, message_id, handoff)
      JOIN accepted a ON a.id = e.message_id
    ),
    created AS (
      INSERT INTO events (id, tenant_id, endpoint_id, message_id) SELECT id, tenant_id, endpoint_id, message_id FROM fanned
    ),
    handed AS (${handOffEndpointsSql("fanned")}),
    jobs AS (${enqueueJobsSql("fanned", "handed", handOff)})
    SELECT 'message' AS kind, id::text, NULL::text AS url, NULL::bytea AS signing_secret, NULL::bytea AS previous_secret,
      NULL::int4 AS max_attempts, NULL::int4 AS timeout_ms FROM stored
    UNION ALL SELECT 'job', event_id::text, NULL, NULL, NULL, NULL, NULL FROM jobs WHERE lease_id IS NOT NULL
    UNION ALL SELECT 'endpoint', id::text, url, signing_secret, previous_secret, max_attempts, timeout_ms FROM handed`);
  const stored = new Set<string>();
  const leased: string[] = [];
  const endpoints = new Map<string, HandedEndpoint>();
  for (const r of rows) {
    if (r.kind === "message") stored.add(r.id);
    else if (r.kind === "job") leased.push(r.id);
    else endpoints.set(r.id, { url: r.url!, signing_secret: r.signing_secret!, previous_secret: r.previous_secret, max_attempts: r.max_attempts!, timeout_ms: r.timeout_ms! });
  }
  if (handOff === undefined || leased.length === 0) return { stored, handed: [] };
  const byEvent = new Map(unique.flatMap((m) => m.events.map((e) => [e.id, { m, endpointId: e.endpointId }] as const)));
  const handed = leased.map((eventId): ClaimedRow => {
    const { m, endpointId } = byEvent.get(eventId)!;
    return {
      event_id: eventId, endpoint_id: endpointId, attempt: 1, round_start: 0, lease_id: handOff.leaseId,
      tenant_id: m.tenantId, message_id: m.id, event_type: m.eventType, received_at: receivedAt,
      payload: m.payload, content_type: m.contentType, headers: m.headers, request_id: m.requestId,
      traceparent: m.trace?.traceparent ?? null, tracestate: m.trace?.tracestate ?? null,
      ...endpoints.get(endpointId)!,
    };
  });
  return { stored, handed };
}

/** One answer per message of the batch, given which of its messages are stored. */
async function answer(db: CommonQueryMethods, messages: readonly NewMessage[], { unique, sameAs }: Plan, stored: Set<string>): Promise<Accepted[]> {
  // Keys that lost: read the winner's message and events in a new statement, which also sees keys
  // that another process committed while ours waited on them.
  const lost = unique.filter((m) => !stored.has(m.id));
  const existing = new Map<string, { messageId: string; eventIds: string[] }>();
  if (lost.length > 0) {
    const rows = await db.any(sql.type(keyRow)`
      SELECT k.tenant_id, k.scope_id, k.key, k.message_id,
        coalesce((SELECT array_agg(e.id::text ORDER BY e.id) FROM events e WHERE e.message_id = k.message_id), '{}') AS event_ids
      FROM idempotency_keys k
      WHERE (k.tenant_id, k.scope_id, k.key) IN (${sql.join(lost.map((m) => sql.fragment`(${m.tenantId}::uuid, ${m.scopeId}::uuid, ${m.idempotencyKey!})`), sql.fragment`, `)})`);
    for (const r of rows) existing.set(`${r.tenant_id}\n${r.scope_id}\n${r.key}`, { messageId: r.message_id, eventIds: r.event_ids });
  }

  return messages.map((m, i) => {
    const first = messages[sameAs[i]!]!;
    if (stored.has(first.id)) return { messageId: first.id, eventIds: first.events.map((e) => e.id), duplicate: sameAs[i] !== i };
    const found = existing.get(idempotencyKeyOf(first)!);
    if (found === undefined) throw new IdempotencyKeyLost(first.id);
    return { ...found, duplicate: true };
  });
}
