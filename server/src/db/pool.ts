// The query layer: slonik over pg. slonik's default `resetConnection` runs DISCARD ALL on every
// release (an extra round trip per query, and it drops prepared statements); we turn it off because
// no code here leaves session state behind.
import { createPgDriverFactory } from "@slonik/pg-driver";
import { createPool, type DatabasePool } from "slonik";
import { resilientDriverFactory } from "./resilient-driver.ts";

export type { DatabasePool };

export interface PoolOptions {
  maximumPoolSize: number;
  /** Connection attempts give up after this long, so an absent database fails fast (E9001). */
  connectionTimeoutMs?: number;
}

/** The connection URL with `synchronous_commit = on` asked for at connection start (the `options`
 * startup parameter, which outranks the database's and the role's defaults and costs nothing per
 * statement). Ingest acknowledges a request once its statement returns, so that must mean the
 * commit is on disk, whatever the database's own default says. */
export function withDurableCommits(url: string): string {
  const u = new URL(url);
  const options = u.searchParams.get("options");
  u.searchParams.set("options", [options, "-c synchronous_commit=on"].filter((o) => o).join(" "));
  return u.toString();
}

/** Opens every connection of the pool now (each held until all are open, so none is reused);
 * rejects with the first failure, once the others are released. */
export async function fillPool(pool: DatabasePool, size: number): Promise<void> {
  let release!: () => void;
  const allOpen = new Promise<void>((resolve) => (release = resolve));
  let opened = 0;
  const connects = Array.from({ length: size }, () => pool.connect(async () => {
    if (++opened === size) release();
    await allOpen;
  }));
  for (const c of connects) c.catch(() => release());
  await Promise.all(connects);
}

export async function createDatabasePool(url: string, options: PoolOptions): Promise<DatabasePool> {
  return createPool(withDurableCommits(url), {
    driverFactory: resilientDriverFactory(createPgDriverFactory()),
    maximumPoolSize: options.maximumPoolSize,
    connectionTimeout: options.connectionTimeoutMs ?? 5_000,
    // A connection, once opened, stays until it fails or the pool ends (they used to close after
    // 5 s idle), and the server opens them all at start (fillPool). A burst after a quiet spell
    // must not have to open connections first: under a flood of requests the event loop turns
    // slowly, the handshake's round trips outlast the connection timeout, and ingest answered
    // E9001 with Postgres healthy. (Not slonik's minimumPoolSize: a replacement it opens for a
    // lost connection blocks new ones while pending, and when it fails — the database is down —
    // the requests queued meanwhile are never woken.)
    idleTimeout: "DISABLE_TIMEOUT",
    statementTimeout: 60_000,
    idleInTransactionSessionTimeout: 60_000,
    resetConnection: async () => {},
    // Keep timestamps as Date and int8 as string; each query module converts what it reads.
    typeParsers: [],
    queryRetryLimit: 0,
    transactionRetryLimit: 0,
    connectionRetryLimit: 0,
  });
}
