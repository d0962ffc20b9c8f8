// The request handler both listeners share. Order: request id → CORS preflight → plain routes
// (health, metrics, the ingest gateway, log tiles, proof download) → the Connect router, which
// serves Connect, gRPC and gRPC-Web for every service.
import { randomUUID } from "node:crypto";
import { createContextValues, type ConnectRouter, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { Logger } from "pino";
import { toKapselError } from "../errors.ts";
import { corsHeaders, isPreflight, preflightHeaders } from "./cors.ts";
import { withParseFailuresAsInvalidArgument } from "./binary-parse-errors.ts";
import { gateErrors } from "./error-interceptor.ts";
import type { HttpMetrics } from "./metrics.ts";
import { sendError, sendJson, type PlainRoute, type Req, type Res } from "./plain-route.ts";
import { requestContextKey, type RequestContext } from "./request-context.ts";
import { IngestService } from "@kapsel/contracts/ingest";
import { ACCEPTED_COMPRESSION, readLimitOf, SMALL_RPC_BYTES, withReadLimits, type RpcReadLimits } from "./rpc-limits.ts";

export interface AppOptions {
  log: Logger;
  metrics: HttpMetrics;
  routes: PlainRoute[];
  rpc: (router: ConnectRouter) => void;
  /** Runs on every RPC's headers before its body is read (authentication); throws to refuse. */
  gate: (ctx: HandlerContext) => Promise<void>;
  interceptors: Interceptor[];
  readLimits: RpcReadLimits;
  shutdownSignal: AbortSignal;
}

const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;
const contexts = new WeakMap<object, RequestContext>();

export interface App {
  handle(req: Req, res: Res): void;
  /** Requests that have not finished yet (for graceful shutdown). */
  active(): number;
  /** Writes what is still pending (the last refusal summary), at shutdown. */
  flush(): void;
}

export function createApp(options: AppOptions): App {
  const { log, metrics, routes } = options;
  // RPC paths label metrics only when they name a real method: a label per unknown path would let
  // anyone grow the metric series without bound.
  const rpcPaths = new Set<string>();
  const rpc = connectNodeAdapter({
    routes: (router) => {
      options.rpc(withReadLimits(router, (method) => readLimitOf(method, options.readLimits)));
      router.handlers.splice(0, router.handlers.length, ...router.handlers.map(withParseFailuresAsInvalidArgument));
      for (const handler of router.handlers) rpcPaths.add(handler.requestPath);
    },
    requestGate: gateErrors(options.gate, log),
    interceptors: options.interceptors,
    acceptCompression: ACCEPTED_COMPRESSION,
    readMaxBytes: SMALL_RPC_BYTES,
    writeMaxBytes: Math.max(options.readLimits.batchBytes, readLimitOf(IngestService.method.ingest, options.readLimits)),
    // Compressing the usual few-KiB answers (proofs, pages) costs more CPU and garbage than it
    // saves; large ones (event payloads, long lists) are still compressed.
    compressMinBytes: 16 * 1024,
    shutdownSignal: options.shutdownSignal,
    contextValues: (req) => createContextValues().set(requestContextKey, contexts.get(req)),
  });

  const shed = shedSummary(log);
  let active = 0;
  const handle = (req: Req, res: Res): void => {
    const started = performance.now();
    active++;
    const header = req.headers["x-request-id"];
    const requestId = typeof header === "string" && REQUEST_ID.test(header) ? header : randomUUID();
    const session = (req as unknown as { stream?: { session?: object } }).stream?.session;
    const ctx: RequestContext = { requestId, log, connection: session ?? req.socket };
    contexts.set(req, ctx);
    res.setHeader("x-request-id", requestId);
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const pathname = q === -1 ? url : url.slice(0, q);
    const method = req.method ?? "GET";

    let routeName = pathname;
    let quiet = false;
    res.on("close", () => {
      active--;
      const seconds = (performance.now() - started) / 1000;
      const result = resultOf(ctx, res);
      metrics.requests.inc({ route: routeName, result });
      metrics.duration.observe({ route: routeName }, seconds);
      // The route's pattern, never the path itself: a path can carry an endpoint id, a credential.
      const entry = { request_id: requestId, method, path: routeName, status: res.statusCode, result, ms: Math.round(seconds * 10000) / 10 };
      if (quiet && res.statusCode < 400) log.debug(entry, "request");
      else if (SHED.has(result)) {
        log.debug(entry, "request");
        shed.count(result);
      } else log.info(entry, "request");
    });

    if (isPreflight(method, req.headers)) {
      routeName = "preflight";
      res.writeHead(204, preflightHeaders());
      res.end();
      return;
    }
    for (const [k, v] of Object.entries(corsHeaders(req.headers))) res.setHeader(k, v);

    for (const route of routes) {
      const params = route.match(method, pathname);
      if (!params) continue;
      routeName = route.name;
      quiet = route.quiet ?? false;
      const unexpected = (err: unknown): void => {
        const known = toKapselError(err);
        if (known) return sendError(res, known, ctx);
        log.error({ err, request_id: requestId }, "unexpected error");
        ctx.code = "internal";
        if (!res.headersSent) sendJson(res, 500, { code: "internal", message: "internal error", request_id: requestId });
        else res.destroy();
      };
      try {
        const done = route.handle(req, res, params, ctx);
        if (done instanceof Promise) done.catch(unexpected);
      } catch (err) {
        unexpected(err);
      }
      return;
    }
    // Unknown paths get the adapter's 404.
    routeName = rpcPaths.has(pathname) ? pathname : "unmatched";
    // The adapter builds a URL from the request's authority and throws (outside any handler, which
    // would end the process) when there is none or it is not a host: an HTTP/1.0 request may omit
    // Host, and anyone may send any bytes in it. The authority only completes that URL; nothing is
    // routed or trusted by it.
    const h2 = "authority" in req;
    const authority = h2 ? (req as unknown as { authority?: string }).authority : req.headers.host;
    if (!authority || !URL.canParse(`http://${authority}/`)) {
      if (h2) Object.defineProperty(req, "authority", { value: "kapsel.invalid" });
      else req.headers.host = "kapsel.invalid";
    }
    try {
      rpc(req as never, res as never);
    } catch (err) {
      log.error({ err, request_id: requestId }, "unexpected error");
      ctx.code = "internal";
      if (!res.headersSent) sendJson(res, 500, { code: "internal", message: "internal error", request_id: requestId });
      else res.destroy();
    }
  };
  return { handle, active: () => active, flush: () => shed.flush() };
}

/** Answers that shed load (throttled, overloaded), on any route or RPC. They come by the thousand a
 * second exactly when the process has least to spare, so each is logged at debug and a summary at
 * warn at most once a second. */
const SHED = new Set(["E1005", "E9002"]);

function shedSummary(log: Logger): { count(result: string): void; flush(): void } {
  let counts: Record<string, number> | undefined;
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    clearTimeout(timer);
    if (counts) log.warn({ refused: counts }, "requests refused under load in the last second (throttled or overloaded)");
    counts = undefined;
  };
  return {
    count(result) {
      if (!counts) {
        counts = {};
        timer = setTimeout(flush, 1000).unref();
      }
      counts[result] = (counts[result] ?? 0) + 1;
    },
    flush,
  };
}

/** A request's `result` for metrics and logs: what the answering code recorded (ok, an E-code, a
 * Connect code's name), else what the response says (a gRPC status sent before any handler ran,
 * the HTTP status of a refusal), `aborted` when the response never finished. */
function resultOf(ctx: RequestContext, res: Res): string {
  if (ctx.code !== undefined) return ctx.code;
  const grpc = res.getHeader("grpc-status");
  if (grpc !== undefined && String(grpc) !== "0") return codeToString(Number(grpc));
  if (!res.writableEnded) return "aborted";
  return res.statusCode < 400 ? "ok" : String(res.statusCode);
}
