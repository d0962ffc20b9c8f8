// The ingest statement: idempotency keys, events and their delivery jobs written by one
// multi-row statement (in autocommit, synchronous_commit on: durable when it returns), and the
// read-back of keys that lost to an earlier event. The batching in front of it is group-commit.ts.
import { sql, type DatabasePool } from "slonik";
import { z } from "zod";
import { enqueueJobsSql } from "../delivery/job-queue.ts";

export interface NewEvent {
  id: string;
  tenantId: string;
  endpointId: string;
  payload: Buffer;
  contentType: string;
  headers: Record<string, string>;
  idempotencyKey: string | undefined;
  requestId: string;
}

export interface Accepted {
  eventId: string;
  duplicate: boolean;
}

/** An idempotency key's identity: keys are unique per tenant and endpoint. Undefined without a key. */
export function idempotencyKeyOf(e: Pick<NewEvent, "tenantId" | "endpointId" | "idempotencyKey">): string | undefined {
  return e.idempotencyKey === undefined ? undefined : `${e.tenantId}\n${e.endpointId}\n${e.idempotencyKey}`;
}

/** A key that lost its insert but whose winner cannot be read back: it expired and was replaced
 * between the two statements, which a window far longer than a statement makes impossible in
 * practice. The batch fails rather than answer a wrong id. */
export class IdempotencyKeyLost extends Error {
  readonly eventId: string;

  constructor(eventId: string) {
    super(`idempotency key of event ${eventId} neither stored nor found`);
    this.eventId = eventId;
  }
}

const idRow = z.object({ id: z.string() });
const keyRow = z.object({ tenant_id: z.string(), endpoint_id: z.string(), key: z.string(), event_id: z.string() });

/** One statement: claim idempotency keys, insert the events that won theirs (or have none) and
 * their delivery jobs. Duplicates — within the batch or against earlier events — get the first
 * id. The events are durable when this resolves. */
export async function insertEvents(pool: DatabasePool, events: readonly NewEvent[], idempotencyWindowMs: number): Promise<Accepted[]> {
  const firstByKey = new Map<string, number>();
  const unique: NewEvent[] = [];
  const sameAs: number[] = events.map((e, i) => {
    const k = idempotencyKeyOf(e);
    if (k === undefined) {
      unique.push(e);
      return i;
    }
    const first = firstByKey.get(k);
    if (first !== undefined) return first;
    firstByKey.set(k, i);
    unique.push(e);
    return i;
  });

  // One row per event as parallel arrays, so the statement text and its bind parameters stay the
  // same whatever the batch size (a VALUES list of 8 parameters per row cost more to build here
  // and to parse in Postgres). Payloads travel as one binary parameter sliced by offset, not as a
  // bytea[] that would go as hex text.
  const offsets: number[] = [];
  let bytes = 0;
  for (const e of unique) {
    offsets.push(bytes + 1);
    bytes += e.payload.length;
  }
  const column = <T>(f: (e: NewEvent) => T) => unique.map(f);
  // UUIDs and integers never need quoting, so their array literals are joined here rather than
  // escaped element by element by the driver.
  const plain = (values: (string | number)[]) => `{${values.join(",")}}`;
  const inserted = await pool.any(sql.type(idRow)`
    WITH input AS (
      SELECT id, tenant_id, endpoint_id, substring(${sql.binary(Buffer.concat(column((e) => e.payload), bytes))}::bytea FROM payload_start FOR payload_length) AS payload,
        content_type, headers, idempotency_key, request_id
      FROM unnest(${plain(column((e) => e.id))}::uuid[], ${plain(column((e) => e.tenantId))}::uuid[],
        ${plain(column((e) => e.endpointId))}::uuid[], ${plain(offsets)}::int4[], ${plain(column((e) => e.payload.length))}::int4[],
        ${sql.array(column((e) => e.contentType), "text")}, ${sql.array(column((e) => JSON.stringify(e.headers)), "jsonb")},
        ${sql.array(column((e) => e.idempotencyKey ?? null), "text")}, ${sql.array(column((e) => e.requestId), "text")})
        AS t (id, tenant_id, endpoint_id, payload_start, payload_length, content_type, headers, idempotency_key, request_id)
    ),
    keys AS (
      INSERT INTO idempotency_keys AS k (tenant_id, endpoint_id, key, event_id)
      SELECT tenant_id, endpoint_id, idempotency_key, id FROM input WHERE idempotency_key IS NOT NULL
      -- Every statement takes key locks in one global order, so two processes whose batches
      -- share keys wait for each other instead of deadlocking.
      ORDER BY tenant_id, endpoint_id, idempotency_key
      ON CONFLICT (tenant_id, endpoint_id, key) DO UPDATE SET event_id = excluded.event_id, created_at = now()
        WHERE k.created_at < now() - ${idempotencyWindowMs} * interval '1 millisecond'
      RETURNING event_id
    ),
    accepted AS (
      SELECT * FROM input WHERE idempotency_key IS NULL OR id IN (SELECT event_id FROM keys)
    ),
    stored AS (
      INSERT INTO events (id, tenant_id, endpoint_id, payload, content_type, headers, idempotency_key, request_id)
      SELECT id, tenant_id, endpoint_id, payload, content_type, headers, idempotency_key, request_id FROM accepted
      RETURNING id
    ),
    jobs AS (${enqueueJobsSql("accepted")})
    SELECT id FROM stored`);
  const stored = new Set(inserted.map((r) => r.id));

  // Keys that lost: read the winner's event id in a new statement, which also sees keys that
  // another process committed while ours waited on them.
  const lost = unique.filter((e) => !stored.has(e.id));
  const existing = new Map<string, string>();
  if (lost.length > 0) {
    const rows = await pool.any(sql.type(keyRow)`
      SELECT tenant_id, endpoint_id, key, event_id FROM idempotency_keys
      WHERE (tenant_id, endpoint_id, key) IN (${sql.join(lost.map((e) => sql.fragment`(${e.tenantId}::uuid, ${e.endpointId}::uuid, ${e.idempotencyKey!})`), sql.fragment`, `)})`);
    for (const r of rows) existing.set(`${r.tenant_id}\n${r.endpoint_id}\n${r.key}`, r.event_id);
  }

  return events.map((e, i) => {
    const first = events[sameAs[i]!]!;
    if (stored.has(first.id)) return { eventId: first.id, duplicate: sameAs[i] !== i };
    const id = existing.get(idempotencyKeyOf(first)!);
    if (id === undefined) throw new IdempotencyKeyLost(first.id);
    return { eventId: id, duplicate: true };
  });
}
