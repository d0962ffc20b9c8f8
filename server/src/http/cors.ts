// CORS for browser dashboards using Connect-Web. Auth is a bearer token, never a cookie, so any
// origin may call; `Authorization` must be listed explicitly (a wildcard does not cover it).
import type { IncomingHttpHeaders } from "node:http";

const ALLOWED_HEADERS = [
  "Authorization", "Content-Type", "Connect-Protocol-Version", "Connect-Timeout-Ms", "Connect-Content-Encoding",
  "Connect-Accept-Encoding", "Content-Encoding", "Accept-Encoding", "Grpc-Message-Type", "X-Grpc-Web",
  "X-User-Agent", "Grpc-Timeout", "X-Request-Id", "Idempotency-Key", "X-Idempotency-Key",
].join(", ");

const EXPOSED_HEADERS = [
  "Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin", "Content-Encoding", "Connect-Content-Encoding",
  "X-Request-Id", "Retry-After",
].join(", ");

/** Headers every response to a cross-origin request carries. */
export function corsHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  if (headers.origin === undefined) return {};
  return { "access-control-allow-origin": "*", "access-control-expose-headers": EXPOSED_HEADERS, vary: "Origin" };
}

export function isPreflight(method: string | undefined, headers: IncomingHttpHeaders): boolean {
  return method === "OPTIONS" && headers.origin !== undefined && headers["access-control-request-method"] !== undefined;
}

export function preflightHeaders(): Record<string, string> {
  return {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": "POST, GET",
    "access-control-allow-headers": ALLOWED_HEADERS,
    "access-control-max-age": "7200",
    vary: "Origin",
  };
}
