// Durability with an external database. Ingest's connections commit with synchronous_commit on
// even where the database's default is off. And E9001 means exactly "nothing was accepted": when
// the connection is lost after the ingest statement was sent — cut for real by a TCP proxy between
// the server and Postgres — the server settles what happened on another connection before it
// answers. A statement that committed is answered as accepted (and a retry with its key is a
// duplicate of it), one that never reached Postgres is E9001 with nothing stored, and when the
// database cannot be asked the answer says the outcome is unknown (E9003), never E9001.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../src/logger.ts";
import { DurabilityError, openDatabase } from "../src/db/database.ts";
import { createDatabasePool } from "../src/db/pool.ts";
import { sql } from "slonik";
import { connect, createTestDatabase } from "../../test/support/database.ts";
import { createEndpoint, INGEST_ONLY, postIngest } from "../../test/support/ingest.ts";
import { startPgProxy, type PgProxy } from "../../test/support/pg-proxy.ts";
import { createTenant, errorCode, rpc } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";

let databaseUrl: string;
let proxy: PgProxy;
let server: TestServer;
let apiKey: string;
let endpointId: string;
beforeAll(async () => {
  databaseUrl = await createTestDatabase();
  // A database whose default would acknowledge commits before they are on disk.
  const admin = await connect(databaseUrl);
  try {
    await admin.query(`ALTER DATABASE ${new URL(databaseUrl).pathname.slice(1)} SET synchronous_commit = off`);
  } finally {
    await admin.end();
  }
  proxy = await startPgProxy(databaseUrl);
  server = await startTestServer({ ...INGEST_ONLY, DATABASE_URL: proxy.url, KAPSEL_DB_POOL_SIZE: "4" });
  ({ apiKey } = await createTenant(server.url, ADMIN_TOKEN));
  endpointId = await createEndpoint(server.url, apiKey);
});
afterAll(async () => {
  await server?.stop();
  await proxy?.close();
});

async function stored(idempotencyKey: string): Promise<string[]> {
  const db = await connect(databaseUrl);
  try {
    const r = await db.query("SELECT e.id FROM events e JOIN messages m ON m.id = e.message_id JOIN delivery_jobs j ON j.event_id = e.id WHERE m.idempotency_key = $1", [idempotencyKey]);
    return r.rows.map((row) => row.id);
  } finally {
    await db.end();
  }
}

const ingestRpc = (key: string) =>
  rpc(server.url, "Ingest", { endpointId, payload: Buffer.from(`{"key":"${key}"}`).toString("base64"), idempotencyKey: key }, apiKey);

describe("synchronous_commit", () => {
  it("is on for every pooled connection although the database's default is off", async () => {
    const plain = await connect(databaseUrl);
    try {
      expect((await plain.query("SHOW synchronous_commit")).rows[0].synchronous_commit).toBe("off");
    } finally {
      await plain.end();
    }
    const pool = await createDatabasePool(databaseUrl, { maximumPoolSize: 3 });
    try {
      // Hold three connections at once, so each is a different session.
      const values = await Promise.all([0, 1, 2].map(() => pool.connect(async (c) => {
        const v = await c.oneFirst(sql.unsafe`SHOW synchronous_commit`);
        await c.query(sql.unsafe`SELECT pg_sleep(0.05)`);
        return v;
      })));
      expect(values).toEqual(["on", "on", "on"]);
    } finally {
      await pool.end();
    }
  });

  it("keeps options already in DATABASE_URL", async () => {
    const u = new URL(databaseUrl);
    u.searchParams.set("options", "-c work_mem=12345kB");
    const pool = await createDatabasePool(u.toString(), { maximumPoolSize: 2 });
    try {
      expect(await pool.oneFirst(sql.unsafe`SHOW work_mem`)).toBe("12345kB");
      expect(await pool.oneFirst(sql.unsafe`SHOW synchronous_commit`)).toBe("on");
    } finally {
      await pool.end();
    }
  });

  it("a server is refused when a connection pooler drops the setting: acknowledged events could be lost", async () => {
    const pooler = await startPgProxy(databaseUrl, { dropStartupOptions: true });
    try {
      const attempt = openDatabase({ url: pooler.url, poolSize: 2 }, "/tmp", createLogger("silent"));
      await expect(attempt).rejects.toThrow(DurabilityError);
      await expect(attempt).rejects.toThrow(/synchronous_commit = off/);
    } finally {
      await pooler.close();
    }
  });
});

describe("a connection lost around the ingest commit", () => {
  it("after the commit, before its answer: the request is answered as accepted, and the event is stored once with its job", async () => {
    const cut = proxy.cut("kapsel-ingest", "after");
    const r = await ingestRpc("after-1");
    await cut;
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(await stored("after-1")).toEqual([r.body.eventId]);
    const again = await ingestRpc("after-1");
    expect(again.body).toMatchObject({ eventId: r.body.eventId, duplicate: true });
    expect(proxy.cuts).toBe(1);
  });

  it("while Postgres may still be running it: the answer matches what was stored", async () => {
    const cut = proxy.cut("kapsel-ingest", "during");
    const r = await postIngest(server.url, endpointId, '{"during":1}', { "idempotency-key": "during-1" });
    await cut;
    const rows = await stored("during-1");
    if (r.status === 202) expect(rows).toEqual([r.body.event_id]);
    else {
      expect(r.status).toBe(503);
      expect(r.body.code).toBe("E9001");
      expect(rows).toEqual([]);
    }
  });

  it("before the statement reached Postgres: E9001, and nothing is stored", async () => {
    const cut = proxy.cut("kapsel-ingest", "before");
    const r = await ingestRpc("before-1");
    await cut;
    expect(r.body.code).toBe("unavailable");
    expect(errorCode(r.body)).toBe("E9001");
    expect(await stored("before-1")).toEqual([]);
    // The key was not taken: the retry is a new event.
    const retry = await ingestRpc("before-1");
    expect(retry.status).toBe(200);
    expect(retry.body.duplicate ?? false).toBe(false);
  });

  it("when the database cannot be asked afterwards: E9003 (outcome unknown), never E9001; the retry with the key settles it", async () => {
    const cut = proxy.cut("kapsel-ingest", "after");
    // Every question the server asks about the lost statement is cut before it reaches Postgres,
    // on whichever connection it goes.
    const asking = proxy.cutEvery("pg_stat_activity", "before");
    let r;
    try {
      r = await postIngest(server.url, endpointId, '{"unknown":1}', { "idempotency-key": "unknown-1" });
      await cut;
    } finally {
      asking.stop();
    }
    expect(asking.count).toBeGreaterThanOrEqual(1);
    expect(r.status).toBe(503);
    expect(r.body.code).toBe("E9003");
    expect(r.body.message).toMatch(/may have been accepted/);
    const rows = await stored("unknown-1");
    expect(rows).toHaveLength(1);
    const retry = await postIngest(server.url, endpointId, '{"unknown":1}', { "idempotency-key": "unknown-1" });
    expect(retry.status).toBe(200);
    expect(retry.body).toMatchObject({ event_id: rows[0], duplicate: true });
  });
});
