// Ingest's Prometheus metrics: messages by entry path and result, the events they made, how long
// a durable acknowledgement takes, and how many messages each group-commit statement carried.
// `result` means the same everywhere in Kapsel's metrics: `ok`, `duplicate`, an E-code, or
// `aborted` (the sender left mid-body).
import { Counter, Histogram, type Registry } from "prom-client";
import type { Accepted } from "./message-insert.ts";

/** Where a message came in: the endpoint gateway, a source URL, or the two RPCs. */
export type IngestPath = "gateway" | "source_gateway" | "ingest" | "ingest_batch";

export class IngestMetrics {
  readonly messages: Counter<"path" | "result">;
  readonly events: Counter<"path">;
  readonly duration: Histogram<"path">;
  readonly groupCommitMessages: Histogram;

  constructor(registry: Registry) {
    this.messages = new Counter({
      name: "kapsel_ingest_messages_total",
      help: "Messages offered for ingest, by path (gateway, source_gateway, ingest, ingest_batch) and result (ok, duplicate, an E-code, aborted); a batch counts each of its messages (one refused with E9002 before its body was read counts none: kapsel_http_requests_total counts the request)",
      labelNames: ["path", "result"],
      registers: [registry],
    });
    this.events = new Counter({
      name: "kapsel_ingest_events_total",
      help: "Events created by accepted new messages (one per subscribed endpoint), by path",
      labelNames: ["path"],
      registers: [registry],
    });
    this.duration = new Histogram({
      name: "kapsel_ingest_duration_seconds",
      help: "From request start to durable acknowledgement (new or duplicate), by path",
      labelNames: ["path"],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    });
    this.groupCommitMessages = new Histogram({
      name: "kapsel_ingest_group_commit_messages",
      help: "Messages per group-commit statement",
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
      registers: [registry],
    });
  }

  /** A message stored (or found to be a duplicate). */
  accepted(path: IngestPath, a: Accepted): void {
    this.messages.inc({ path, result: a.duplicate ? "duplicate" : "ok" });
    if (!a.duplicate && a.eventIds.length > 0) this.events.inc({ path }, a.eventIds.length);
  }

  /** Messages refused with an E-code, or abandoned by their sender (`aborted`). */
  refused(path: IngestPath, result: string, count = 1): void {
    if (count > 0) this.messages.inc({ path, result }, count);
  }
}
