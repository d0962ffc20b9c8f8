// Witnessing metrics. Witnesses are labelled by their policy name (the key name, plus the key ID
// when two share one): a bounded set fixed by configuration, public anyway (it is on every
// cosignature line), never a URL, which may be internal. Positions (what each witness cosigned,
// how far behind it is) come from the database, so every process reports them, leader or not;
// they are read by the log's background refresher (never while a scrape waits); exchange
// counters are the leader's.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { DatabaseTransactionConnection } from "slonik";
import type { WitnessFailure } from "./witness-client.ts";
import type { WitnessedCheckpoints } from "./witnessed-checkpoints.ts";

export class WitnessMetrics {
  readonly failures: Counter<"witness" | "reason">;
  readonly cosignatures: Counter<"witness">;
  readonly exchangeSeconds: Histogram<"witness">;

  /** `refreshing` adds the position gauges' reading to the log's background refresh. */
  constructor(registry: Registry, witnessed: WitnessedCheckpoints, refreshing: (refresh: (tx: DatabaseTransactionConnection) => Promise<void>) => void) {
    this.failures = new Counter({
      name: "kapsel_witness_failures_total",
      help: "Failed add-checkpoint exchanges with a witness, by witness and reason",
      labelNames: ["witness", "reason"],
      registers: [registry],
    });
    this.cosignatures = new Counter({
      name: "kapsel_witness_cosignatures_total",
      help: "Verified cosignatures received from a witness",
      labelNames: ["witness"],
      registers: [registry],
    });
    this.exchangeSeconds = new Histogram({
      name: "kapsel_witness_exchange_duration_seconds",
      help: "Duration of add-checkpoint exchanges with a witness, whatever their outcome",
      labelNames: ["witness"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });
    const lagSeconds = new Gauge({
      name: "kapsel_witness_lag_seconds",
      help: "How long the oldest checkpoint a witness has not cosigned has been waiting (0 when it cosigned the latest)",
      labelNames: ["witness"],
      registers: [registry],
    });
    const lagLeaves = new Gauge({
      name: "kapsel_witness_lag_leaves",
      help: "Leaves the log holds beyond the largest checkpoint a witness cosigned",
      labelNames: ["witness"],
      registers: [registry],
    });
    const cosignedSize = new Gauge({
      name: "kapsel_witness_cosigned_tree_size",
      help: "Largest tree size a witness cosigned (0 before its first cosignature)",
      labelNames: ["witness"],
      registers: [registry],
    });
    const witnessedSize = new Gauge({
      name: "kapsel_log_witnessed_tree_size",
      help: "Tree size of the witnessed checkpoint (the latest one meeting the witness quorum; 0 before the first)",
      registers: [registry],
    });
    refreshing(async (tx) => {
      for (const p of await witnessed.positions(tx)) {
        lagSeconds.set({ witness: p.witness.name }, p.lagSeconds);
        lagLeaves.set({ witness: p.witness.name }, p.lagLeaves);
        cosignedSize.set({ witness: p.witness.name }, p.cosignedSize ?? 0);
      }
      witnessedSize.set((await witnessed.queryLatest(tx))?.treeSize ?? 0);
    });
  }

  failed(witness: string, reason: WitnessFailure): void {
    this.failures.inc({ witness, reason });
  }
}
