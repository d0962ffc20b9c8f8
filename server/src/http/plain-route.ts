// Routes that are not RPCs (health, metrics, the ingest gateway, log tiles, proof download): their
// type, and the few helpers they share for answering and for reading paths and queries.
import type http from "node:http";
import type { KapselError } from "../errors.ts";
import type { RequestContext } from "./request-context.ts";

// HTTP/2 compatibility objects offer the same API as HTTP/1.1's for what the handlers use, so the
// handlers see one type.
export type Req = http.IncomingMessage;
export type Res = http.ServerResponse;

/** A non-RPC route. `match` returns the path parameters, or undefined when it does not apply. It
 * runs outside any error handler, so it must not throw. */
export interface PlainRoute {
  /** The metrics label, e.g. `/ingest/{endpoint_id}`. */
  name: string;
  match(method: string, pathname: string): string[] | undefined;
  handle(req: Req, res: Res, params: string[], ctx: RequestContext): Promise<void> | void;
  /** Successful requests on hot paths log at debug instead of info. */
  quiet?: boolean;
}

/** A route for an exact method and path. */
export function exact(method: string, path: string, handle: PlainRoute["handle"]): PlainRoute {
  return { name: path, match: (m, p) => (m === method && p === path ? [] : undefined), handle };
}

export function sendJson(res: Res, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** The gateway's error answer: `{code, message, request_id}` with the code's status (and
 * Retry-After for throttling). A response already under way can only be cut off. */
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

/** A path segment with its percent-escapes decoded; "" for broken escapes, which every id check
 * then refuses (E1006) — never a throw. */
export function decodePathSegment(segment: string): string {
  if (!segment.includes("%")) return segment;
  try {
    return decodeURIComponent(segment);
  } catch {
    return "";
  }
}
