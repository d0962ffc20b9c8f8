// The request handler both listeners share. Order: request id → CORS preflight → plain routes
// (health, metrics, the ingest gateway, log tiles, proof download) → the Connect router, which
// serves Connect, gRPC and gRPC-Web for every service.
import { randomUUID } from "node:crypto";
import type http from "node:http";
import { ConnectError, Code, createContextKey, createContextValues, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { Logger } from "pino";
import { KapselError, toKapselError } from "../errors.ts";
import { corsHeaders, isPreflight, preflightHeaders } from "./cors.ts";
import type { HttpMetrics } from "./metrics.ts";

// HTTP/2 compatibility objects offer the same API as HTTP/1.1's for what the handlers use, so the
// handlers see one type.
export type Req = http.IncomingMessage;
export type Res = http.ServerResponse;

export interface RequestContext {
  requestId: string;
  log: Logger;
  /** Set by the handler to label metrics and logs with a result code. */
  code?: string;
}

/** A non-RPC route. `match` returns the path parameters, or undefined when it does not apply. */
export interface PlainRoute {
  /** The metrics label, e.g. `/ingest/{endpoint_id}`. */
  name: string;
  match(method: string, pathname: string): string[] | undefined;
  handle(req: Req, res: Res, params: string[], ctx: RequestContext): Promise<void> | void;
  /** Successful requests on hot paths log at debug instead of info. */
  quiet?: boolean;
}

export interface AppOptions {
  log: Logger;
  metrics: HttpMetrics;
  routes: PlainRoute[];
  rpc: (router: ConnectRouter) => void;
  interceptors: Interceptor[];
  readMaxBytes: number;
  shutdownSignal: AbortSignal;
}

/** The per-request context, also visible to RPC handlers and interceptors. */
export const requestContextKey = createContextKey<RequestContext | undefined>(undefined);

const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;
const contexts = new WeakMap<object, RequestContext>();

export function sendJson(res: Res, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sendError(res: Res, err: KapselError, ctx: RequestContext): void {
  ctx.code = err.code;
  const headers: Record<string, string> = {};
  if (err.retryAfterMs !== undefined) headers["retry-after"] = String(Math.max(1, Math.ceil(err.retryAfterMs / 1000)));
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, err.httpStatus, err.toJson(ctx.requestId), headers);
}

/** Maps KapselError and database outages to RPC errors with ErrorInfo; records the result code. */
export function errorInterceptor(log: Logger): Interceptor {
  const convert = (err: unknown, requestId: string): ConnectError => {
    const known = toKapselError(err);
    if (known) return known.toConnectError();
    if (err instanceof ConnectError) return err;
    // A stream ended by the client going away or by its deadline: the signal's reason, not a fault.
    if (err instanceof Error && (err.name === "AbortError" || err.name === "TimeoutError")) return ConnectError.from(err);
    log.error({ err, request_id: requestId }, "unexpected error in RPC handler");
    return new ConnectError("internal error", Code.Internal);
  };
  return (next) => async (req) => {
    const ctx = req.contextValues.get(requestContextKey);
    const requestId = ctx?.requestId ?? "";
    try {
      const res = await next(req);
      if (ctx) ctx.code = "ok";
      if (!res.stream) return res;
      const source = res.message;
      return {
        ...res,
        message: (async function* () {
          try {
            yield* source;
          } catch (err) {
            const converted = convert(err, requestId);
            if (ctx) ctx.code = codeToString(converted.code);
            throw converted;
          }
        })(),
      };
    } catch (err) {
      const converted = convert(err, requestId);
      if (ctx) ctx.code = codeToString(converted.code);
      throw converted;
    }
  };
}

export interface App {
  handle(req: Req, res: Res): void;
  /** Requests that have not finished yet (for graceful shutdown). */
  active(): number;
}

export function createApp(options: AppOptions): App {
  const { log, metrics, routes } = options;
  // RPC paths label metrics only when they name a real method: a label per unknown path would let
  // anyone grow the metric series without bound.
  const rpcPaths = new Set<string>();
  const rpc = connectNodeAdapter({
    routes: (router) => {
      options.rpc(router);
      for (const handler of router.handlers) rpcPaths.add(handler.requestPath);
    },
    interceptors: options.interceptors,
    readMaxBytes: options.readMaxBytes,
    writeMaxBytes: options.readMaxBytes,
    // Compressing the usual few-KiB answers (proofs, pages) costs more CPU and garbage than it
    // saves; large ones (event payloads, long lists) are still compressed.
    compressMinBytes: 16 * 1024,
    shutdownSignal: options.shutdownSignal,
    contextValues: (req) => createContextValues().set(requestContextKey, contexts.get(req)),
  });

  let active = 0;
  const handle = (req: Req, res: Res): void => {
    const started = performance.now();
    active++;
    const header = req.headers["x-request-id"];
    const requestId = typeof header === "string" && REQUEST_ID.test(header) ? header : randomUUID();
    const ctx: RequestContext = { requestId, log };
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
      const code = ctx.code ?? String(res.statusCode);
      metrics.requests.inc({ route: routeName, code });
      metrics.latency.observe({ route: routeName }, seconds);
      const entry = { request_id: requestId, method, path: routeName, status: res.statusCode, code, ms: Math.round(seconds * 10000) / 10 };
      if (quiet && res.statusCode < 400) log.debug(entry, "request");
      else log.info(entry, "request");
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
      Promise.resolve(route.handle(req, res, params, ctx)).catch((err: unknown) => {
        const known = toKapselError(err);
        if (known) return sendError(res, known, ctx);
        log.error({ err, request_id: requestId }, "unexpected error");
        ctx.code = "internal";
        if (!res.headersSent) sendJson(res, 500, { code: "internal", message: "internal error", request_id: requestId });
        else res.destroy();
      });
      return;
    }
    // Unknown paths get the adapter's 404.
    routeName = rpcPaths.has(pathname) ? pathname : "unmatched";
    rpc(req as never, res as never);
  };
  return { handle, active: () => active };
}

/** A route for an exact method and path. */
export function exact(method: string, path: string, handle: PlainRoute["handle"]): PlainRoute {
  return { name: path, match: (m, p) => (m === method && p === path ? [] : undefined), handle };
}

/** Parses the query string of a request. */
export function queryOf(req: Req): URLSearchParams {
  const url = req.url ?? "/";
  const q = url.indexOf("?");
  return new URLSearchParams(q === -1 ? "" : url.slice(q + 1));
}
