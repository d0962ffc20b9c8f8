// slonik 47's driver client loses track of a connection whose socket dies while a query is
// running (a network cut, a failover, a crashed server — anything but an orderly error from
// Postgres): pg reports the lost connection as an `error` event before it fails the query, the
// client's destroy waits on that still-running query, the query's failure makes destroy throw, and
// the client stays PENDING_DESTROY for good. The pool still counts it, so after as many such losses
// as the pool has connections, every query waits forever for a free one. (slonik 49 catches that
// failure; this is the same repair from outside.) When destroy fails, the client is reported
// destroyed to the pool, which then drops it and opens a new one; its socket is gone already.
//
// It also knows each connection's session: its backend pid, read with the connection's first query
// and attached to every error the connection raises (sessionOf), so that whoever
// sees a statement fail knows which session it went to without asking before every statement.
import type { createPgDriverFactory } from "@slonik/pg-driver";

type DriverFactory = ReturnType<typeof createPgDriverFactory>;
type Driver = Awaited<ReturnType<DriverFactory>>;
type DriverClient = Awaited<ReturnType<Driver["createClient"]>>;

export function resilientDriverFactory(inner: DriverFactory): DriverFactory {
  return async (options) => {
    const driver = await inner(options);
    return {
      ...driver,
      createClient: async () => wrapClient(await driver.createClient()),
    };
  };
}

/** Errors raised by a connection: the backend pid of its session, or "none" when the session was
 * not known yet (its first query, reading it, had not completed, so nothing else was sent on it). */
const sessions = new WeakMap<object, number | "none">();

/** The session of the connection that raised `err` (or an error in its causes): its backend pid,
 * the session every statement sent on that connection went to; "none" when nothing but the query
 * reading it was ever sent on that connection; undefined when `err` did not come from a connection. */
export function sessionOf(err: unknown): number | "none" | undefined {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    const session = sessions.get(e);
    if (session !== undefined) return session;
  }
  return undefined;
}

function wrapClient(client: DriverClient): DriverClient {
  const onDestroy = new Set<() => void>();
  let lost = false;
  let pid: number | undefined;
  const tag = (err: unknown): void => {
    if (typeof err === "object" && err !== null && !sessions.has(err)) sessions.set(err, pid ?? "none");
  };
  /** Error listeners as given → as registered (tagging first), and how many times registered. */
  const onError = new Map<(err: Error) => void, { registered: (err: Error) => void; times: number }>();
  const listen = (method: "on" | "off" | "removeListener", event: string, listener: (err: Error) => void) => {
    if (event === "destroy") {
      if (method === "on") onDestroy.add(listener as () => void);
      else onDestroy.delete(listener as () => void);
    }
    let registered = listener;
    if (event === "error") {
      const known = onError.get(listener);
      if (method === "on") {
        registered = known?.registered ?? ((err) => {
          tag(err);
          listener(err);
        });
        onError.set(listener, { registered, times: (known?.times ?? 0) + 1 });
      } else if (known) {
        registered = known.registered;
        if (--known.times === 0) onError.delete(listener);
      }
    }
    const register = client[method] as unknown as (event: string, listener: (err: Error) => void) => DriverClient;
    return register.call(client, event, registered);
  };
  const wrapped: DriverClient = {
    ...client,
    on: ((event: string, listener: (err: Error) => void) => listen("on", event, listener)) as unknown as DriverClient["on"],
    off: ((event: string, listener: (err: Error) => void) => listen("off", event, listener)) as unknown as DriverClient["off"],
    removeListener: ((event: string, listener: (err: Error) => void) => listen("removeListener", event, listener)) as unknown as DriverClient["removeListener"],
    query: async (text, values) => {
      try {
        if (pid === undefined) pid = Number((await client.query("SELECT pg_backend_pid() AS pid")).rows[0]!["pid"]);
        return await client.query(text, values);
      } catch (err) {
        tag(err);
        throw err;
      }
    },
    state: () => (lost ? "DESTROYED" : client.state()),
    destroy: async () => {
      if (lost) return;
      try {
        await client.destroy();
      } catch {
        if (client.state() !== "PENDING_DESTROY") return;
        lost = true;
        for (const listener of [...onDestroy]) listener();
      }
    },
  };
  return wrapped;
}
