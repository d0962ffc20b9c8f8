// The log's Prometheus metrics. Batch sizes are counted by the sequencer that appends them; the
// log's size, checkpoint age and sequencer lag are database truth (every process reports the
// same), read by a background refresher (background-gauges.ts) so a scrape never queries; each
// figure is one primary-key look-up, whatever the size of the log.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { sql, type DatabaseTransactionConnection } from "slonik";
import { z } from "zod";
import { BackgroundGauges } from "../background-gauges.ts";
import type { DatabasePool } from "../db/pool.ts";
import type { Logger } from "../logger.ts";

export class AttestationMetrics {
  readonly batchSize: Histogram;
  readonly gauges: BackgroundGauges;
  readonly #alsoRefreshed: ((tx: DatabaseTransactionConnection) => Promise<void>)[] = [];
  /** The fork guard's: refusals by kind, and whether signing stands refused now. */
  readonly signingRefusals: Counter<"reason">;
  readonly signingRefused: Gauge;

  constructor(registry: Registry, deps: { pool: DatabasePool; log: Logger }, refreshMs: number) {
    this.signingRefusals = new Counter({
      name: "kapsel_log_signing_refusals_total",
      help: "Times the fork guard stopped the sequencer from signing, by reason (database_behind, root_mismatch, witnessed_checkpoint, witness_evidence, state_file)",
      labelNames: ["reason"],
      registers: [registry],
    });
    this.signingRefused = new Gauge({
      name: "kapsel_log_signing_refused",
      help: "1 while the fork guard refuses to sign checkpoints in this process (the log would contradict what it published), else 0",
      registers: [registry],
    });
    this.batchSize = new Histogram({
      name: "kapsel_log_batch_leaves",
      help: "Leaves appended per sequencer batch (one signed checkpoint each)",
      buckets: [0, 1, 10, 100, 1000, 5000, 10000],
      registers: [registry],
    });
    const leaves = new Gauge({
      name: "kapsel_log_leaves",
      help: "Leaves in the attestation log: the latest signed tree size (refreshed in the background)",
      registers: [registry],
    });
    const checkpointAge = new Gauge({
      name: "kapsel_log_checkpoint_age_seconds",
      help: "Seconds since the latest checkpoint was signed (refreshed in the background)",
      registers: [registry],
    });
    const sequencerLag = new Gauge({
      name: "kapsel_log_sequencer_lag_seconds",
      help: "Age of the oldest recorded attempt not yet in the log; 0 when none waits (refreshed in the background)",
      registers: [registry],
    });
    this.gauges = new BackgroundGauges(registry, deps, { module: "attestation", intervalMs: refreshMs }, async (tx) => {
      const row = await tx.one(sql.type(z.object({ size: z.string(), age: z.number(), lag: z.number() }))`
        SELECT (SELECT tree_size FROM log_state)::text AS size,
          coalesce((SELECT extract(epoch FROM now() - signed_at) FROM checkpoints ORDER BY tree_size DESC LIMIT 1), 0)::float8 AS age,
          coalesce((SELECT extract(epoch FROM now() - queued_at) FROM log_queue ORDER BY attempt_seq LIMIT 1), 0)::float8 AS lag`);
      leaves.set(Number(row.size));
      checkpointAge.set(Math.max(0, row.age));
      sequencerLag.set(Math.max(0, row.lag));
      for (const refresh of this.#alsoRefreshed) await refresh(tx);
    });
  }

  /** Adds figures of the log's parts (witnessing) to the same background refresh. */
  alsoRefresh(refresh: (tx: DatabaseTransactionConnection) => Promise<void>): void {
    this.#alsoRefreshed.push(refresh);
  }
}
