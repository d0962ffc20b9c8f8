// The delivery queue: the only writer of delivery_jobs, of the events' delivery status and of
// delivery_attempts. Named operations: enqueue (a fragment of ingest's group-commit statement),
// claim, claimProbes, complete, release, requeueFailed, cancelForEndpoint.
//
// Claims are short autocommit statements with a lease (FOR UPDATE SKIP LOCKED), so no transaction
// is open during an HTTP call and a dead process's jobs become claimable again when its lease runs
// out. A claim does not write the event row: an event reads as delivering while its job is leased
// (eventStatusSql below), which spares a write of the whole row, payload included, per attempt.
import { randomUUID } from "node:crypto";
import { sql, type CommonQueryMethods, type DatabasePool, type DatabaseTransactionConnection, type FragmentSqlToken } from "slonik";
import { z } from "zod";
import { mayProbe, probeClaimed } from "./circuit-breaker.ts";
import type { EmitOperationalEvents } from "../ingest/operational-events.ts";
import type { CircuitStore, CircuitTransition } from "./circuit-store.ts";
import type { Decision } from "./retry-policy.ts";
import type { SendResult } from "./http-sender.ts";
import type { Logger } from "../logger.ts";
import { endpointSecret } from "../secrets/secret-columns.ts";
import { SecretUnreadable, type SecretBox } from "../secrets/secret-box.ts";

/** A claimed row as read: the endpoint's signing secrets still sealed. */
const claimedRow = z.object({
  event_id: z.string(),
  endpoint_id: z.string(),
  attempt: z.number(),
  round_start: z.number(),
  lease_id: z.string(),
  tenant_id: z.string(),
  message_id: z.string(),
  event_type: z.string(),
  /** When the event was accepted (for the ingest-to-delivered latency). */
  received_at: z.date(),
  payload: z.instanceof(Buffer),
  content_type: z.string(),
  headers: z.record(z.string(), z.string()),
  request_id: z.string(),
  url: z.string(),
  signing_secret: z.instanceof(Buffer),
  previous_secret: z.instanceof(Buffer).nullable(),
  max_attempts: z.number(),
  timeout_ms: z.number(),
  /** The message's trace context (tracing/delivery-tracing.ts), or null. */
  traceparent: z.string().nullable(),
  tracestate: z.string().nullable(),
});
export type ClaimedRow = z.infer<typeof claimedRow>;
export type ClaimedJob = Omit<ClaimedRow, "signing_secret" | "previous_secret"> & {
  /** The endpoint's signing secrets, opened (secrets/secret-box.ts). */
  signing_secret: string;
  previous_secret: string | null;
  probe: boolean;
  /** The latest time the attempt may start: its lease (KAPSEL_DELIVERY_LEASE_MS beyond the
   * endpoint's timeout) is then sure to outlast it. A job that waited longer for a free slot goes
   * back unsent. */
  sendByMs: number;
};

export interface Outcome {
  job: ClaimedJob;
  attemptId: string;
  result: SendResult;
  payloadSha256: string;
  decision: Decision;
  /** The attempt span's traceparent when tracing is on, stored for the sequencer's links. */
  traceparent: string | undefined;
}

/** The insert that queues a job for each row of `source` (a CTE with `id`, `endpoint_id` and
 * `handoff` columns), for ingest's single group-commit statement. Rows marked `handoff` whose
 * endpoint is in `handed` (job-handoff.ts) are inserted leased to this process, as a claim would
 * leave them; the others wait for a claim. Returns each job's event id and lease id. */
export function enqueueJobsSql(source: string, handed: string, lease: { leaseId: string; leaseMs: number } | undefined) {
  return sql.fragment`
    INSERT INTO delivery_jobs (event_id, endpoint_id, attempt, lease_id, lease_until)
    SELECT s.id, s.endpoint_id, CASE WHEN h.id IS NULL THEN 0 ELSE 1 END,
      CASE WHEN h.id IS NOT NULL THEN ${lease?.leaseId ?? null}::uuid END,
      now() + (${lease?.leaseMs ?? 0} + h.timeout_ms) * interval '1 millisecond'
    FROM ${sql.identifier([source])} s LEFT JOIN ${sql.identifier([handed])} h ON s.handoff AND h.id = s.endpoint_id
    RETURNING event_id, lease_id`;
}

/** The status an event shows: a pending event whose job is leased is being delivered. For reads
 * of `events` (the row alias must be `events`). */
const LEASED = sql.fragment`EXISTS (SELECT 1 FROM delivery_jobs j WHERE j.event_id = events.id AND j.lease_until > now())`;
export const eventStatusSql = sql.fragment`CASE WHEN events.status = 'pending' AND ${LEASED} THEN 'delivering' ELSE events.status END`;

/** The statuses an event shows (delivering is derived, see eventStatusSql). */
export type EventStatusName = "pending" | "delivering" | "delivered" | "failed";

/** A condition selecting events that show the given status. */
export function eventStatusIs(status: EventStatusName) {
  if (status === "pending") return sql.fragment`(events.status = 'pending' AND NOT ${LEASED})`;
  if (status === "delivering") return sql.fragment`(events.status = 'pending' AND ${LEASED})`;
  return sql.fragment`events.status = ${status}`;
}

/** Which failed events to put back in the queue. */
export type RequeueSelector =
  | { eventId: string }
  | {
      endpointId: string | undefined;
      /** A condition on the message's type (`m.event_type`). */
      eventType: FragmentSqlToken | undefined;
      since: FragmentSqlToken;
      until: FragmentSqlToken;
    };

const claimColumns = sql.fragment`c.event_id, c.endpoint_id, c.attempt, c.round_start, c.lease_id, e.tenant_id, e.message_id,
  m.event_type, e.received_at, m.payload, m.content_type, m.headers, m.request_id, p.url, p.signing_secret,
  CASE WHEN p.previous_secret_expires_at > now() THEN p.previous_signing_secret END AS previous_secret,
  p.max_attempts, p.timeout_ms, m.traceparent, m.tracestate`;

/** Writes to the endpoints table belong to its owner (management/endpoints.ts); the queue is given
 * the one it needs, disabling an endpoint that answered 410 Gone, to run in its own transaction. */
export type DisableEndpoints = (tx: DatabaseTransactionConnection, ids: readonly string[], reason: string) => Promise<void>;

/** Endpoints a batch of outcomes disabled (410 Gone), with their tenants. */
export interface DisabledEndpoint {
  endpointId: string;
  tenantId: string;
  reason: string;
}

/** What one `complete` recorded now. */
export interface CompletedBatch {
  /** Outcomes whose attempt was inserted now. */
  recorded: Outcome[];
  /** Of those, the ones that decided their job (its lease was still theirs). */
  decided: Outcome[];
  disabledEndpoints: DisabledEndpoint[];
  circuits: CircuitTransition[];
}

export interface JobQueueOptions {
  leaseMs: number;
  /** Opens the endpoints' sealed signing secrets. */
  secrets: SecretBox;
  log: Logger;
  disableEndpoints: DisableEndpoints;
  /** Reports what a batch changed (endpoints disabled, circuits opened or closed, events that
   * used up their attempts) as operational events, in the batch's transaction. */
  emitOperationalEvents: EmitOperationalEvents;
}

export class JobQueue {
  readonly #pool: DatabasePool;
  readonly #circuits: CircuitStore;
  readonly #leaseMs: number;
  readonly #disableEndpoints: DisableEndpoints;
  readonly #emit: EmitOperationalEvents;
  readonly #secrets: SecretBox;
  readonly #log: Logger;

  /** KAPSEL_DELIVERY_LEASE_MS: a lease lasts this beyond the endpoint's timeout. */
  get leaseMs(): number {
    return this.#leaseMs;
  }

  constructor(pool: DatabasePool, circuits: CircuitStore, options: JobQueueOptions) {
    this.#secrets = options.secrets;
    this.#log = options.log;
    this.#pool = pool;
    this.#circuits = circuits;
    this.#leaseMs = options.leaseMs;
    this.#disableEndpoints = options.disableEndpoints;
    this.#emit = options.emitOperationalEvents;
  }

  /** Claims up to `limit` due jobs of enabled endpoints whose circuit is closed. Each lease lasts
   * the endpoint's timeout plus the configured lease, so it cannot run out while its attempt may
   * still be in flight (which would hand the job to another claim and deliver it twice). The event
   * row is not touched: it reads as delivering while its job is leased (eventStatusSql), which
   * spares a write of the whole row, payload included, per attempt.
   *
   * Due jobs whose endpoint was deleted (an ingest or a retry that raced the deletion) are taken in
   * the same walk and ended: the job goes and the event is failed, as deleting the endpoint does
   * for the jobs it finds. Left alone they would wait forever, since no claim takes them. */
  async claim(limit: number): Promise<ClaimedJob[]> {
    const sendByMs = Date.now() + this.#leaseMs;
    const rows = await this.#pool.any(sql.type(claimedRow)`
      WITH due AS (
        SELECT j.event_id FROM delivery_jobs j
        WHERE j.run_at <= now() AND (j.lease_until IS NULL OR j.lease_until < now())
          -- Per-row look-ups, not EXISTS: the planner turns EXISTS into joins, and with the tiny
          -- endpoints and circuit_breakers tables unanalysed (autovacuum may never analyse a table
          -- of a few rows) it estimated a handful of due jobs and sorted the whole queue on every
          -- claim instead of walking the run_at index and stopping at the limit. A deleted (or
          -- missing) endpoint's job is taken whatever its circuit, to be ended below.
          AND coalesce((SELECT p.deleted_at IS NOT NULL OR (p.enabled AND NOT coalesce(
                (SELECT cb.state <> 'closed' FROM circuit_breakers cb WHERE cb.endpoint_id = j.endpoint_id), false))
              FROM endpoints p WHERE p.id = j.endpoint_id), true)
        ORDER BY j.run_at
        LIMIT ${limit}
        FOR UPDATE SKIP LOCKED
      ),
      c AS (
        UPDATE delivery_jobs j SET lease_until = now() + (${this.#leaseMs} + p.timeout_ms) * interval '1 millisecond',
          lease_id = ${randomUUID()}, attempt = j.attempt + 1
        FROM endpoints p
        WHERE j.event_id = ANY(ARRAY(SELECT event_id FROM due)) AND p.id = j.endpoint_id AND p.deleted_at IS NULL
        RETURNING j.event_id, j.endpoint_id, j.attempt, j.round_start, j.lease_id
      ),
      orphaned AS (
        DELETE FROM delivery_jobs j
        WHERE j.event_id = ANY(ARRAY(SELECT event_id FROM due))
          AND NOT EXISTS (SELECT 1 FROM endpoints p WHERE p.id = j.endpoint_id AND p.deleted_at IS NULL)
        RETURNING j.event_id
      ),
      ended AS (
        UPDATE events SET status = 'failed', next_attempt_at = NULL, updated_at = now()
        FROM orphaned WHERE events.id = orphaned.event_id
      )
      SELECT ${claimColumns} FROM c JOIN events e ON e.id = c.event_id JOIN messages m ON m.id = e.message_id JOIN endpoints p ON p.id = c.endpoint_id`);
    return this.#opened(this.#pool, rows, false, sendByMs);
  }

  /** Claimed rows with their signing secrets opened. A row whose secret cannot be opened (sealed
   * under another master key, or moved from another row) is never sent, least of all signed with
   * whatever it holds: its job goes back unsent, to be tried again in a minute, and the reason is
   * logged. */
  async #opened(db: CommonQueryMethods, rows: readonly ClaimedRow[], probe: boolean, sendByMs: number): Promise<ClaimedJob[]> {
    const jobs: ClaimedJob[] = [];
    const unreadable: ClaimedRow[] = [];
    for (const r of rows) {
      try {
        jobs.push({
          ...r,
          signing_secret: this.#secrets.openText(r.signing_secret, endpointSecret(r.endpoint_id, "signing_secret")),
          previous_secret: r.previous_secret === null ? null : this.#secrets.openText(r.previous_secret, endpointSecret(r.endpoint_id, "previous_signing_secret")),
          probe,
          sendByMs,
        });
      } catch (err) {
        if (!(err instanceof SecretUnreadable)) throw err;
        this.#log.error({ err, endpoint_id: r.endpoint_id, event_id: r.event_id }, "not delivering: the endpoint's signing secret cannot be read");
        unreadable.push(r);
      }
    }
    if (unreadable.length > 0) {
      await db.query(sql.unsafe`
        UPDATE delivery_jobs j SET lease_until = NULL, lease_id = NULL, attempt = j.attempt - 1, run_at = now() + interval '1 minute'
        WHERE (j.event_id, j.lease_id) IN (${sql.join(unreadable.map((r) => sql.fragment`(${r.event_id}::uuid, ${r.lease_id}::uuid)`), sql.fragment`, `)})`);
    }
    return jobs;
  }

  /** Jobs ingest inserted leased to this process (job-handoff.ts), with their signing secrets
   * opened as a claim's are (an unreadable one goes back unsent). */
  openHandedOver(rows: readonly ClaimedRow[], sendByMs: number): Promise<ClaimedJob[]> {
    return this.#opened(this.#pool, rows, false, sendByMs);
  }

  /** For circuits whose open timeout has passed (or half-open with a free slot), claims one due
   * job each as a probe and moves the circuit to half-open. Disabled and deleted endpoints are not
   * probed: their jobs wait, unleased and with no attempt spent. */
  async claimProbes(nowMs: number): Promise<ClaimedJob[]> {
    const sendByMs = Date.now() + this.#leaseMs;
    return this.#pool.transaction(async (tx) => {
      const jobs: ClaimedJob[] = [];
      for (const candidate of await this.#circuits.lockProbeCandidates(tx)) {
        let state = candidate.state;
        const leaseMs = this.#leaseMs + candidate.timeoutMs;
        // Probes of a process that died never report back; their slots come free with the lease.
        if (state.state === "half_open" && nowMs - candidate.updatedAt.getTime() > leaseMs) state = { ...state, probes: 0 };
        if (!mayProbe(state, nowMs, this.#circuits.config)) continue;
        const [job] = await tx.any(sql.type(claimedRow)`
          WITH c AS (
            UPDATE delivery_jobs j SET lease_until = now() + ${leaseMs} * interval '1 millisecond',
              lease_id = ${randomUUID()}, attempt = j.attempt + 1
            WHERE j.event_id = (
              SELECT event_id FROM delivery_jobs WHERE endpoint_id = ${candidate.endpointId} AND run_at <= now()
                AND (lease_until IS NULL OR lease_until < now())
              ORDER BY run_at LIMIT 1 FOR UPDATE SKIP LOCKED)
            RETURNING j.event_id, j.endpoint_id, j.attempt, j.round_start, j.lease_id
          )
          SELECT ${claimColumns} FROM c JOIN events e ON e.id = c.event_id JOIN messages m ON m.id = e.message_id JOIN endpoints p ON p.id = c.endpoint_id`);
        if (!job) continue;
        const [opened] = await this.#opened(tx, [job], true, sendByMs);
        if (!opened) continue;
        await this.#circuits.write(tx, candidate.endpointId, probeClaimed(state));
        jobs.push(opened);
      }
      return jobs;
    });
  }

  /** Writes a batch of outcomes in one transaction: attempt rows, job deletion or rescheduling (only
   * while the lease is still ours), event status, endpoint disabling on 410, circuit breakers.
   * Returns what it recorded now (a batch written again records nothing twice), for the logs. */
  async complete(outcomes: readonly Outcome[], nowMs: number): Promise<CompletedBatch> {
    if (outcomes.length === 0) return { recorded: [], decided: [], disabledEndpoints: [], circuits: [] };
    return this.#pool.transaction(async (tx) => {
      // One statement for the whole batch: decisions (job deleted or rescheduled, event status)
      // and the attempt rows, from column arrays unnested in SQL — a fixed number of parameters
      // whatever the batch size, and `j.event_id = ANY(ids)` keeps the job lookups on the primary
      // key (joining the VALUES list made the planner hash-join a sequential scan of the whole
      // queue on every batch).
      const ids = sql.array(outcomes.map((o) => o.job.event_id), "uuid");
      const column = <T>(pick: (o: Outcome) => T) => outcomes.map(pick);
      const rows = await tx.any(sql.type(z.object({ id: z.string(), decided: z.boolean(), inserted: z.boolean() }))`
        WITH i AS (
          SELECT * FROM unnest(${ids}, ${sql.array(column((o) => o.job.lease_id), "uuid")},
            ${sql.array(column((o) => (o.decision.kind === "disable" ? "failed" : o.decision.kind)), "text")},
            ${sql.array(column((o) => (o.decision.kind === "retry" ? new Date(o.decision.atMs).toISOString() : null)), "timestamptz")},
            ${sql.array(column((o) => o.job.attempt), "int4")},
            ${sql.array(column((o) => o.attemptId), "uuid")},
            ${sql.array(column((o) => o.job.tenant_id), "uuid")}, ${sql.array(column((o) => o.job.endpoint_id), "uuid")},
            ${sql.array(column((o) => o.job.url), "text")},
            ${sql.array(column((o) => o.payloadSha256), "text")}, ${sql.array(column((o) => o.result.startedAt.toISOString()), "timestamptz")},
            ${sql.array(column((o) => o.result.durationMs), "int4")}, ${sql.array(column((o) => o.result.outcome), "text")},
            ${sql.array(column((o) => o.result.statusCode ?? null), "int4")}, ${sql.array(column((o) => o.result.responseSha256 ?? null), "text")},
            ${sql.array(column((o) => o.result.error.slice(0, 2000).replaceAll("\0", "")), "text")},
            ${sql.array(column((o) => o.result.excerpt.replaceAll("\0", "")), "text")},
            ${sql.array(column((o) => o.job.request_id), "text")},
            ${sql.array(column((o) => o.result.refusedLocally !== undefined), "bool")},
            -- With no attempt span (tracing off) an empty array, which unnest pads with NULLs.
            ${sql.array(outcomes.some((o) => o.traceparent !== undefined) ? column((o) => o.traceparent ?? null) : [], "text")})
            AS t(event_id, lease_id, kind, run_at, attempt, attempt_id, tenant_id, endpoint_id, url, payload_sha256, started_at,
              duration_ms, outcome, status_code, response_sha256, error, response_excerpt, request_id, refused_locally, traceparent)
        ),
        -- An outcome decides its job only while the job's lease is still the one it was claimed
        -- with; matching on (event, lease) also keeps a stale outcome of the same event in the same
        -- batch from deciding anything.
        del AS (
          DELETE FROM delivery_jobs j USING i
          WHERE j.event_id = ANY(${ids}) AND j.event_id = i.event_id AND j.lease_id = i.lease_id AND i.kind <> 'retry'
          RETURNING i.event_id, i.lease_id
        ),
        resched AS (
          UPDATE delivery_jobs j SET run_at = i.run_at, lease_until = NULL, lease_id = NULL
          FROM i WHERE j.event_id = ANY(${ids}) AND j.event_id = i.event_id AND j.lease_id = i.lease_id AND i.kind = 'retry'
          RETURNING i.event_id, i.lease_id
        ),
        done AS (SELECT event_id, lease_id FROM del UNION ALL SELECT event_id, lease_id FROM resched),
        ev AS (
          UPDATE events e SET
            status = CASE i.kind WHEN 'delivered' THEN 'delivered' WHEN 'retry' THEN 'pending' ELSE 'failed' END,
            attempt_count = greatest(e.attempt_count, i.attempt),
            next_attempt_at = i.run_at,
            updated_at = now()
          FROM i JOIN done USING (event_id, lease_id) WHERE e.id = i.event_id
        ),
        a AS (
          SELECT i.*, EXISTS (SELECT 1 FROM done d WHERE d.event_id = i.event_id AND d.lease_id = i.lease_id) AS decided FROM i
        ),
        -- Attempt ids are made once per attempt, so writing a batch again (after a commit whose
        -- answer was lost) inserts nothing new; only attempts inserted now count below, which keeps
        -- breakers, disabling and operational events from counting a replayed batch twice. (The
        -- decisions above already match nothing on a replay: the lease they key on is gone.)
        ins AS (
          INSERT INTO delivery_attempts (id, event_id, tenant_id, endpoint_id, url, attempt, payload_sha256, started_at,
            duration_ms, outcome, status_code, response_sha256, error, response_excerpt, request_id, decided, refused_locally, traceparent)
          SELECT attempt_id, event_id, tenant_id, endpoint_id, url, attempt, payload_sha256, started_at,
            duration_ms, outcome, status_code, response_sha256, error, response_excerpt, request_id, decided, refused_locally, traceparent
          FROM a
          ON CONFLICT (id) DO NOTHING
          RETURNING id
        )
        SELECT a.attempt_id::text AS id, a.decided, a.attempt_id IN (SELECT id FROM ins) AS inserted FROM a`);
      const decidedIds = new Set(rows.filter((r) => r.decided).map((r) => r.id));
      const insertedIds = new Set(rows.filter((r) => r.inserted).map((r) => r.id));
      const isDecided = (o: Outcome) => decidedIds.has(o.attemptId);
      const fresh = outcomes.filter((o) => insertedIds.has(o.attemptId));

      const tenantOf = new Map(outcomes.map((o) => [o.job.endpoint_id, o.job.tenant_id]));
      const goneReason = "destination answered 410 Gone";
      const gone = [...new Set(fresh.filter((o) => o.decision.kind === "disable" && isDecided(o)).map((o) => o.job.endpoint_id))];
      if (gone.length > 0) await this.#disableEndpoints(tx, gone, goneReason);
      const circuits = await this.#circuits.applyOutcomes(tx, fresh.map((o) => ({
        endpointId: o.job.endpoint_id,
        success: o.result.outcome === "delivered",
        wasProbe: o.job.probe,
        refusedLocally: o.result.refusedLocally !== undefined,
      })), nowMs);
      await this.#emit(tx, [
        ...gone.map((endpointId) => ({ type: "kapsel.endpoint.disabled" as const, tenantId: tenantOf.get(endpointId)!, endpointId, reason: goneReason })),
        // A failed probe re-opens a circuit the tenant was already told is open: not reported again.
        ...circuits.filter((c) => c.from === "closed" || c.to === "closed").map((c) => c.to === "open"
          ? { type: "kapsel.endpoint.circuit_opened" as const, tenantId: tenantOf.get(c.endpointId)!, endpointId: c.endpointId, consecutiveFailures: c.state.consecutiveFailures, retryAt: c.state.retryAtMs === undefined ? undefined : new Date(c.state.retryAtMs) }
          : { type: "kapsel.endpoint.circuit_closed" as const, tenantId: tenantOf.get(c.endpointId)!, endpointId: c.endpointId }),
        ...fresh.filter((o) => o.decision.kind === "failed" && isDecided(o)).map((o) => ({
          type: "kapsel.event.failed" as const,
          tenantId: o.job.tenant_id,
          endpointId: o.job.endpoint_id,
          eventId: o.job.event_id,
          messageId: o.job.message_id,
          eventType: o.job.event_type,
          attempts: o.job.attempt,
          lastOutcome: o.result.outcome,
          lastStatusCode: o.result.statusCode,
          reason: o.decision.kind === "failed" ? o.decision.reason : "",
        })),
      ]);
      return {
        recorded: fresh,
        decided: fresh.filter(isDecided),
        disabledEndpoints: gone.map((endpointId) => ({ endpointId, tenantId: tenantOf.get(endpointId)!, reason: goneReason })),
        circuits,
      };
    });
  }

  /** Returns claimed jobs that were never sent (shutdown, a slot that came too late), without
   * spending their attempt or, for probes, their probe slot. */
  async release(jobs: readonly ClaimedJob[]): Promise<void> {
    if (jobs.length === 0) return;
    await this.#pool.query(sql.unsafe`
      UPDATE delivery_jobs j SET lease_until = NULL, lease_id = NULL, attempt = j.attempt - 1
      WHERE (j.event_id, j.lease_id) IN (${sql.join(jobs.map((j) => sql.fragment`(${j.event_id}::uuid, ${j.lease_id}::uuid)`), sql.fragment`, `)})`);
    for (const job of jobs) if (job.probe) await this.#circuits.releaseProbe(job.endpoint_id);
  }

  /** Puts a tenant's failed events back to pending with a job each: a new round of attempts that
   * continues the event's attempt count. Events of deleted endpoints stay failed (their jobs could
   * never be claimed). Returns the ids requeued. */
  async requeueFailed(tenantId: string, selector: RequeueSelector): Promise<string[]> {
    // An erased event has nothing left to send; this condition is on the row being updated, so it is
    // re-checked under the row lock against an erasure committing meanwhile.
    const conditions = [
      sql.fragment`events.tenant_id = ${tenantId}`, sql.fragment`events.status = 'failed'`, sql.fragment`events.payload_erased_at IS NULL`,
      sql.fragment`m.id = events.message_id`,
      sql.fragment`EXISTS (SELECT 1 FROM endpoints p WHERE p.id = events.endpoint_id AND p.deleted_at IS NULL)`,
    ];
    if ("eventId" in selector) conditions.push(sql.fragment`events.id = ${selector.eventId}`);
    else {
      if (selector.endpointId !== undefined) conditions.push(sql.fragment`events.endpoint_id = ${selector.endpointId}`);
      if (selector.eventType !== undefined) conditions.push(selector.eventType);
      conditions.push(sql.fragment`events.received_at >= ${selector.since} AND events.received_at < ${selector.until}`);
    }
    return this.#pool.transaction(async (tx) => {
      const rows = await tx.any(sql.type(z.object({ id: z.string() }))`
        UPDATE events SET status = 'pending', next_attempt_at = now(), updated_at = now()
        FROM messages m
        WHERE ${sql.join(conditions, sql.fragment` AND `)}
        RETURNING events.id`);
      const ids = rows.map((r) => r.id);
      if (ids.length > 0) {
        await tx.query(sql.unsafe`
          INSERT INTO delivery_jobs (event_id, endpoint_id, attempt, round_start)
          SELECT id, endpoint_id, attempt_count, attempt_count FROM events WHERE id = ANY(${sql.array(ids, "uuid")})
          ON CONFLICT (event_id) DO NOTHING`);
      }
      return ids;
    });
  }
}

/** Stops an endpoint's pending deliveries for good (the endpoint is being deleted): its jobs go and
 * its events end as failed. Runs in the caller's transaction. */
export async function cancelForEndpoint(tx: DatabaseTransactionConnection, endpointId: string): Promise<void> {
  await tx.query(sql.unsafe`
    WITH gone AS (DELETE FROM delivery_jobs WHERE endpoint_id = ${endpointId} RETURNING event_id)
    UPDATE events SET status = 'failed', next_attempt_at = NULL, updated_at = now() FROM gone WHERE events.id = gone.event_id`);
}
