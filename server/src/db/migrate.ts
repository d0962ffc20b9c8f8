// Forward-only migrations: NNNN_name.sql files in server/migrations (shipped in the package),
// applied in order, each in its own transaction, recorded with a SHA-256 of its text. A session
// advisory lock serialises processes that start together; an applied file whose text changed stops
// start-up, because the database no longer matches what the code was written for.
import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { sql, type DatabasePool } from "slonik";
import { z } from "zod";
import pg from "pg";

export const MIGRATIONS_DIR = fileURLToPath(new URL("../../migrations/", import.meta.url));

/** Arbitrary constant identifying the migration lock among other advisory locks. */
const MIGRATION_LOCK = 7_246_100_001;

export interface Migration {
  version: number;
  name: string;
  checksum: string;
  text: string;
}

export class MigrationError extends Error {}

export async function readMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith(".sql")).sort();
  const migrations: Migration[] = [];
  for (const file of files) {
    const match = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(file);
    if (!match) throw new MigrationError(`migration file name ${file} is not NNNN_name.sql`);
    const text = await readFile(path.join(dir, file), "utf8");
    const version = Number(match[1]);
    if (migrations.length > 0 && migrations.at(-1)!.version === version) {
      throw new MigrationError(`two migrations share version ${match[1]}`);
    }
    migrations.push({ version, name: match[2]!, text, checksum: createHash("sha256").update(text).digest("hex") });
  }
  return migrations;
}

/**
 * Applies what is missing; returns the versions applied now. Uses its own pg connection: migration
 * files are multi-statement scripts, which need the simple query protocol.
 */
export async function migrate(databaseUrl: string, dir = MIGRATIONS_DIR): Promise<number[]> {
  const migrations = await readMigrations(dir);
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK]);
    await client.query(`
      CREATE TABLE IF NOT EXISTS schema_migrations (
        version integer PRIMARY KEY,
        name text NOT NULL,
        checksum text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
    const applied = (await client.query<AppliedRow>("SELECT version, name, checksum FROM schema_migrations ORDER BY version")).rows;
    checkApplied(migrations, applied);
    const done: number[] = [];
    for (const m of migrations) {
      if (applied.some((a) => a.version === m.version)) continue;
      await client.query("BEGIN");
      try {
        await client.query(m.text);
        await client.query("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)", [m.version, m.name, m.checksum]);
        await client.query("COMMIT");
      } catch (err) {
        await client.query("ROLLBACK");
        throw new MigrationError(`migration ${fileName(m)} failed: ${(err as Error).message}`, { cause: err });
      }
      done.push(m.version);
    }
    return done;
  } finally {
    await client.end();
  }
}

interface AppliedRow {
  version: number;
  name: string;
  checksum: string;
}

export function fileName(m: Migration): string {
  return `${String(m.version).padStart(4, "0")}_${m.name}.sql`;
}

function checkApplied(migrations: Migration[], applied: AppliedRow[]): void {
  for (const a of applied) {
    const m = migrations.find((x) => x.version === a.version);
    if (!m) throw new MigrationError(`database has migration ${a.version} (${a.name}) that this code does not know; refusing to start`);
    if (m.checksum !== a.checksum) {
      throw new MigrationError(`migration ${fileName(m)} changed after it was applied (checksum ${a.checksum.slice(0, 12)} → ${m.checksum.slice(0, 12)}); refusing to start`);
    }
  }
}

/** True when every known migration is applied with the same checksum (for /readyz). */
export async function migrationsApplied(pool: DatabasePool, expected: Migration[]): Promise<boolean> {
  const applied = await pool.any(sql.type(z.object({ version: z.number(), checksum: z.string() }))`
    SELECT version, checksum FROM schema_migrations ORDER BY version`);
  return expected.length === applied.length && expected.every((m, i) => applied[i]!.version === m.version && applied[i]!.checksum === m.checksum);
}
