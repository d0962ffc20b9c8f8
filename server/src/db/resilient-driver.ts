// slonik 47's driver client loses track of a connection whose socket dies while a query is
// running (a network cut, a failover, a crashed server — anything but an orderly error from
// Postgres): pg reports the lost connection as an `error` event before it fails the query, the
// client's destroy waits on that still-running query, the query's failure makes destroy throw, and
// the client stays PENDING_DESTROY for good. The pool still counts it, so after as many such losses
// as the pool has connections, every query waits forever for a free one. (slonik 49 catches that
// failure; this is the same repair from outside.) When destroy fails, the client is reported
// destroyed to the pool, which then drops it and opens a new one; its socket is gone already.
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

function wrapClient(client: DriverClient): DriverClient {
  const onDestroy = new Set<() => void>();
  let lost = false;
  const wrapped: DriverClient = {
    ...client,
    on: ((event: string, listener: () => void) => {
      if (event === "destroy") onDestroy.add(listener);
      return client.on(event as "destroy", listener);
    }) as DriverClient["on"],
    off: ((event: string, listener: () => void) => {
      if (event === "destroy") onDestroy.delete(listener);
      return client.off(event as "destroy", listener);
    }) as DriverClient["off"],
    removeListener: ((event: string, listener: () => void) => {
      if (event === "destroy") onDestroy.delete(listener);
      return client.removeListener(event as "destroy", listener);
    }) as DriverClient["removeListener"],
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
