// Group commit: concurrent ingest requests share one multi-row statement per batch. A batch is
// whatever queued while the previous statement was in flight — no timer, so a lone request goes
// out at once, and under load batches grow by themselves. Each caller is answered only after the
// statement holding its event (and its delivery job) has committed; with synchronous_commit on,
// that means it is on disk.
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
}

interface Waiting {
  event: NewEvent;
  resolve: (a: Accepted) => void;
  reject: (err: unknown) => void;
}

const idRow = z.object({ id: z.string() });
const keyRow = z.object({ tenant_id: z.string(), endpoint_id: z.string(), key: z.string(), event_id: z.string() });

export class GroupCommit {
  readonly #pool: DatabasePool;
  readonly #options: Required<Omit<GroupCommitOptions, "onCommitted" | "onBatch">> & GroupCommitOptions;
  #queue: Waiting[] = [];
  #flushing = false;

  constructor(pool: DatabasePool, options: GroupCommitOptions) {
    this.#pool = pool;
    this.#options = { maxRows: 1000, maxBytes: 16 * 1024 * 1024, ...options };
  }

  /** Resolves per event once durable; rejects (all of them) if their batch failed. */
  submit(events: readonly NewEvent[]): Promise<Accepted>[] {
    const promises = events.map((event) => new Promise<Accepted>((resolve, reject) => this.#queue.push({ event, resolve, reject })));
    if (!this.#flushing) void this.#flush();
    return promises;
  }

  async #flush(): Promise<void> {
    this.#flushing = true;
    try {
      while (this.#queue.length > 0) {
        let rows = 0;
        let bytes = 0;
        while (rows < this.#queue.length && rows < this.#options.maxRows && (rows === 0 || bytes + this.#queue[rows]!.event.payload.length <= this.#options.maxBytes)) {
          bytes += this.#queue[rows]!.event.payload.length;
          rows++;
        }
        const batch = this.#queue.splice(0, rows);
        try {
          const results = await this.#write(batch.map((w) => w.event));
          batch.forEach((w, i) => w.resolve(results[i]!));
        } catch (err) {
          for (const w of batch) w.reject(err);
        }
      }
    } finally {
      this.#flushing = false;
    }
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

    const values = unique.map((e) => sql.fragment`(${e.id}::uuid, ${e.tenantId}::uuid, ${e.endpointId}::uuid, ${sql.binary(e.payload)}::bytea,
      ${e.contentType}::text, ${JSON.stringify(e.headers)}::jsonb, ${e.idempotencyKey ?? null}::text, ${e.requestId}::text)`);
    const inserted = await this.#pool.any(sql.type(idRow)`
      WITH input (id, tenant_id, endpoint_id, payload, content_type, headers, idempotency_key, request_id) AS (
        VALUES ${sql.join(values, sql.fragment`, `)}
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
