// The server's database pool opens every connection before the port is, and does not close an
// idle one. A burst after a quiet spell then finds its connections ready; when it
// had to open them, under a flood the handshakes outlasted the connection timeout and ingest
// answered E9001 with Postgres healthy (bench/README.md, Overload).
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { connect } from "../../test/support/database.ts";
import { startTestServer, type TestServer } from "../../test/support/server.ts";

const POOL_SIZE = 6;
let server: TestServer;
let db: pg.Client;
beforeAll(async () => {
  server = await startTestServer({ KAPSEL_DB_POOL_SIZE: String(POOL_SIZE), KAPSEL_DELIVERY_ENABLED: "false" });
  db = await connect(server.databaseUrl);
});
afterAll(async () => {
  await db?.end();
  await server?.stop();
});

/** The server's sessions on its database (all but this test's own). */
async function sessions(): Promise<number[]> {
  const r = await db.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() ORDER BY pid");
  return r.rows.map((row) => row.pid);
}

it("opens every pool connection at start and keeps them through a quiet spell", { timeout: 60_000 }, async () => {
  const atStart = await sessions();
  // The pool's connections, and the few the server holds besides (the LISTEN connection, locks).
  expect(atStart.length).toBeGreaterThanOrEqual(POOL_SIZE);
  // Idle connections used to close after 5 s.
  await new Promise((r) => setTimeout(r, 6_500));
  // None of them closed (the server may have opened others meanwhile).
  expect(await sessions()).toEqual(expect.arrayContaining(atStart));
});
