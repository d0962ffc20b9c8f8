// What every request carries through the handler, the plain routes, the RPC interceptors and the
// RPC handlers: its id (for logs, events and attempts) and where to record its result code.
import { createContextKey } from "@connectrpc/connect";
import type { Logger } from "pino";

export interface RequestContext {
  requestId: string;
  log: Logger;
  /** The connection the request came on (its HTTP/2 session, or its socket), for per-connection
   * limits. */
  connection: object;
  /** Set by whoever answers, to label metrics and logs with a result code. */
  code?: string;
}

/** The per-request context as RPC handlers and interceptors see it. */
export const requestContextKey = createContextKey<RequestContext | undefined>(undefined);
