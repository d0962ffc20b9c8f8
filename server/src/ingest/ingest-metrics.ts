import { Counter, Histogram, type Registry } from "prom-client";

export type IngestPath = "gateway" | "ingest" | "ingest_batch";

export class IngestMetrics {
  readonly requests: Counter<"path" | "code">;
  readonly latency: Histogram<"path">;
  readonly batchSize: Histogram;
  readonly duplicates: Counter<"path">;

  constructor(registry: Registry) {
    this.requests = new Counter({
      name: "kapsel_ingest_requests_total",
      help: "Ingest requests by path (gateway, ingest, ingest_batch) and result code (ok, duplicate, an E-code, or aborted when a sender left mid-body)",
      labelNames: ["path", "code"],
      registers: [registry],
    });
    this.latency = new Histogram({
      name: "kapsel_ingest_duration_seconds",
      help: "Ingest latency from request start to durable acknowledgement",
      labelNames: ["path"],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    });
    this.batchSize = new Histogram({
      name: "kapsel_ingest_group_commit_rows",
      help: "Rows per group-commit statement",
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
      registers: [registry],
    });
    this.duplicates = new Counter({
      name: "kapsel_ingest_duplicates_total",
      help: "Events answered as duplicates of an earlier idempotency key",
      labelNames: ["path"],
      registers: [registry],
    });
  }
}
