import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { sql } from "slonik";
import { z } from "zod";
import type { DatabasePool } from "../db/pool.ts";

const STATE_VALUE: Record<string, number> = { closed: 0, half_open: 1, open: 2 };

export class DeliveryMetrics {
  readonly attempts: Counter<"outcome">;
  readonly latency: Histogram<"outcome">;

  constructor(registry: Registry, pool: DatabasePool) {
    this.attempts = new Counter({
      name: "kapsel_delivery_attempts_total",
      help: "Delivery attempts by outcome (delivered, http_error, timeout, network_error)",
      labelNames: ["outcome"],
      registers: [registry],
    });
    this.latency = new Histogram({
      name: "kapsel_delivery_duration_seconds",
      help: "Delivery attempt duration, request start to response end",
      labelNames: ["outcome"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    });
    // Queue figures are read from the database when scraped, so every process reports the truth.
    new Gauge({
      name: "kapsel_delivery_queue_depth",
      help: "Jobs waiting for delivery (due or scheduled)",
      registers: [registry],
      async collect() {
        this.set(Number(await pool.oneFirst(sql.type(z.object({ n: z.string() }))`SELECT count(*) AS n FROM delivery_jobs`)));
      },
    });
    new Gauge({
      name: "kapsel_delivery_oldest_due_seconds",
      help: "Age of the oldest due, unleased job (0 when none)",
      registers: [registry],
      async collect() {
        this.set(await pool.oneFirst(sql.type(z.object({ s: z.number() }))`
          SELECT coalesce(extract(epoch FROM now() - min(run_at)), 0)::float8 AS s FROM delivery_jobs
          WHERE run_at <= now() AND (lease_until IS NULL OR lease_until < now())`));
      },
    });
    new Gauge({
      name: "kapsel_circuit_state",
      help: "Circuit breaker state per endpoint: 0 closed, 1 half-open, 2 open (endpoints that ever failed)",
      labelNames: ["endpoint_id"],
      registers: [registry],
      async collect() {
        this.reset();
        const rows = await pool.any(sql.type(z.object({ endpoint_id: z.string(), state: z.string() }))`
          SELECT endpoint_id, state FROM circuit_breakers`);
        for (const r of rows) this.set({ endpoint_id: r.endpoint_id }, STATE_VALUE[r.state] ?? 0);
      },
    });
  }
}
