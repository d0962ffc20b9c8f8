// Long-lived server streams (WatchEvent, WatchEvents, WatchCheckpoints, Health/Watch, reflection)
// hold a handler, a poll and a slot of the client's connection for as long as they are open, so
// each is bounded: it ends — normally, so clients simply reopen it — at the client's deadline or
// after the maximum lifetime, whichever comes first; and at most so many are open at once per
// connection, per tenant, and (for the RPCs that need no credential) in the whole process.
import type { Interceptor, StreamResponse } from "@connectrpc/connect";
import { callerKey } from "../auth/auth-context.ts";
import type { StreamLimits } from "../config.ts";
import { KapselError } from "../errors.ts";
import { requestContextKey } from "./request-context.ts";

/** Open streams per key; a key leaves the map when its count returns to zero. */
class Counts<K> {
  readonly #counts = new Map<K, number>();

  get(key: K): number {
    return this.#counts.get(key) ?? 0;
  }

  add(key: K): void {
    this.#counts.set(key, this.get(key) + 1);
  }

  remove(key: K): void {
    const n = this.get(key) - 1;
    if (n <= 0) this.#counts.delete(key);
    else this.#counts.set(key, n);
  }
}

const LIFETIME_OVER = Symbol("lifetime over");

export function streamLimits(limits: StreamLimits): Interceptor {
  const perConnection = new Counts<object>();
  const perTenant = new Counts<string>();
  let unauthenticated = 0;

  return (next) => async (req) => {
    if (req.method.methodKind === "unary") return next(req);
    const connection = req.contextValues.get(requestContextKey)?.connection;
    const caller = req.contextValues.get(callerKey);
    const tenant = caller?.kind === "tenant" ? caller.tenantId : undefined;
    const busy = (what: string) =>
      new KapselError("E1005", `too many open streams ${what}; close one or retry later`, { retryAfterMs: 5_000 });
    if (connection && perConnection.get(connection) >= limits.perConnection) throw busy(`on this connection (at most ${limits.perConnection})`);
    if (tenant !== undefined && perTenant.get(tenant) >= limits.perTenant) throw busy(`for this tenant (at most ${limits.perTenant})`);
    if (caller === undefined && unauthenticated >= limits.unauthenticated) throw busy("without a credential");

    if (connection) perConnection.add(connection);
    if (tenant !== undefined) perTenant.add(tenant);
    if (caller === undefined) unauthenticated++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      if (connection) perConnection.remove(connection);
      if (tenant !== undefined) perTenant.remove(tenant);
      if (caller === undefined) unauthenticated--;
    };

    let res: StreamResponse;
    try {
      res = (await next(req)) as StreamResponse;
    } catch (err) {
      release();
      throw err;
    }
    const source = res.message;
    // A deadline shorter than the lifetime is the framework's to enforce (DeadlineExceeded).
    const lifetimeMs = limits.maxLifetimeMs;
    return {
      ...res,
      message: (async function* () {
        let timer: NodeJS.Timeout | undefined;
        const over = new Promise<typeof LIFETIME_OVER>((resolve) => {
          timer = setTimeout(() => resolve(LIFETIME_OVER), lifetimeMs);
        });
        const it = source[Symbol.asyncIterator]();
        try {
          for (;;) {
            const pending = it.next();
            const step = await Promise.race([pending, over]);
            if (step === LIFETIME_OVER) {
              // The handler is still waiting: ending the response aborts its signal, and whatever
              // its pending step then throws has no one left to hear it.
              pending.catch(() => {});
              void it.return?.(undefined)?.catch(() => {});
              return;
            }
            if (step.done) return;
            yield step.value;
          }
        } finally {
          clearTimeout(timer);
          release();
        }
      })(),
    };
  };
}
