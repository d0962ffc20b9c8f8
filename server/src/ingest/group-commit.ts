// Group commit: concurrent ingest requests share one multi-row statement per batch. A batch is
// whatever queued while the previous statement was in flight — no timer, so a lone request goes
// out at once, and under load batches grow by themselves. Each caller is answered only after the
// statement holding its event (and its delivery job) has committed; with synchronous_commit on,
// that means it is on disk.
//
// Up to `writers` statements are in flight at once (default 2), so that Postgres works on one
// batch while another waits for its commit to reach disk and the server answers a third. An event
// whose idempotency key is already in a statement in flight waits for that statement: equal keys
// are written in arrival order and never race each other.
import { sql, type DatabasePool } from "slonik";
import { z } from "zod";

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

export interface GroupCommitOptions {
  idempotencyWindowMs: number;
  maxRows?: number;
  maxBytes?: number;
  /** Called after each commit that stored new events (wakes the dispatcher). */
  onCommitted?: (count: number) => void;
  /** Called with each batch's row count, for the batch size histogram. */
  onBatch?: (rows: number) => void;
  /** Statements in flight at once (default 2). */
  writers?: number;
}

interface Waiting {
  event: NewEvent;
  /** Tenant, endpoint and idempotency key; undefined without a key. */
  key: string | undefined;
  resolve: (a: Accepted) => void;
  reject: (err: unknown) => void;
}

const idRow = z.object({ id: z.string() });
const keyRow = z.object({ tenant_id: z.string(), endpoint_id: z.string(), key: z.string(), event_id: z.string() });

export class GroupCommit {
  readonly #pool: DatabasePool;
  readonly #options: Required<Omit<GroupCommitOptions, "onCommitted" | "onBatch">> & GroupCommitOptions;
  #queue: Waiting[] = [];
  #inFlight = 0;
  /** Keys of the events in statements in flight. */
  readonly #busyKeys = new Set<string>();

  constructor(pool: DatabasePool, options: GroupCommitOptions) {
    this.#pool = pool;
    this.#options = { maxRows: 1000, maxBytes: 16 * 1024 * 1024, writers: 2, ...options };
  }

  /** Resolves per event once durable; rejects (all of them) if their batch failed. */
  submit(events: readonly NewEvent[]): Promise<Accepted>[] {
    const promises = events.map((event) => new Promise<Accepted>((resolve, reject) => {
      const key = event.idempotencyKey === undefined ? undefined : `${event.tenantId}\n${event.endpointId}\n${event.idempotencyKey}`;
      this.#queue.push({ event, key, resolve, reject });
    }));
    this.#pump();
    return promises;
  }

  /** Starts statements while a writer is free and something can go. Returns how many started. A
   * further statement starts beside one in flight only for a backlog of at least a quarter of
   * maxRows: below that, waiting for the statement in flight makes one larger batch, which costs
   * Postgres and this process less per event than two small ones. */
  #pump(): number {
    let started = 0;
    while (this.#inFlight < this.#options.writers && this.#queue.length > 0) {
      if (this.#inFlight > 0 && this.#queue.length < this.#options.maxRows / 4) break;
      const batch = this.#take();
      if (batch.length === 0) break;
      this.#inFlight++;
      started++;
      void this.#run(batch);
    }
    return started;
  }

  /** The next batch in queue order, up to maxRows and maxBytes, leaving queued every event whose
   * key is in flight (and, behind it, every later one with that key). */
  #take(): Waiting[] {
    const queue = this.#queue;
    const batch: Waiting[] = [];
    let held: Waiting[] | undefined;
    let bytes = 0;
    let i = 0;
    for (; i < queue.length && batch.length < this.#options.maxRows; i++) {
      const w = queue[i]!;
      if (w.key !== undefined && this.#busyKeys.has(w.key)) {
        (held ??= []).push(w);
        continue;
      }
      if (batch.length > 0 && bytes + w.event.payload.length > this.#options.maxBytes) break;
      bytes += w.event.payload.length;
      batch.push(w);
    }
    this.#queue = held ? held.concat(queue.slice(i)) : queue.slice(i);
    return batch;
  }

  async #run(batch: Waiting[]): Promise<void> {
    for (const w of batch) if (w.key !== undefined) this.#busyKeys.add(w.key);
    let settle: () => void;
    try {
      const results = await this.#write(batch.map((w) => w.event));
      settle = () => batch.forEach((w, i) => w.resolve(results[i]!));
    } catch (err) {
      settle = () => batch.forEach((w) => w.reject(err));
    }
    for (const w of batch) if (w.key !== undefined) this.#busyKeys.delete(w.key);
    this.#inFlight--;
    // When the next statement goes out now, answer this batch only after it is on its way, so
    // that answering (a response per request) overlaps with the database working on it instead
    // of delaying it. setImmediate runs after the promise jobs that hand it to the socket.
    if (this.#pump() > 0) setImmediate(settle);
    else settle();
  }

  /** One statement: claim idempotency keys, insert the events that won theirs (or have none) and
   * their jobs. Duplicates — within the batch or against earlier events — get the first id. */
  async #write(events: NewEvent[]): Promise<Accepted[]> {
    this.#options.onBatch?.(events.length);
    const keyOf = (e: NewEvent) => (e.idempotencyKey === undefined ? undefined : `${e.tenantId}\n${e.endpointId}\n${e.idempotencyKey}`);
    const firstByKey = new Map<string, number>();
    const unique: NewEvent[] = [];
    const sameAs: number[] = events.map((e, i) => {
      const k = keyOf(e);
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
    const inserted = await this.#pool.any(sql.type(idRow)`
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
          WHERE k.created_at < now() - ${this.#options.idempotencyWindowMs} * interval '1 millisecond'
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
      jobs AS (
        INSERT INTO delivery_jobs (event_id, endpoint_id) SELECT id, endpoint_id FROM accepted
      )
      SELECT id FROM stored`);
    const stored = new Set(inserted.map((r) => r.id));

    // Keys that lost: read the winner's event id in a new statement, which also sees keys that
    // another process committed while ours waited on them.
    const lost = unique.filter((e) => !stored.has(e.id));
    const existing = new Map<string, string>();
    if (lost.length > 0) {
      const rows = await this.#pool.any(sql.type(keyRow)`
        SELECT tenant_id, endpoint_id, key, event_id FROM idempotency_keys
        WHERE (tenant_id, endpoint_id, key) IN (${sql.join(lost.map((e) => sql.fragment`(${e.tenantId}::uuid, ${e.endpointId}::uuid, ${e.idempotencyKey!})`), sql.fragment`, `)})`);
      for (const r of rows) existing.set(`${r.tenant_id}\n${r.endpoint_id}\n${r.key}`, r.event_id);
    }
    if (stored.size > 0) this.#options.onCommitted?.(stored.size);

    return events.map((e, i) => {
      const first = events[sameAs[i]!]!;
      if (stored.has(first.id)) return { eventId: first.id, duplicate: sameAs[i] !== i };
      const id = existing.get(keyOf(first)!);
      if (id === undefined) throw new Error(`idempotency key of event ${first.id} neither stored nor found`);
      return { eventId: id, duplicate: true };
    });
  }
}
