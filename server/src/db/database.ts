// Opens the database the configuration names (or the embedded default), applies migrations and
// hands back the pool. The one place that knows where Postgres comes from.
import type { Logger } from "pino";
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

/** The configured database, or the embedded one kept under `dataDir`, migrated. */
export async function openDatabase(config: DatabaseConfig, dataDir: string, log: Logger): Promise<Database> {
  const embedded = config.url === undefined ? await startEmbeddedPostgres({ dataDir, log }) : undefined;
  const url = config.url ?? embedded!.url;
  try {
    const applied = await migrate(url);
    if (applied.length > 0) log.info({ applied }, "migrations applied");
    const pool = await createDatabasePool(url, { maximumPoolSize: config.poolSize });
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
