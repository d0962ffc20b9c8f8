// Prometheus metrics. One registry per server instance (tests run several servers in a process);
// each capability registers its own metrics on it. These are the HTTP layer's own, and the two
// ways the registry is read: a separate listener (loopback by default) and, only with a token,
// `/metrics` on the main port. An outsider on the public port never reads metrics.
import { timingSafeEqual, createHash } from "node:crypto";
import http from "node:http";
import type net from "node:net";
import { Counter, Histogram, collectDefaultMetrics, type Registry } from "prom-client";
import { bearerToken } from "../auth/bearer-token.ts";
import { KapselError } from "../errors.ts";
import { exact, sendError, type PlainRoute, type Req, type Res } from "./plain-route.ts";

export class HttpMetrics {
  readonly registry: Registry;
  readonly requests: Counter<"route" | "result">;
  readonly duration: Histogram<"route">;

  constructor(registry: Registry) {
    this.registry = registry;
    // The standard process_* and nodejs_* names, unprefixed, so stock dashboards find them.
    collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({
      name: "kapsel_http_requests_total",
      help: "Requests on the main port by route (RPC method or path pattern, `unmatched` for the rest) and result (ok, an E-code, a Connect code name for errors raised before Kapsel's code ran, or the HTTP status of other refusals)",
      labelNames: ["route", "result"],
      registers: [this.registry],
    });
    this.duration = new Histogram({
      name: "kapsel_http_request_duration_seconds",
      help: "Request duration by route, until the response is finished",
      labelNames: ["route"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
  }
}

/** Constant-time check of a bearer token against the configured one. */
function tokenMatches(expected: string): (header: string | undefined) => boolean {
  const want = createHash("sha256").update(expected).digest();
  return (header) => {
    const given = bearerToken(header);
    return given !== undefined && timingSafeEqual(createHash("sha256").update(given).digest(), want);
  };
}

async function answerScrape(registry: Registry, res: Res): Promise<void> {
  const text = await registry.metrics();
  res.writeHead(200, { "content-type": registry.contentType, "cache-control": "no-store" });
  res.end(text);
}

/** GET /metrics on the main port, for a deployment that scrapes through it: only with a token.
 * Without one the route does not exist (the caller sees the same 404 as for any unknown path). */
export function metricsRoutes(registry: Registry, token: string | undefined): PlainRoute[] {
  if (token === undefined) return [];
  const matches = tokenMatches(token);
  return [exact("GET", "/metrics", async (req, res, _params, ctx) => {
    if (!matches(req.headers.authorization)) return sendError(res, new KapselError("E1004", "the metrics token is missing or wrong"), ctx);
    await answerScrape(registry, res);
  })];
}

export interface MetricsListener {
  port: number;
  close(): Promise<void>;
}

/** The separate metrics listener: HTTP/1.1, GET /metrics only (the token too when one is set),
 * short timeouts, few connections; a scraper needs nothing more. */
export async function listenForMetrics(
  address: { host: string; port: number },
  registry: Registry,
  token: string | undefined,
): Promise<MetricsListener> {
  const matches = token === undefined ? () => true : tokenMatches(token);
  const server = http.createServer({ headersTimeout: 10_000, requestTimeout: 30_000, keepAliveTimeout: 65_000 }, (req: Req, res: Res) => {
    const path = (req.url ?? "").split("?")[0];
    if (path !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    if (!matches(req.headers.authorization)) {
      res.writeHead(401, { "content-type": "text/plain", "www-authenticate": "Bearer" }).end("the metrics token is missing or wrong\n");
      return;
    }
    answerScrape(registry, res).catch(() => res.destroy());
  });
  server.maxConnections = 64;
  server.on("connection", (socket: net.Socket) => socket.setTimeout(120_000, () => socket.destroy()));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(address.port, address.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
