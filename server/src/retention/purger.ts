// The retention purger: every interval, one pass that applies each tenant's windows
// (purge-steps.ts) and deletes expired idempotency keys, in bounded batches.
//
// - Each batch is its own short transaction: nothing is held between batches, so a pass over a
//   large backlog never becomes a long transaction (which would hold back vacuum everywhere).
// - It never waits for ingest or delivery: rows are taken with SKIP LOCKED, in-flight events are
//   not locked at all, and lock_timeout bounds anything else.
// - One process at a time: a batch first takes a transaction-level advisory lock; when another
//   process holds it, this pass stops and the next interval tries again. Nothing else is shared,
//   so no connection is kept for leadership, and a process that dies mid-batch just rolls back.
// - Restartable: a pass keeps no state beyond its cursors, and every batch re-reads what is
//   expired now, so a pass interrupted anywhere is completed by the next one.
import type { Logger } from "pino";
import { sql, type DatabasePool, type DatabaseTransactionConnection } from "slonik";
import { z } from "zod";
import { deleteExpiredIdempotencyKeys } from "../ingest/idempotency-expiry.ts";
import type { RetentionMetrics } from "./retention-metrics.ts";
import type { TenantWindows } from "./retention-policies.ts";
import { deleteEvents, deleteOrphanMessages, purgePayloads, purgeResponseExcerpts, type Cursor } from "./purge-steps.ts";

/** Arbitrary constant naming the purger's advisory lock (beside the migration and sequencer locks). */
export const PURGE_LOCK = 7_246_100_003;

export interface PurgerOptions {
  intervalMs: number;
  batchSize: number;
  idempotencyWindowMs: number;
}

export interface PurgerDeps {
  pool: DatabasePool;
  /** Every tenant with the windows that apply to it, read once per pass. */
  tenants: () => Promise<TenantWindows[]>;
  metrics: RetentionMetrics;
  log: Logger;
}

/** What one pass removed. */
export interface PassReport {
  payloads: number;
  responseExcerpts: number;
  events: number;
  attempts: number;
  messages: number;
  idempotencyKeys: number;
  /** False when another process was purging and this pass stopped early. */
  complete: boolean;
}

class Busy extends Error {}

/** One batch of one kind of purge from a keyset position; returns where to continue. */
type Step = (tx: DatabaseTransactionConnection, cursor: Cursor | undefined) => Promise<Cursor | undefined>;

export class Purger {
  readonly #deps: PurgerDeps;
  readonly #options: PurgerOptions;
  #stopping = false;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;

  constructor(deps: PurgerDeps, options: PurgerOptions) {
    this.#deps = deps;
    this.#options = options;
  }

  start(): void {
    this.#stopping = false;
    this.#loop = this.#run();
  }

  /** Stops after the batch in progress (which commits or rolls back on its own). */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#wake?.();
    await this.#loop;
  }

  async #run(): Promise<void> {
    while (!this.#stopping) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, this.#options.intervalMs);
        const self = this;
        function done() {
          clearTimeout(timer);
          self.#wake = undefined;
          resolve();
        }
        this.#wake = done;
      });
      if (this.#stopping) break;
      try {
        const report = await this.runOnce();
        const removed = report.payloads + report.responseExcerpts + report.events + report.messages + report.idempotencyKeys;
        if (removed > 0) this.#deps.log.info({ ...report }, "retention purge pass");
      } catch (err) {
        this.#deps.log.warn({ err }, "retention purge pass failed; the next one continues");
      }
    }
  }

  /** One pass over every tenant; exposed for tests and for the benchmark. */
  async runOnce(): Promise<PassReport> {
    const report: PassReport = { payloads: 0, responseExcerpts: 0, events: 0, attempts: 0, messages: 0, idempotencyKeys: 0, complete: false };
    const { batchSize: limit } = this.#options;
    try {
      for (;;) {
        const n = await this.#batch((tx) => deleteExpiredIdempotencyKeys(tx, this.#options.idempotencyWindowMs, limit));
        this.#deps.metrics.purged("idempotency_key", n);
        report.idempotencyKeys += n;
        if (n < limit || this.#stopping) break;
      }
      for (const { tenantId, windows } of await this.#deps.tenants()) {
        const steps: Step[] = [];
        if (windows.payloadSeconds > 0) {
          steps.push(async (tx, cursor) => {
            const r = await purgePayloads(tx, tenantId, windows.payloadSeconds, cursor, limit);
            this.#deps.metrics.purged("payload", r.messages);
            report.payloads += r.messages;
            return r.next;
          });
        }
        if (windows.responseSeconds > 0) {
          steps.push(async (tx, cursor) => {
            const r = await purgeResponseExcerpts(tx, tenantId, windows.responseSeconds, cursor, limit);
            this.#deps.metrics.purged("response_excerpt", r.attempts);
            report.responseExcerpts += r.attempts;
            return r.next;
          });
        }
        if (windows.eventSeconds > 0) {
          steps.push(async (tx, cursor) => {
            const r = await deleteEvents(tx, tenantId, windows.eventSeconds, cursor, limit);
            this.#deps.metrics.purged("event", r.events);
            this.#deps.metrics.purged("attempt", r.attempts);
            this.#deps.metrics.purged("message", r.messages);
            report.events += r.events;
            report.attempts += r.attempts;
            report.messages += r.messages;
            return r.next;
          });
          steps.push(async (tx, cursor) => {
            const r = await deleteOrphanMessages(tx, tenantId, windows.eventSeconds, cursor, limit);
            this.#deps.metrics.purged("message", r.messages);
            report.messages += r.messages;
            return r.next;
          });
        }
        if (steps.length === 0) continue;
        // The first batch of every step in one transaction, so a tenant with nothing due costs
        // one; the steps with more to do then walk on, a batch per transaction.
        const cursors = await this.#batch(async (tx) => {
          const out: (Cursor | undefined)[] = [];
          for (const step of steps) out.push(await step(tx, undefined));
          return out;
        });
        for (const [i, cursor] of cursors.entries()) if (cursor !== undefined && !this.#stopping) await this.#walk(steps[i]!, cursor);
      }
      report.complete = true;
      this.#deps.metrics.passFinished();
    } catch (err) {
      if (!(err instanceof Busy)) throw err;
    }
    return report;
  }

  /** Runs batches from a keyset position until the keyset runs out (or the purger stops). */
  async #walk(step: Step, from: Cursor): Promise<void> {
    let cursor: Cursor | undefined = from;
    do {
      const at: Cursor = cursor;
      cursor = await this.#batch((tx) => step(tx, at));
    } while (cursor !== undefined && !this.#stopping);
  }

  /** One transaction under the purge lock, with bounded waits; throws Busy when another process
   * holds the lock. */
  async #batch<T>(work: (tx: DatabaseTransactionConnection) => Promise<T>): Promise<T> {
    const started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
    try {
      const result = await this.#deps.pool.transaction(async (tx) => {
        // One round trip: the lock, and bounds on any wait or statement for this transaction only.
        const { ok } = await tx.one(sql.type(z.object({ ok: z.boolean(), l: z.string(), s: z.string() }))`
          SELECT pg_try_advisory_xact_lock(${PURGE_LOCK}) AS ok, set_config('lock_timeout', '1s', true) AS l, set_config('statement_timeout', '30s', true) AS s`);
        if (!ok) throw new Busy();
        return work(tx);
      });
      this.#deps.metrics.batch("done", seconds());
      return result;
    } catch (err) {
      this.#deps.metrics.batch(err instanceof Busy ? "busy" : "error", seconds());
      throw err;
    }
  }
}
