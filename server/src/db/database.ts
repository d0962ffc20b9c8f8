// Opens the database the configuration names (or the embedded default), applies migrations and
// hands back the pool. The one place that knows where Postgres comes from.
import type { Logger } from "pino";
import type { Config } from "../config.ts";
import { startEmbeddedPostgres } from "./embedded.ts";
import { migrate, readMigrations, type Migration } from "./migrate.ts";
import { createDatabasePool, type DatabasePool } from "./pool.ts";

export interface Database {
  url: string;
  pool: DatabasePool;
  migrations: Migration[];
  close(): Promise<void>;
}

export async function openDatabase(config: Config, log: Logger): Promise<Database> {
  const embedded = config.databaseUrl === undefined ? await startEmbeddedPostgres({ dataDir: config.dataDir, log }) : undefined;
  const url = config.databaseUrl ?? embedded!.url;
  try {
    const applied = await migrate(url);
    if (applied.length > 0) log.info({ applied }, "migrations applied");
    const pool = await createDatabasePool(url, { maximumPoolSize: config.dbPoolSize });
    return {
      url,
      pool,
      migrations: await readMigrations(),
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
