// What retention and erasure removed, and whether the purger keeps up. All in-memory counters of
// this process (a scrape runs no query): rows by kind, batches by result, batch duration in
// seconds, and when the last complete pass ended, for an alert on a purger that stopped.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

/** What the purger removes, one label value per kind of row. */
export type PurgedKind = "payload" | "response_excerpt" | "event" | "attempt" | "message" | "idempotency_key";
export type BatchResult = "done" | "busy" | "error";

export class RetentionMetrics {
  readonly #purged: Counter<"kind">;
  readonly #erased: Counter<"kind">;
  readonly #erasures: Counter;
  readonly #batches: Counter<"result">;
  readonly #batchDuration: Histogram;
  readonly #lastPass: Gauge;

  constructor(registry: Registry) {
    this.#purged = new Counter({
      name: "kapsel_retention_purged_total",
      help: "Rows the retention purger removed or cleared, by kind: payload (message payload and headers), response_excerpt, event, attempt, message (deleted), idempotency_key",
      labelNames: ["kind"],
      registers: [registry],
    });
    this.#erased = new Counter({
      name: "kapsel_retention_erased_total",
      help: "Rows EraseEvents cleared, by kind: payload (messages), event (events marked erased), response_excerpt (attempts)",
      labelNames: ["kind"],
      registers: [registry],
    });
    this.#erasures = new Counter({
      name: "kapsel_retention_erasure_requests_total",
      help: "EraseEvents calls that committed (each writes an erasure record)",
      registers: [registry],
    });
    this.#batches = new Counter({
      name: "kapsel_retention_purge_batches_total",
      help: "Purge transactions by result: done, busy (another process was purging; this pass stopped), error",
      labelNames: ["result"],
      registers: [registry],
    });
    this.#batchDuration = new Histogram({
      name: "kapsel_retention_purge_batch_duration_seconds",
      help: "Duration of one purge transaction",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });
    this.#lastPass = new Gauge({
      name: "kapsel_retention_purge_last_pass_timestamp_seconds",
      help: "Unix time when this process last finished a complete purge pass (0 before the first)",
      registers: [registry],
    });
    for (const kind of ["payload", "response_excerpt", "event", "attempt", "message", "idempotency_key"]) this.#purged.inc({ kind }, 0);
    for (const kind of ["payload", "event", "response_excerpt"]) this.#erased.inc({ kind }, 0);
    for (const result of ["done", "busy", "error"]) this.#batches.inc({ result }, 0);
  }

  purged(kind: PurgedKind, rows: number): void {
    if (rows > 0) this.#purged.inc({ kind }, rows);
  }

  batch(result: BatchResult, seconds: number): void {
    this.#batches.inc({ result });
    if (result !== "busy") this.#batchDuration.observe(seconds);
  }

  passFinished(): void {
    this.#lastPass.set(Date.now() / 1000);
  }

  erased(messages: number, events: number, attempts: number): void {
    this.#erasures.inc();
    this.#erased.inc({ kind: "payload" }, messages);
    this.#erased.inc({ kind: "event" }, events);
    this.#erased.inc({ kind: "response_excerpt" }, attempts);
  }
}
