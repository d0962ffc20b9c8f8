// Turns whatever an RPC handler throws into what the caller should see: KapselError and database
// outages become their codes (with ErrorInfo and RetryInfo details), the end of a stream by its
// client or deadline stays what it is, anything else is logged and answered as Internal.
import { ConnectError, Code, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { Logger } from "pino";
import { toKapselError } from "../errors.ts";
import { requestContextKey } from "./request-context.ts";

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
