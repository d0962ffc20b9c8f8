// Removing a message's personal data: its payload and headers (and, for erasure requests, its
// attempts' response excerpts), while its events, attempts, receipts and the log stay. Shared by
// the purger (retention) and EraseEvents (erasure on request); runs in the caller's transaction.
//
// A payload is stored once per message, for all of its events, so it can go only when none of
// them can still be delivered: every event must be final. The check holds under row locks: the
// message's events are locked (FOR NO KEY UPDATE SKIP LOCKED) before their status is read, and
// each erased event is marked too (events.payload_erased_at), which replay re-checks on the row it
// updates. So a retry and an erasure of the same event serialise: either the retry commits first
// (the event is pending again and the message is left alone) or the erasure does (the retry finds
// the mark and refuses with E2006). Nothing here waits for a lock: a message whose rows someone
// else holds right now is skipped, and retried on the next pass or call.
import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";

export interface EraseOptions {
  /** Retention: only messages whose events have all been final for this long (and, for a message
   * without events, that were received this long ago). Erasure requests leave it unset. */
  finalForSeconds?: number;
  /** The erasure record asking for it; undefined when retention erases. */
  erasureId?: string;
}

export interface EraseResult {
  /** Messages whose payload and headers were removed now. */
  messages: string[];
  /** Their events, now marked erased. */
  events: string[];
  /** Messages whose payload had been erased before. */
  alreadyErased: string[];
  /** Messages not erased: an event still in flight, not final long enough, or rows held by a
   * concurrent transaction. */
  skipped: string[];
}

const FINAL = new Set(["delivered", "failed"]);

const lockedMessage = z.object({ id: z.string(), aged: z.boolean() });
const lockedEvent = z.object({ id: z.string(), message_id: z.string(), status: z.string(), aged: z.boolean() });
const eventCount = z.object({ message_id: z.string(), n: z.number() });

/** Erases what can be erased of the given messages (already erased ones are ignored). */
export async function eraseMessages(tx: CommonQueryMethods, messageIds: readonly string[], options: EraseOptions = {}): Promise<EraseResult> {
  const nothing: EraseResult = { messages: [], events: [], alreadyErased: [], skipped: [] };
  if (messageIds.length === 0) return nothing;
  const ids = sql.array(messageIds, "uuid");
  const alreadyErased = await tx.anyFirst(sql.type(z.object({ id: z.string() }))`
    SELECT id FROM messages WHERE id = ANY(${ids}) AND payload_erased_at IS NOT NULL`);
  const done = new Set(alreadyErased);
  const notErased = (erased: readonly string[]) => {
    const now = new Set(erased);
    return messageIds.filter((id) => !done.has(id) && !now.has(id));
  };
  const aged = (column: string) => options.finalForSeconds === undefined
    ? sql.fragment`true`
    : sql.fragment`${sql.identifier([column])} < now() - ${options.finalForSeconds} * interval '1 second'`;

  const messages = await tx.any(sql.type(lockedMessage)`
    SELECT id, ${aged("received_at")} AS aged FROM messages
    WHERE id = ANY(${ids}) AND payload_erased_at IS NULL
    ORDER BY id FOR NO KEY UPDATE SKIP LOCKED`);
  if (messages.length === 0) return { ...nothing, alreadyErased: [...alreadyErased], skipped: notErased([]) };
  const lockedIds = sql.array(messages.map((m) => m.id), "uuid");
  // Only final events are locked: a pending one is the outcome writer's, which must never wait for
  // a purge; not locking it is enough to leave its message alone (the counts below differ).
  const events = await tx.any(sql.type(lockedEvent)`
    SELECT id, message_id, status, ${aged("updated_at")} AS aged FROM events
    WHERE message_id = ANY(${lockedIds}) AND status IN ('delivered', 'failed')
    ORDER BY id FOR NO KEY UPDATE SKIP LOCKED`);
  // Every event of the message, locked or not: one not locked is in flight, or someone else is
  // changing it right now.
  const totals = new Map((await tx.any(sql.type(eventCount)`
    SELECT message_id, count(*)::int AS n FROM events WHERE message_id = ANY(${lockedIds}) GROUP BY message_id`)).map((r) => [r.message_id, r.n]));

  const byMessage = new Map<string, z.infer<typeof lockedEvent>[]>(messages.map((m) => [m.id, []]));
  for (const e of events) byMessage.get(e.message_id)!.push(e);
  const erase = messages.filter((m) => {
    const mine = byMessage.get(m.id)!;
    return mine.length === 0
      ? (totals.get(m.id) ?? 0) === 0 && m.aged
      : mine.length === totals.get(m.id) && mine.every((e) => FINAL.has(e.status) && e.aged);
  }).map((m) => m.id);
  const result = { alreadyErased: [...alreadyErased], skipped: notErased(erase) };
  if (erase.length === 0) return { ...result, messages: [], events: [] };

  const erasing = new Set(erase);
  const eventIds = events.filter((e) => erasing.has(e.message_id)).map((e) => e.id);
  if (eventIds.length > 0) {
    await tx.query(sql.unsafe`UPDATE events SET payload_erased_at = now() WHERE id = ANY(${sql.array(eventIds, "uuid")})`);
  }
  await tx.query(sql.unsafe`
    UPDATE messages SET payload = ''::bytea, headers = '{}'::jsonb, payload_erased_at = now(), erasure_id = ${options.erasureId ?? null}
    WHERE id = ANY(${sql.array(erase, "uuid")})`);
  return { ...result, messages: erase, events: eventIds };
}

/** Removes the response excerpts of every attempt of these (erased) messages' events; returns how
 * many attempts had one. */
export async function clearResponseExcerpts(tx: CommonQueryMethods, messageIds: readonly string[]): Promise<number> {
  if (messageIds.length === 0) return 0;
  const rows = await tx.any(sql.type(z.object({ id: z.string() }))`
    UPDATE delivery_attempts a SET response_excerpt = ''
    WHERE a.event_id = ANY(ARRAY(SELECT e.id FROM events e WHERE e.message_id = ANY(${sql.array(messageIds, "uuid")})))
      AND a.response_excerpt <> ''
    RETURNING a.id`);
  return rows.length;
}
