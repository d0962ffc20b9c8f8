// Prometheus metrics. One registry per server instance (tests run several servers in a process);
// each capability registers its own metrics on it. These are the HTTP layer's own, and the route
// that serves them all.
import { Counter, Histogram, collectDefaultMetrics, type Registry } from "prom-client";
import { exact, type PlainRoute } from "./plain-route.ts";

export class HttpMetrics {
  readonly registry: Registry;
  readonly requests: Counter<"route" | "code">;
  readonly latency: Histogram<"route">;

  constructor(registry: Registry) {
    this.registry = registry;
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

/** GET /metrics: the Prometheus text of every capability's metrics. */
export function metricsRoute(registry: Registry): PlainRoute {
  return exact("GET", "/metrics", async (_req, res) => {
    const text = await registry.metrics();
    res.writeHead(200, { "content-type": registry.contentType });
    res.end(text);
  });
}
