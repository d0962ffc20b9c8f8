// Starts one real Postgres for the whole test run (embedded, or DATABASE_URL when set) and builds a
// migrated template database; each test file clones it (CREATE DATABASE … TEMPLATE), which takes
// milliseconds and isolates files from each other.
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import type { TestProject } from "vitest/node";
import { startEmbeddedPostgres, type EmbeddedDatabase } from "../../server/src/db/embedded.ts";
import { migrate, readMigrations } from "../../server/src/db/migrate.ts";
import { createLogger } from "../../server/src/logger.ts";

declare module "vitest" {
  export interface ProvidedContext {
    pgAdminUrl: string;
    pgTemplate: string;
  }
}

let embedded: EmbeddedDatabase | undefined;
let dataDir: string | undefined;

export async function setup(project: TestProject): Promise<void> {
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    dataDir = await mkdtemp(path.join(os.tmpdir(), "kapsel-test-pg-"));
    await import("node:fs/promises").then((fs) => fs.chmod(dataDir!, 0o755));
    embedded = await startEmbeddedPostgres({
      dataDir,
      log: createLogger("warn"),
      // Tests verify durability against process crashes, not power loss; skip fsync for speed.
      settings: { fsync: "off", full_page_writes: "off" },
    });
    adminUrl = embedded.url;
  }
  const migrations = await readMigrations();
  const digest = createHash("sha256").update(migrations.map((m) => m.checksum).join()).digest("hex").slice(0, 12);
  const template = `kapsel_template_${digest}`;
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${template} WITH (FORCE)`);
    await client.query(`CREATE DATABASE ${template}`);
  } finally {
    await client.end();
  }
  await migrate(withDatabase(adminUrl, template));
  project.provide("pgAdminUrl", adminUrl);
  project.provide("pgTemplate", template);
}

export async function teardown(): Promise<void> {
  await embedded?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}
