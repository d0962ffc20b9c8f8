// Turns whatever an RPC handler (or the request gate before it) throws into what the caller should
// see: KapselError and database outages become their codes (with ErrorInfo and RetryInfo
// details), the end of a stream by its client or deadline stays what it is, anything else is
// logged and answered as Internal. The result is recorded for the request's metrics and log line.
import { ConnectError, Code, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { Logger } from "pino";
import { toKapselError } from "../errors.ts";
import { requestContextKey, type RequestContext } from "./request-context.ts";

/** The RPC error for `err`; records its result (an E-code, or the Connect code's name) on `ctx`. */
export function toRpcError(err: unknown, log: Logger, ctx: RequestContext | undefined): ConnectError {
  const known = toKapselError(err);
  let converted: ConnectError;
  if (known) converted = known.toConnectError();
  else if (err instanceof ConnectError) converted = err;
  // A stream ended by the client going away or by its deadline: the signal's reason, not a fault.
  else if (err instanceof Error && (err.name === "AbortError" || err.name === "TimeoutError")) converted = ConnectError.from(err);
  else {
    log.error({ err, request_id: ctx?.requestId }, "unexpected error in RPC handler");
    converted = new ConnectError("internal error", Code.Internal);
  }
  if (ctx) ctx.code = known?.code ?? codeToString(converted.code);
  return converted;
}

/** Wraps the request gate so that what it throws is answered like a handler's errors. */
export function gateErrors(gate: (ctx: HandlerContext) => Promise<void>, log: Logger): (ctx: HandlerContext) => Promise<void> {
  return async (ctx) => {
    try {
      await gate(ctx);
    } catch (err) {
      throw toRpcError(err, log, ctx.values.get(requestContextKey));
    }
  };
}

/** Maps KapselError and database outages to RPC errors with ErrorInfo; records the result. */
export function errorInterceptor(log: Logger): Interceptor {
  return (next) => async (req) => {
    const ctx = req.contextValues.get(requestContextKey);
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
            throw toRpcError(err, log, ctx);
          }
        })(),
      };
    } catch (err) {
      throw toRpcError(err, log, ctx);
    }
  };
}
