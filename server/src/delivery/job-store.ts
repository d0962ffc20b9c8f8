// The SQL of the delivery queue: claim due jobs, claim half-open probes, and write outcomes back in
// batches. Claims are short autocommit statements with a lease (FOR UPDATE SKIP LOCKED), so no
// transaction is open during an HTTP call and a dead process's jobs become claimable again when its
// lease runs out.
import { randomUUID } from "node:crypto";
import { sql, type DatabasePool, type DatabaseTransactionConnection } from "slonik";
import { z } from "zod";
import { afterOutcome, CLOSED, mayProbe, probeClaimed, probeReleased, type BreakerConfig, type BreakerState, type CircuitStateName } from "./circuit-breaker.ts";
import type { Decision } from "./retry-policy.ts";
import type { SendResult } from "./http-sender.ts";

export const claimedJob = z.object({
  event_id: z.string(),
  endpoint_id: z.string(),
  attempt: z.number(),
  round_start: z.number(),
  lease_id: z.string(),
  tenant_id: z.string(),
  payload: z.instanceof(Buffer),
  content_type: z.string(),
  headers: z.record(z.string(), z.string()),
  request_id: z.string(),
  url: z.string(),
  signing_secret: z.string(),
  previous_secret: z.string().nullable(),
  max_attempts: z.number(),
  timeout_ms: z.number(),
});
export type ClaimedJob = z.infer<typeof claimedJob> & {
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
}

const breakerRow = z.object({
  endpoint_id: z.string(),
  state: z.string(),
  consecutive_failures: z.number(),
  opened_at: z.date().nullable(),
  retry_at: z.date().nullable(),
  probes: z.number(),
  updated_at: z.date(),
});

function toState(r: z.infer<typeof breakerRow>): BreakerState {
  return {
    state: r.state as CircuitStateName,
    consecutiveFailures: r.consecutive_failures,
    openedAtMs: r.opened_at?.getTime(),
    retryAtMs: r.retry_at?.getTime(),
    probes: r.probes,
  };
}

const claimColumns = sql.fragment`c.event_id, c.endpoint_id, c.attempt, c.round_start, c.lease_id, e.tenant_id, e.payload,
  e.content_type, e.headers, e.request_id, p.url, p.signing_secret,
  CASE WHEN p.previous_secret_expires_at > now() THEN p.previous_signing_secret END AS previous_secret,
  p.max_attempts, p.timeout_ms`;

export class JobStore {
  readonly #pool: DatabasePool;
  readonly #leaseMs: number;
  readonly #breaker: BreakerConfig;

  constructor(pool: DatabasePool, options: { leaseMs: number; breaker: BreakerConfig }) {
    this.#pool = pool;
    this.#leaseMs = options.leaseMs;
    this.#breaker = options.breaker;
  }

  /** Claims up to `limit` due jobs of enabled endpoints whose circuit is closed. Each lease lasts
   * the endpoint's timeout plus the configured lease, so it cannot run out while its attempt may
   * still be in flight (which would hand the job to another claim and deliver it twice). The event
   * row is not touched: it reads as delivering while its job is leased (management/events.ts), which
   * spares a write of the whole row, payload included, per attempt. */
  async claim(limit: number): Promise<ClaimedJob[]> {
    const sendByMs = Date.now() + this.#leaseMs;
    const rows = await this.#pool.any(sql.type(claimedJob)`
      WITH due AS (
        SELECT j.event_id FROM delivery_jobs j
        WHERE j.run_at <= now() AND (j.lease_until IS NULL OR j.lease_until < now())
          -- Per-row look-ups, not EXISTS: the planner turns EXISTS into joins, and with the tiny
          -- endpoints and circuit_breakers tables unanalysed (autovacuum may never analyse a table
          -- of a few rows) it estimated a handful of due jobs and sorted the whole queue on every
          -- claim instead of walking the run_at index and stopping at the limit.
          AND (SELECT p.enabled AND p.deleted_at IS NULL FROM endpoints p WHERE p.id = j.endpoint_id)
          AND NOT coalesce((SELECT cb.state <> 'closed' FROM circuit_breakers cb WHERE cb.endpoint_id = j.endpoint_id), false)
        ORDER BY j.run_at
        LIMIT ${limit}
        FOR UPDATE SKIP LOCKED
      ),
      c AS (
        UPDATE delivery_jobs j SET lease_until = now() + (${this.#leaseMs} + p.timeout_ms) * interval '1 millisecond',
          lease_id = ${randomUUID()}, attempt = j.attempt + 1
        FROM endpoints p WHERE j.event_id = ANY(ARRAY(SELECT event_id FROM due)) AND p.id = j.endpoint_id
        RETURNING j.event_id, j.endpoint_id, j.attempt, j.round_start, j.lease_id
      )
      SELECT ${claimColumns} FROM c JOIN events e ON e.id = c.event_id JOIN endpoints p ON p.id = c.endpoint_id`);
    return rows.map((r) => ({ ...r, probe: false, sendByMs }));
  }

  /** For circuits whose open timeout has passed (or half-open with a free slot), claims one due
   * job each as a probe and moves the circuit to half-open. Disabled and deleted endpoints are not
   * probed: their jobs wait, unleased and with no attempt spent. */
  async claimProbes(nowMs: number): Promise<ClaimedJob[]> {
    const sendByMs = Date.now() + this.#leaseMs;
    return this.#pool.transaction(async (tx) => {
      const candidates = await tx.any(sql.type(breakerRow.extend({ timeout_ms: z.number() }))`
        SELECT cb.endpoint_id, cb.state, cb.consecutive_failures, cb.opened_at, cb.retry_at, cb.probes, cb.updated_at, p.timeout_ms
        FROM circuit_breakers cb JOIN endpoints p ON p.id = cb.endpoint_id AND p.enabled AND p.deleted_at IS NULL
        WHERE (cb.state = 'open' AND cb.retry_at <= now()) OR cb.state = 'half_open'
        FOR UPDATE OF cb SKIP LOCKED`);
      const jobs: ClaimedJob[] = [];
      for (const row of candidates) {
        let state = toState(row);
        const leaseMs = this.#leaseMs + row.timeout_ms;
        // Probes of a process that died never report back; their slots come free with the lease.
        if (state.state === "half_open" && nowMs - row.updated_at.getTime() > leaseMs) state = { ...state, probes: 0 };
        if (!mayProbe(state, nowMs, this.#breaker)) continue;
        const [job] = await tx.any(sql.type(claimedJob)`
          WITH c AS (
            UPDATE delivery_jobs j SET lease_until = now() + ${leaseMs} * interval '1 millisecond',
              lease_id = ${randomUUID()}, attempt = j.attempt + 1
            WHERE j.event_id = (
              SELECT event_id FROM delivery_jobs WHERE endpoint_id = ${row.endpoint_id} AND run_at <= now()
                AND (lease_until IS NULL OR lease_until < now())
              ORDER BY run_at LIMIT 1 FOR UPDATE SKIP LOCKED)
            RETURNING j.event_id, j.endpoint_id, j.attempt, j.round_start, j.lease_id
          )
          SELECT ${claimColumns} FROM c JOIN events e ON e.id = c.event_id JOIN endpoints p ON p.id = c.endpoint_id`);
        if (!job) continue;
        await writeBreaker(tx, row.endpoint_id, probeClaimed(state));
        jobs.push({ ...job, probe: true, sendByMs });
      }
      return jobs;
    });
  }

  /** Writes a batch of outcomes in one transaction: attempt rows, job deletion or rescheduling (only
   * while the lease is still ours), event status, endpoint disabling on 410, circuit breakers.
   * Returns the endpoints it disabled. */
  async complete(outcomes: readonly Outcome[], nowMs: number): Promise<{ disabledEndpoints: string[] }> {
    if (outcomes.length === 0) return { disabledEndpoints: [] };
    return this.#pool.transaction(async (tx) => {
      // Column arrays, unnested in SQL: a fixed number of parameters whatever the batch size, and
      // `j.event_id = ANY(ids)` keeps the job lookups on the primary key (joining the VALUES list
      // made the planner hash-join a sequential scan of the whole queue on every batch).
      const ids = sql.array(outcomes.map((o) => o.job.event_id), "uuid");
      const decided = await tx.any(sql.type(z.object({ event_id: z.string(), lease_id: z.string() }))`
        WITH i AS (
          SELECT * FROM unnest(${ids}, ${sql.array(outcomes.map((o) => o.job.lease_id), "uuid")},
            ${sql.array(outcomes.map((o) => (o.decision.kind === "disable" ? "failed" : o.decision.kind)), "text")},
            ${sql.array(outcomes.map((o) => (o.decision.kind === "retry" ? new Date(o.decision.atMs).toISOString() : null)), "timestamptz")},
            ${sql.array(outcomes.map((o) => o.job.attempt), "int4")}) AS t(event_id, lease_id, kind, run_at, attempt)
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
        )
        SELECT event_id, lease_id::text FROM done`);
      const decidedKeys = new Set(decided.map((r) => `${r.event_id}/${r.lease_id}`));
      const isDecided = (o: Outcome) => decidedKeys.has(`${o.job.event_id}/${o.job.lease_id}`);

      const column = <T>(pick: (o: Outcome) => T) => outcomes.map(pick);
      await tx.query(sql.unsafe`
        INSERT INTO delivery_attempts (id, event_id, tenant_id, endpoint_id, url, attempt, payload_sha256, started_at,
          duration_ms, outcome, status_code, response_sha256, error, response_excerpt, request_id, decided)
        SELECT * FROM unnest(
          ${sql.array(column((o) => o.attemptId), "uuid")}, ${ids},
          ${sql.array(column((o) => o.job.tenant_id), "uuid")}, ${sql.array(column((o) => o.job.endpoint_id), "uuid")},
          ${sql.array(column((o) => o.job.url), "text")}, ${sql.array(column((o) => o.job.attempt), "int4")},
          ${sql.array(column((o) => o.payloadSha256), "text")}, ${sql.array(column((o) => o.result.startedAt.toISOString()), "timestamptz")},
          ${sql.array(column((o) => o.result.durationMs), "int4")}, ${sql.array(column((o) => o.result.outcome), "text")},
          ${sql.array(column((o) => o.result.statusCode ?? null), "int4")}, ${sql.array(column((o) => o.result.responseSha256 ?? null), "text")},
          ${sql.array(column((o) => o.result.error.slice(0, 2000).replaceAll("\0", "")), "text")},
          ${sql.array(column((o) => o.result.excerpt.replaceAll("\0", "")), "text")},
          ${sql.array(column((o) => o.job.request_id), "text")}, ${sql.array(column(isDecided), "bool")})`);

      const gone = [...new Set(outcomes.filter((o) => o.decision.kind === "disable" && isDecided(o)).map((o) => o.job.endpoint_id))];
      if (gone.length > 0) {
        await tx.query(sql.unsafe`
          UPDATE endpoints SET enabled = false, disabled_reason = 'destination answered 410 Gone', updated_at = now()
          WHERE id = ANY(${sql.array(gone, "uuid")})`);
      }
      await this.#updateBreakers(tx, outcomes, nowMs);
      return { disabledEndpoints: gone };
    });
  }

  async #updateBreakers(tx: DatabaseTransactionConnection, outcomes: readonly Outcome[], nowMs: number): Promise<void> {
    const endpointIds = [...new Set(outcomes.map((o) => o.job.endpoint_id))].sort();
    const rows = await tx.any(sql.type(breakerRow)`
      SELECT endpoint_id, state, consecutive_failures, opened_at, retry_at, probes, updated_at FROM circuit_breakers
      WHERE endpoint_id = ANY(${sql.array(endpointIds, "uuid")}) ORDER BY endpoint_id FOR UPDATE`);
    const current = new Map(rows.map((r) => [r.endpoint_id, toState(r)]));
    const failing = endpointIds.filter((id) => outcomes.some((o) => o.job.endpoint_id === id && o.result.outcome !== "delivered"));
    const windows = new Map<string, { attempts: number; failures: number }>();
    if (failing.length > 0) {
      const stats = await tx.any(sql.type(z.object({ endpoint_id: z.string(), attempts: z.number(), failures: z.number() }))`
        SELECT endpoint_id, count(*)::int AS attempts, count(*) FILTER (WHERE outcome <> 'delivered')::int AS failures
        FROM delivery_attempts
        WHERE endpoint_id = ANY(${sql.array(failing, "uuid")}) AND started_at > now() - ${this.#breaker.windowMs} * interval '1 millisecond'
        GROUP BY endpoint_id`);
      for (const s of stats) windows.set(s.endpoint_id, s);
    }
    for (const id of endpointIds) {
      const before = current.get(id) ?? CLOSED;
      let state = before;
      for (const o of outcomes) {
        if (o.job.endpoint_id !== id) continue;
        state = afterOutcome(state, o.result.outcome === "delivered", o.job.probe, windows.get(id) ?? { attempts: 0, failures: 0 }, nowMs, this.#breaker);
      }
      if (JSON.stringify(state) !== JSON.stringify(before)) {
        await writeBreaker(tx, id, state);
      }
    }
  }

  /** Gives back a probe slot (the probe could not be sent). */
  async releaseProbe(endpointId: string): Promise<void> {
    await this.#pool.transaction(async (tx) => {
      const row = await tx.maybeOne(sql.type(breakerRow)`
        SELECT endpoint_id, state, consecutive_failures, opened_at, retry_at, probes, updated_at FROM circuit_breakers
        WHERE endpoint_id = ${endpointId} FOR UPDATE`);
      if (row) await writeBreaker(tx, endpointId, probeReleased(toState(row)));
    });
  }
}

async function writeBreaker(tx: DatabaseTransactionConnection, endpointId: string, s: BreakerState): Promise<void> {
  const openedAt = s.openedAtMs === undefined ? null : new Date(s.openedAtMs).toISOString();
  const retryAt = s.retryAtMs === undefined ? null : new Date(s.retryAtMs).toISOString();
  await tx.query(sql.unsafe`
    INSERT INTO circuit_breakers (endpoint_id, state, consecutive_failures, opened_at, retry_at, probes, updated_at)
    VALUES (${endpointId}, ${s.state}, ${s.consecutiveFailures}, ${openedAt}::timestamptz, ${retryAt}::timestamptz, ${s.probes}, now())
    ON CONFLICT (endpoint_id) DO UPDATE SET state = excluded.state, consecutive_failures = excluded.consecutive_failures,
      opened_at = excluded.opened_at, retry_at = excluded.retry_at, probes = excluded.probes, updated_at = now()`);
}

/** Returns claimed jobs that were never sent (shutdown), without spending their attempt. */
export async function releaseJobs(pool: DatabasePool, jobs: readonly ClaimedJob[]): Promise<void> {
  if (jobs.length === 0) return;
  await pool.query(sql.unsafe`
    UPDATE delivery_jobs j SET lease_until = NULL, lease_id = NULL, attempt = j.attempt - 1
    WHERE (j.event_id, j.lease_id) IN (${sql.join(jobs.map((j) => sql.fragment`(${j.event_id}::uuid, ${j.lease_id}::uuid)`), sql.fragment`, `)})`);
}
