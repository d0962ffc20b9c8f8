// One bounded batch of each kind of purge, for one tenant, in the caller's transaction. Each walks
// its table in (time, id) order from a cursor, so a pass visits every candidate once even when
// some cannot go yet (an event in flight is passed over, not revisited batch after batch), and
// returns the cursor to continue from (undefined when the candidates ran out).
//
// What is never touched: events in flight (pending or delivering, i.e. with a delivery job) and
// their payloads and attempts; attempts still waiting for the log (in log_queue), whose receipts
// the sequencer has yet to write; and anything in the log itself.
import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { atMicros, microsOf } from "../management/timestamps.ts";
import { eraseMessages } from "./erase-messages.ts";

/** A keyset position: a row's time (microseconds since the epoch) and id. */
export interface Cursor {
  us: string;
  id: string;
}

export interface BatchResult {
  next: Cursor | undefined;
}

const candidate = z.object({ id: z.string(), us: z.string() });

function after(cursor: Cursor | undefined, time: string, id: string) {
  return cursor === undefined
    ? sql.fragment`true`
    : sql.fragment`(${sql.identifier([time])}, ${sql.identifier([id])}) > (${atMicros(cursor.us)}, ${cursor.id}::uuid)`;
}

function nextOf(rows: readonly { id: string; us: string }[], limit: number): Cursor | undefined {
  const last = rows.at(-1);
  return rows.length < limit || !last ? undefined : { us: last.us, id: last.id };
}

const ago = (seconds: number) => sql.fragment`now() - ${seconds} * interval '1 second'`;

/** Payloads and headers of messages whose events have all been final for `seconds`. */
export async function purgePayloads(tx: CommonQueryMethods, tenantId: string, seconds: number, cursor: Cursor | undefined, limit: number): Promise<BatchResult & { messages: number }> {
  const rows = await tx.any(sql.type(candidate)`
    SELECT id, ${microsOf(sql.identifier(["received_at"]))} AS us FROM messages
    WHERE tenant_id = ${tenantId} AND payload_erased_at IS NULL AND received_at < ${ago(seconds)} AND ${after(cursor, "received_at", "id")}
      -- Passes over messages that cannot go yet, so a batch holds what it can act on; the check
      -- that counts is eraseMessages', under the row locks.
      AND NOT EXISTS (SELECT 1 FROM events e WHERE e.message_id = messages.id
        AND (e.status NOT IN ('delivered', 'failed') OR e.updated_at >= ${ago(seconds)}))
    ORDER BY received_at, id LIMIT ${limit}`);
  const erased = await eraseMessages(tx, rows.map((r) => r.id), { finalForSeconds: seconds });
  return { next: nextOf(rows, limit), messages: erased.messages.length };
}

/** Response excerpts of attempts that started `seconds` ago, unless their event is in flight. */
export async function purgeResponseExcerpts(tx: CommonQueryMethods, tenantId: string, seconds: number, cursor: Cursor | undefined, limit: number): Promise<BatchResult & { attempts: number }> {
  const rows = await tx.any(sql.type(candidate)`
    SELECT id, ${microsOf(sql.identifier(["started_at"]))} AS us FROM delivery_attempts
    WHERE tenant_id = ${tenantId} AND response_excerpt <> '' AND started_at < ${ago(seconds)} AND ${after(cursor, "started_at", "id")}
      AND NOT EXISTS (SELECT 1 FROM delivery_jobs j WHERE j.event_id = delivery_attempts.event_id)
    ORDER BY started_at, id LIMIT ${limit}`);
  if (rows.length === 0) return { next: undefined, attempts: 0 };
  const attempts = await tx.oneFirst(sql.type(z.object({ n: z.number() }))`
    WITH cleared AS (
      UPDATE delivery_attempts a SET response_excerpt = ''
      WHERE a.id = ANY(${sql.array(rows.map((r) => r.id), "uuid")}) AND a.response_excerpt <> ''
        AND NOT EXISTS (SELECT 1 FROM delivery_jobs j WHERE j.event_id = a.event_id)
      RETURNING 1
    )
    SELECT count(*)::int AS n FROM cleared`);
  return { next: nextOf(rows, limit), attempts };
}

/** Events final for `seconds`, with their attempts, and then their messages once no event is left. */
export async function deleteEvents(tx: CommonQueryMethods, tenantId: string, seconds: number, cursor: Cursor | undefined, limit: number): Promise<BatchResult & { events: number; attempts: number; messages: number }> {
  const rows = await tx.any(sql.type(candidate.extend({ message_id: z.string() }))`
    SELECT id, message_id, ${microsOf(sql.identifier(["received_at"]))} AS us FROM events
    WHERE tenant_id = ${tenantId} AND received_at < ${ago(seconds)} AND ${after(cursor, "received_at", "id")}
      AND status IN ('delivered', 'failed') AND updated_at < ${ago(seconds)}
    ORDER BY received_at, id LIMIT ${limit}`);
  const next = nextOf(rows, limit);
  if (rows.length === 0) return { next, events: 0, attempts: 0, messages: 0 };
  const doomed = await tx.any(sql.type(z.object({ id: z.string(), message_id: z.string() }))`
    SELECT e.id, e.message_id FROM events e
    WHERE e.id = ANY(${sql.array(rows.map((r) => r.id), "uuid")})
      AND e.status IN ('delivered', 'failed') AND e.updated_at < ${ago(seconds)}
      AND NOT EXISTS (SELECT 1 FROM delivery_attempts a JOIN log_queue q ON q.attempt_seq = a.seq WHERE a.event_id = e.id)
    FOR UPDATE OF e SKIP LOCKED`);
  if (doomed.length === 0) return { next, events: 0, attempts: 0, messages: 0 };
  const ids = sql.array(doomed.map((d) => d.id), "uuid");
  const attempts = await tx.oneFirst(sql.type(z.object({ n: z.number() }))`
    WITH gone AS (DELETE FROM delivery_attempts WHERE event_id = ANY(${ids}) RETURNING 1) SELECT count(*)::int AS n FROM gone`);
  await tx.query(sql.unsafe`DELETE FROM events WHERE id = ANY(${ids})`);
  const messages = await deleteEmptyMessages(tx, [...new Set(doomed.map((d) => d.message_id))]);
  return { next, events: doomed.length, attempts, messages };
}

/** Messages received `seconds` ago that were fanned out to no endpoint (no event ever takes them
 * away). */
export async function deleteOrphanMessages(tx: CommonQueryMethods, tenantId: string, seconds: number, cursor: Cursor | undefined, limit: number): Promise<BatchResult & { messages: number }> {
  const rows = await tx.any(sql.type(candidate)`
    SELECT id, ${microsOf(sql.identifier(["received_at"]))} AS us FROM messages
    WHERE tenant_id = ${tenantId} AND event_count = 0 AND received_at < ${ago(seconds)} AND ${after(cursor, "received_at", "id")}
    ORDER BY received_at, id LIMIT ${limit}`);
  return { next: nextOf(rows, limit), messages: await deleteEmptyMessages(tx, rows.map((r) => r.id)) };
}

/** Deletes those of the messages that have no event left. It waits (within lock_timeout) for an
 * erasure holding one: skipping it would leave a message that nothing looks at again. */
async function deleteEmptyMessages(tx: CommonQueryMethods, messageIds: readonly string[]): Promise<number> {
  if (messageIds.length === 0) return 0;
  return tx.oneFirst(sql.type(z.object({ n: z.number() }))`
    WITH gone AS (
      DELETE FROM messages m
      WHERE m.id = ANY(${sql.array(messageIds, "uuid")}) AND NOT EXISTS (SELECT 1 FROM events e WHERE e.message_id = m.id)
      RETURNING 1
    )
    SELECT count(*)::int AS n FROM gone`);
}
