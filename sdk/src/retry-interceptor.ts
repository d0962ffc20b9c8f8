// Retries unary calls that failed with Unavailable or ResourceExhausted. It runs inside the
// transport, so a call's deadline and abort signal cover all its attempts and the pauses between
// them. Streaming calls are never retried: messages may already have been consumed.
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { isRetryable, KapselError } from "./kapsel-error.ts";
import { pause } from "./pause.ts";
import { retryDelayMs, type ResolvedRetryOptions } from "./retry-policy.ts";

export function retryInterceptor(options: ResolvedRetryOptions): Interceptor {
  return (next) => async (req) => {
    if (req.stream) return next(req);
    for (let attempt = 1; ; attempt++) {
      try {
        return await next(req);
      } catch (err) {
        if (req.signal.aborted || !(err instanceof ConnectError) || !isRetryable(err.code)) throw err;
        const error = new KapselError(err);
        // ResourceExhausted is worth retrying only when it is throttling (E1005 with a retry
        // delay); a message over the server's size limit is ResourceExhausted too, and never passes.
        if (err.code === Code.ResourceExhausted && error.kapselCode !== "E1005" && error.retryAfterMs === undefined) throw err;
        const delayMs = retryDelayMs(attempt, options, error.retryAfterMs);
        if (delayMs === undefined) throw err;
        options.onRetry?.({ attempt, delayMs, error });
        await pause(delayMs, req.signal);
      }
    }
  };
}
