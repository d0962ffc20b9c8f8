// The query layer: slonik over pg. slonik's default `resetConnection` runs DISCARD ALL on every
// release (an extra round trip per query, and it drops prepared statements); we turn it off because
// no code here leaves session state behind.
import { createPgDriverFactory } from "@slonik/pg-driver";
import { createPool, type DatabasePool } from "slonik";

export type { DatabasePool };

export interface PoolOptions {
  maximumPoolSize: number;
  /** Connection attempts give up after this long, so an absent database fails fast (E9001). */
  connectionTimeoutMs?: number;
}

export async function createDatabasePool(url: string, options: PoolOptions): Promise<DatabasePool> {
  return createPool(url, {
    driverFactory: createPgDriverFactory(),
    maximumPoolSize: options.maximumPoolSize,
    connectionTimeout: options.connectionTimeoutMs ?? 5_000,
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
