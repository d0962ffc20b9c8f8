// Prometheus metrics. One registry per server instance (tests run several servers in a process);
// each capability registers its own metrics on it.
import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export class HttpMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<"route" | "code">;
  readonly latency: Histogram<"route">;

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "kapsel_" });
    this.requests = new Counter({
      name: "kapsel_http_requests_total",
      help: "Requests by route (RPC method or path pattern) and result code (Connect code for RPCs, HTTP status otherwise)",
      labelNames: ["route", "code"],
      registers: [this.registry],
    });
    this.latency = new Histogram({
      name: "kapsel_http_request_duration_seconds",
      help: "Request latency by route, until the response is finished",
      labelNames: ["route"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
  }
}
