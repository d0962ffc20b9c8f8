// Persistence of the per-endpoint circuit breakers (circuit_breakers), the only writer of that
// table. The transitions themselves are pure (circuit-breaker.ts); this module reads a breaker
// under a row lock, applies them, and writes the result, so every server process shares one
// breaker per endpoint and a restart keeps it.
import { sql, type DatabasePool, type DatabaseTransactionConnection } from "slonik";
import { z } from "zod";
import { afterOutcome, CLOSED, probeReleased, type BreakerConfig, type BreakerState, type CircuitStateName } from "./circuit-breaker.ts";

const breakerRow = z.object({
  endpoint_id: z.string(),
  state: z.string(),
  consecutive_failures: z.number(),
  opened_at: z.date().nullable(),
  retry_at: z.date().nullable(),
  probes: z.number(),
  updated_at: z.date(),
});

const BREAKER_COLUMNS = sql.fragment`cb.endpoint_id, cb.state, cb.consecutive_failures, cb.opened_at, cb.retry_at, cb.probes, cb.updated_at`;

function toState(r: z.infer<typeof breakerRow>): BreakerState {
  return {
    state: r.state as CircuitStateName,
    consecutiveFailures: r.consecutive_failures,
    openedAtMs: r.opened_at?.getTime(),
    retryAtMs: r.retry_at?.getTime(),
    probes: r.probes,
  };
}

/** A breaker that may be probed, locked for the rest of the transaction. */
export interface ProbeCandidate {
  endpointId: string;
  state: BreakerState;
  updatedAt: Date;
  timeoutMs: number;
}

/** A breaker that opened (from closed) or closed (after a successful probe) in a batch. Probes
 * that fail reopen a circuit without counting as a new opening. */
export interface CircuitTransition {
  endpointId: string;
  /** closed → open, half_open → open (the probe failed), or half_open/open → closed. */
  from: BreakerState["state"];
  to: "open" | "closed";
  state: BreakerState;
}

/** One decided attempt, as the breaker sees it. */
export interface BreakerOutcome {
  endpointId: string;
  success: boolean;
  wasProbe: boolean;
  /** Failed before anything was sent (LocalRefusal): not the destination's doing, so it counts
   * neither way; a probe that was refused gives its slot back. */
  refusedLocally: boolean;
}

export class CircuitStore {
  readonly #pool: DatabasePool;
  readonly config: BreakerConfig;

  constructor(pool: DatabasePool, config: BreakerConfig) {
    this.#pool = pool;
    this.config = config;
  }

  /** Breakers of enabled endpoints that are open past their retry time or half-open, row-locked
   * (SKIP LOCKED: another process is probing those). */
  async lockProbeCandidates(tx: DatabaseTransactionConnection): Promise<ProbeCandidate[]> {
    const rows = await tx.any(sql.type(breakerRow.extend({ timeout_ms: z.number() }))`
      SELECT ${BREAKER_COLUMNS}, p.timeout_ms
      FROM circuit_breakers cb JOIN endpoints p ON p.id = cb.endpoint_id AND p.enabled AND p.deleted_at IS NULL
      WHERE (cb.state = 'open' AND cb.retry_at <= now()) OR cb.state = 'half_open'
      FOR UPDATE OF cb SKIP LOCKED`);
    return rows.map((r) => ({ endpointId: r.endpoint_id, state: toState(r), updatedAt: r.updated_at, timeoutMs: r.timeout_ms }));
  }

  /** Applies a batch of attempt outcomes to their endpoints' breakers, inside the transaction that
   * records them. The failure rate comes from the attempts in the sliding window, which already
   * include this batch's. Returns the openings (also after a failed probe) and closings. */
  async applyOutcomes(tx: DatabaseTransactionConnection, outcomes: readonly BreakerOutcome[], nowMs: number): Promise<CircuitTransition[]> {
    const endpointIds = [...new Set(outcomes.map((o) => o.endpointId))].sort();
    const rows = await tx.any(sql.type(breakerRow)`
      SELECT ${BREAKER_COLUMNS} FROM circuit_breakers cb
      WHERE cb.endpoint_id = ANY(${sql.array(endpointIds, "uuid")}) ORDER BY cb.endpoint_id FOR UPDATE`);
    const current = new Map(rows.map((r) => [r.endpoint_id, toState(r)]));
    const failing = endpointIds.filter((id) => outcomes.some((o) => o.endpointId === id && !o.success && !o.refusedLocally));
    const windows = new Map<string, { attempts: number; failures: number }>();
    if (failing.length > 0) {
      const stats = await tx.any(sql.type(z.object({ endpoint_id: z.string(), attempts: z.number(), failures: z.number() }))`
        SELECT endpoint_id, count(*)::int AS attempts, count(*) FILTER (WHERE outcome <> 'delivered')::int AS failures
        FROM delivery_attempts
        WHERE endpoint_id = ANY(${sql.array(failing, "uuid")}) AND started_at > now() - ${this.config.windowMs} * interval '1 millisecond'
          AND NOT refused_locally
        GROUP BY endpoint_id`);
      for (const s of stats) windows.set(s.endpoint_id, s);
    }
    const transitions: CircuitTransition[] = [];
    for (const id of endpointIds) {
      const before = current.get(id) ?? CLOSED;
      let state = before;
      for (const o of outcomes) {
        if (o.endpointId !== id) continue;
        if (o.refusedLocally) {
          if (o.wasProbe) state = probeReleased(state);
          continue;
        }
        state = afterOutcome(state, o.success, o.wasProbe, windows.get(id) ?? { attempts: 0, failures: 0 }, nowMs, this.config);
      }
      if (JSON.stringify(state) !== JSON.stringify(before)) await this.write(tx, id, state);
      if (before.state !== "open" && state.state === "open") transitions.push({ endpointId: id, from: before.state, to: "open", state });
      else if (before.state !== "closed" && state.state === "closed") transitions.push({ endpointId: id, from: before.state, to: "closed", state });
    }
    return transitions;
  }

  /** Gives back a probe slot (the probe could not be sent). */
  async releaseProbe(endpointId: string): Promise<void> {
    await this.#pool.transaction(async (tx) => {
      const row = await tx.maybeOne(sql.type(breakerRow)`
        SELECT ${BREAKER_COLUMNS} FROM circuit_breakers cb WHERE cb.endpoint_id = ${endpointId} FOR UPDATE`);
      if (row) await this.write(tx, endpointId, probeReleased(toState(row)));
    });
  }

  async write(tx: DatabaseTransactionConnection, endpointId: string, s: BreakerState): Promise<void> {
    const openedAt = s.openedAtMs === undefined ? null : new Date(s.openedAtMs).toISOString();
    const retryAt = s.retryAtMs === undefined ? null : new Date(s.retryAtMs).toISOString();
    await tx.query(sql.unsafe`
      INSERT INTO circuit_breakers (endpoint_id, state, consecutive_failures, opened_at, retry_at, probes, updated_at)
      VALUES (${endpointId}, ${s.state}, ${s.consecutiveFailures}, ${openedAt}::timestamptz, ${retryAt}::timestamptz, ${s.probes}, now())
      ON CONFLICT (endpoint_id) DO UPDATE SET state = excluded.state, consecutive_failures = excluded.consecutive_failures,
        opened_at = excluded.opened_at, retry_at = excluded.retry_at, probes = excluded.probes, updated_at = now()`);
  }
}
