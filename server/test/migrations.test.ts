// The migration runner against real, empty databases: processes that start together do not race,
// an edited or unknown applied migration stops start-up, a failing migration leaves nothing behind,
// and /readyz notices a schema that no longer matches the code.
import { appendFile, cp, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type pg from "pg";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { MIGRATIONS_DIR, MigrationError, migrate, readMigrations } from "../src/db/migrate.ts";
import { connect, createTestDatabase } from "../../test/support/database.ts";
import { healthClient, unary } from "../../test/support/grpc.ts";
import { runCli } from "../../test/support/kapsel-cli.ts";
import { until } from "../../test/support/delivery.ts";
import { startTestServer } from "../../test/support/server.ts";

const tempDirs: string[] = [];
afterAll(async () => {
  await Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** A private copy of the migrations folder that a test may edit. */
async function migrationsCopy(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "kapsel-migrations-"));
  tempDirs.push(dir);
  await cp(MIGRATIONS_DIR, dir, { recursive: true });
  return dir;
}

let clients: pg.Client[] = [];
afterEach(async () => {
  await Promise.all(clients.map((c) => c.end()));
  clients = [];
});
async function db(url: string): Promise<pg.Client> {
  const c = await connect(url);
  clients.push(c);
  return c;
}

async function appliedVersions(url: string): Promise<number[]> {
  return (await (await db(url)).query("SELECT version FROM schema_migrations ORDER BY version")).rows.map((r) => r.version);
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

const known = (await readMigrations()).map((m) => m.version);

describe("concurrent start on an empty database", () => {
  it("concurrent migrate() calls: every migration is applied exactly once, and all calls succeed", async () => {
    const url = await createTestDatabase({ migrated: false });
    const results = await Promise.all([migrate(url), migrate(url), migrate(url), migrate(url)]);
    // One caller applies everything while holding the lock; the others then find nothing to do.
    expect(results.flat().sort((a, b) => a - b)).toEqual(known);
    expect(results.filter((r) => r.length > 0)).toHaveLength(1);
    expect(await appliedVersions(url)).toEqual(known);
    const tables = (await (await db(url)).query("SELECT count(*)::int AS n FROM information_schema.tables WHERE table_name IN ('tenants', 'endpoints')")).rows[0].n;
    expect(tables).toBe(2);
  });

  it("two `kapsel migrate` processes at once both exit 0 and apply each migration once", async () => {
    const url = await createTestDatabase({ migrated: false });
    const [a, b] = await Promise.all([runCli(["migrate"], { DATABASE_URL: url }), runCli(["migrate"], { DATABASE_URL: url })]);
    expect([a.code, b.code]).toEqual([0, 0]);
    // One process applies every migration while holding the lock; the other then finds nothing to do.
    const outputs = [a.stdout, b.stdout].sort();
    expect(outputs[0]).toMatch(/^applied (\d{4}_\w+\.sql, )*\d{4}_\w+\.sql\n$/);
    expect(outputs[0].split(", ")).toHaveLength(known.length);
    expect(outputs[1]).toBe(`database is up to date (${known.length} migrations)\n`);
    expect(await appliedVersions(url)).toEqual(known);
  });

  it("migrating an up-to-date database is a no-op", async () => {
    const url = await createTestDatabase();
    expect(await migrate(url)).toEqual([]);
    expect(await appliedVersions(url)).toEqual(known);
  });
});

describe("refusing to start", () => {
  it("an applied migration whose file changed is a MigrationError naming the file", async () => {
    const url = await createTestDatabase({ migrated: false });
    const dir = await migrationsCopy();
    expect(await migrate(url, dir)).toEqual(known);
    await appendFile(path.join(dir, "0001_tenancy.sql"), "\n-- an innocent-looking edit\n");
    const err = await rejection(migrate(url, dir));
    expect(err).toBeInstanceOf(MigrationError);
    expect((err as Error).message).toMatch(/0001_tenancy\.sql changed after it was applied.*refusing to start/);
  });

  it("a database with a migration this code does not know is a MigrationError", async () => {
    const url = await createTestDatabase({ migrated: false });
    const dir = await migrationsCopy();
    await writeFile(path.join(dir, "9999_from_the_future.sql"), "CREATE TABLE future_things (id int);\n");
    expect(await migrate(url, dir)).toEqual([...known, 9999]);
    const err = await rejection(migrate(url));
    expect(err).toBeInstanceOf(MigrationError);
    expect((err as Error).message).toMatch(/migration 9999 \(from_the_future\) that this code does not know/);
  });

  it("a failing migration is rolled back entirely and not recorded", async () => {
    const url = await createTestDatabase({ migrated: false });
    const dir = await migrationsCopy();
    await writeFile(path.join(dir, "9999_broken.sql"), "CREATE TABLE half_done (id int);\nSELECT no_such_function();\n");
    const err = await rejection(migrate(url, dir));
    expect(err).toBeInstanceOf(MigrationError);
    expect((err as Error).message).toMatch(/migration 9999_broken\.sql failed: .*no_such_function/);
    expect(await appliedVersions(url)).toEqual(known);
    expect((await (await db(url)).query("SELECT to_regclass('half_done') AS t")).rows[0].t).toBeNull();
  });

  it("a file not named NNNN_name.sql is refused", async () => {
    const dir = await migrationsCopy();
    await writeFile(path.join(dir, "5_oops.sql"), "SELECT 1;\n");
    await expect(readMigrations(dir)).rejects.toThrow(/5_oops\.sql is not NNNN_name\.sql/);
  });

  it("`kapsel serve` and `kapsel migrate` exit 1 with the message when an applied migration changed", async () => {
    const url = await createTestDatabase();
    await (await db(url)).query("UPDATE schema_migrations SET checksum = repeat('0', 64) WHERE version = 1");
    for (const command of ["serve", "migrate"]) {
      const r = await runCli([command], { DATABASE_URL: url, KAPSEL_PORT: "0", KAPSEL_HOST: "127.0.0.1", KAPSEL_ADMIN_TOKEN: "admin-token-0123456789", KAPSEL_LOG_LEVEL: "warn" });
      expect([command, r.code]).toEqual([command, 1]);
      expect(r.stderr).toMatch(/kapsel: migration 0001_tenancy\.sql changed after it was applied \(checksum 000000000000 → [0-9a-f]{12}\); refusing to start/);
      expect(r.stderr).not.toMatch(/\n\s+at /); // a message for operators, not a stack trace
    }
  });
});

describe("readiness", () => {
  it("/readyz and grpc.health.v1 turn not ready when the applied schema stops matching the code", async () => {
    const server = await startTestServer();
    try {
      const ready = await fetch(`${server.url}/readyz`);
      expect([ready.status, await ready.json()]).toEqual([200, { ready: true, database: true, migrations: true, draining: false, log: { signing: "ok" } }]);

      const client = await db(server.databaseUrl);
      const { checksum } = (await client.query("SELECT checksum FROM schema_migrations WHERE version = 1")).rows[0];
      await client.query("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1");
      // Readiness looks at the database at most twice a second, whoever asks.
      const notReady = await until("/readyz to notice", async () => {
        const r = await fetch(`${server.url}/readyz`);
        return r.status === 503 ? r : undefined;
      });
      expect(await notReady.json()).toEqual({ ready: false, database: true, migrations: false, draining: false, log: { signing: "ok" } });
      const health = healthClient(`127.0.0.1:${server.port}`);
      try {
        expect(await unary(health, "Check", { service: "" })).toEqual({ status: "NOT_SERVING" });
      } finally {
        health.close();
      }

      await client.query("UPDATE schema_migrations SET checksum = $1 WHERE version = 1", [checksum]);
      await until("/readyz to be ready again", async () => ((await fetch(`${server.url}/readyz`)).status === 200 ? true : undefined));
    } finally {
      await server.stop();
    }
  });
});
