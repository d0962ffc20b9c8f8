import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { sql, type DatabasePool } from "slonik";
import { z } from "zod";

export class AttestationMetrics {
  readonly batchSize: Histogram;
  /** The fork guard's: refusals by kind, and whether signing stands refused now. */
  readonly signingRefusals: Counter<"reason">;
  readonly signingRefused: Gauge;

  constructor(registry: Registry, pool: DatabasePool) {
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
    new Gauge({
      name: "kapsel_log_size",
      help: "Leaves in the attestation log (latest signed tree size)",
      registers: [registry],
      async collect() {
        this.set(Number(await pool.oneFirst(sql.type(z.object({ s: z.string() }))`SELECT tree_size AS s FROM log_state`)));
      },
    });
    new Gauge({
      name: "kapsel_log_checkpoint_age_seconds",
      help: "Seconds since the latest checkpoint was signed",
      registers: [registry],
      async collect() {
        this.set(await pool.oneFirst(sql.type(z.object({ s: z.number() }))`
          SELECT coalesce(extract(epoch FROM now() - max(signed_at)), 0)::float8 AS s FROM checkpoints`));
      },
    });
    new Gauge({
      name: "kapsel_log_sequencer_lag_seconds",
      help: "Age of the oldest attempt not yet in the log (0 when none waits)",
      registers: [registry],
      async collect() {
        this.set(await pool.oneFirst(sql.type(z.object({ s: z.number() }))`
          SELECT coalesce(extract(epoch FROM now() - min(queued_at)), 0)::float8 AS s FROM log_queue`));
      },
    });
  }
}
