// Delivery's Prometheus metrics. Attempts and their timings are counted where they happen; the
// queue and circuit figures are database truth (every process reports the same), read by a
// background refresher (background-gauges.ts), so a scrape never runs an aggregate. Circuits are
// counted by state, never labelled by endpoint: an endpoint id is the gateway's credential.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { sql } from "slonik";
import { z } from "zod";
import { BackgroundGauges } from "../background-gauges.ts";
import type { DatabasePool } from "../db/pool.ts";
import type { Logger } from "../logger.ts";
import type { CircuitStateName } from "./circuit-breaker.ts";

const CIRCUIT_STATES: readonly CircuitStateName[] = ["closed", "half_open", "open"];

export class DeliveryMetrics {
  readonly attempts: Counter<"outcome">;
  readonly attemptDuration: Histogram<"outcome">;
  /** From an event's receipt to the end of the attempt that delivered it. */
  readonly ingestToDelivered: Histogram;
  /** Jobs ingest handed straight to this process's dispatcher (job-handoff.ts). */
  readonly handedOver: Counter;
  readonly gauges: BackgroundGauges;

  constructor(registry: Registry, deps: { pool: DatabasePool; log: Logger }, refreshMs: number) {
    this.attempts = new Counter({
      name: "kapsel_delivery_attempts_total",
      help: "Delivery attempts made by this process, by outcome (delivered, http_error, timeout, network_error)",
      labelNames: ["outcome"],
      registers: [registry],
    });
    this.attemptDuration = new Histogram({
      name: "kapsel_delivery_attempt_duration_seconds",
      help: "Delivery attempt duration, request start to response end, by outcome",
      labelNames: ["outcome"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers: [registry],
    });
    this.ingestToDelivered = new Histogram({
      name: "kapsel_delivery_ingest_to_delivered_seconds",
      help: "From an event's receipt (its durable acknowledgement) to the end of the attempt that delivered it, retries included",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600],
      registers: [registry],
    });
    this.handedOver = new Counter({
      name: "kapsel_delivery_handed_over_total",
      help: "Jobs this process ingested and sent without a claim (inserted leased to it; the rest are claimed)",
      registers: [registry],
    });
    const queueJobs = new Gauge({
      name: "kapsel_delivery_queue_jobs",
      help: "Jobs waiting for delivery, due or scheduled (database truth, refreshed in the background)",
      registers: [registry],
    });
    const oldestDue = new Gauge({
      name: "kapsel_delivery_queue_oldest_due_age_seconds",
      help: "Age of the oldest due, unleased job; 0 when none (database truth, refreshed in the background)",
      registers: [registry],
    });
    const circuits = new Gauge({
      name: "kapsel_delivery_circuits",
      help: "Endpoints by circuit state (closed, half_open, open); deleted endpoints are not counted (refreshed in the background)",
      labelNames: ["state"],
      registers: [registry],
    });
    this.gauges = new BackgroundGauges(registry, deps, { module: "delivery", intervalMs: refreshMs }, async (tx) => {
      // The count reads the whole queue (bounded by the statement timeout; the staleness gauge
      // shows when it did not finish); the oldest due job walks the run_at index to the first hit.
      const queue = await tx.one(sql.type(z.object({ jobs: z.number(), oldest_due: z.number() }))`
        SELECT (SELECT count(*) FROM delivery_jobs)::float8 AS jobs,
          coalesce((SELECT extract(epoch FROM now() - run_at) FROM delivery_jobs
            WHERE run_at <= now() AND (lease_until IS NULL OR lease_until < now())
            ORDER BY run_at LIMIT 1), 0)::float8 AS oldest_due`);
      const states = await tx.any(sql.type(z.object({ state: z.string(), n: z.number() }))`
        SELECT coalesce(cb.state, 'closed') AS state, count(*)::float8 AS n
        FROM endpoints p LEFT JOIN circuit_breakers cb ON cb.endpoint_id = p.id
        WHERE p.deleted_at IS NULL GROUP BY 1`);
      queueJobs.set(queue.jobs);
      oldestDue.set(Math.max(0, queue.oldest_due));
      for (const state of CIRCUIT_STATES) circuits.set({ state }, states.find((s) => s.state === state)?.n ?? 0);
    });
  }
}
