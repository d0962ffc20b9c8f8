// Opens the database the configuration names (or the embedded default), applies migrations and
// hands back the pool. The one place that knows where Postgres comes from.
import type { Logger } from "pino";
import { sql } from "slonik";
import { z } from "zod";
import type { DatabaseConfig } from "../config.ts";
import { startEmbeddedPostgres } from "./embedded.ts";
import { migrate, readMigrations, type Migration } from "./migrate.ts";
import { createDatabasePool, type DatabasePool } from "./pool.ts";

export interface Database {
  url: string;
  pool: DatabasePool;
  migrations: Migration[];
  /** The migrations this open applied (none when the schema was current). */
  applied: Migration[];
  close(): Promise<void>;
}

/** The database would not honour the synchronous_commit the pool asks for. */
export class DurabilityError extends Error {}

/** A connection pooler that drops the `options` startup parameter would leave commits
 * asynchronous without a word: refuse to run on such a connection rather than acknowledge ingest
 * before it is on disk. */
async function assertDurableCommits(pool: DatabasePool): Promise<void> {
  const value = await pool.oneFirst(sql.type(z.object({ synchronous_commit: z.string() }))`SHOW synchronous_commit`);
  if (value === "off") {
    throw new DurabilityError("the database connection has synchronous_commit = off although Kapsel asks for on at connection start (a connection pooler that ignores the `options` parameter?); acknowledged events could be lost in a crash");
  }
}

/** The configured database, or the embedded one kept under `dataDir`, migrated. */
export async function openDatabase(config: DatabaseConfig, dataDir: string, log: Logger): Promise<Database> {
  const embedded = config.url === undefined ? await startEmbeddedPostgres({ dataDir, log }) : undefined;
  const url = config.url ?? embedded!.url;
  try {
    const applied = await migrate(url);
    if (applied.length > 0) log.info({ applied }, "migrations applied");
    const pool = await createDatabasePool(url, { maximumPoolSize: config.poolSize });
    await assertDurableCommits(pool).catch(async (err: unknown) => {
      await pool.end();
      throw err;
    });
    const migrations = await readMigrations();
    return {
      url,
      pool,
      migrations,
      applied: migrations.filter((m) => applied.includes(m.version)),
      close: async () => {
        // Ending the pool fails when its connections are already broken; Postgres is stopped anyway.
        try {
          await pool.end();
        } finally {
          await embedded?.stop();
        }
      },
    };
  } catch (err) {
    await embedded?.stop();
    throw err;
  }
}
