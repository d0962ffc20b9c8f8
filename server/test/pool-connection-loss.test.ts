// Connections lost in the middle of a query (the socket cut by a proxy, as a network failure or a
// failover would) must leave the pool: after more losses than the pool has connections, queries
// still get a connection instead of waiting forever for one (server/src/db/resilient-driver.ts).
// And every error a connection raises names the session its statements went to, which the
// connection read once, with its first query.
import { createPgDriverFactory } from "@slonik/pg-driver";
import { createPool, sql } from "slonik";
import { afterAll, describe, expect, it } from "vitest";
import { createDatabasePool } from "../src/db/pool.ts";
import { resilientDriverFactory, sessionOf } from "../src/db/resilient-driver.ts";
import { createTestDatabase } from "../../test/support/database.ts";
import { startPgProxy, type PgProxy } from "../../test/support/pg-proxy.ts";

let proxy: PgProxy | undefined;
afterAll(async () => {
  await proxy?.close();
});

describe("the database pool", () => {
  it("keeps answering after more connections were lost mid-query than it holds", async () => {
    proxy = await startPgProxy(await createTestDatabase());
    const pool = await createDatabasePool(proxy.url, { maximumPoolSize: 2 });
    try {
      for (const [i, moment] of (["after", "during", "before", "after", "during"] as const).entries()) {
        const marker = `lost_${i}`;
        const cut = proxy.cut(marker, moment);
        await expect(pool.query(sql.unsafe`SELECT 1 AS ${sql.identifier([marker])}`)).rejects.toThrow(/terminated/i);
        await cut;
      }
      expect(proxy.cuts).toBe(5);
      // Both connections at once: neither slot is held by a lost connection.
      const answers = await Promise.all([1, 2].map((n) => pool.connect(async (c) => {
        const v = await c.oneFirst(sql.unsafe`SELECT ${n}::int AS n`);
        await c.query(sql.unsafe`SELECT pg_sleep(0.02)`);
        return v;
      })));
      expect(answers).toEqual([1, 2]);
    } finally {
      await pool.end();
    }
  });
});

describe("a connection's session", () => {
  it("is read once per connection, and names the backend in the errors of a statement cut mid-flight", async () => {
    const db = await createTestDatabase();
    const cutting = await startPgProxy(db);
    // What the wrapped driver sends to Postgres, counted on its way to the real driver.
    const sent: string[] = [];
    const real = createPgDriverFactory();
    const counted: typeof real = async (options) => {
      const driver = await real(options);
      return {
        ...driver,
        createClient: async () => {
          const client = await driver.createClient();
          return { ...client, query: (text, values) => (sent.push(text), client.query(text, values)) };
        },
      };
    };
    const pool = await createPool(cutting.url, { driverFactory: resilientDriverFactory(counted), maximumPoolSize: 1, resetConnection: async () => {} });
    try {
      const pid = await pool.oneFirst(sql.unsafe`SELECT pg_backend_pid() AS pid`);
      const before = sent.length;
      for (let i = 0; i < 5; i++) await pool.query(sql.unsafe`SELECT ${i}::int AS n`);
      expect(sent.length - before).toBe(5);
      expect(sent.filter((q) => q.includes("pg_backend_pid")).length).toBe(2); // the wrapper's, then ours

      for (const moment of ["during", "after"] as const) {
        const marker = `session_${moment}`;
        const cut = cutting.cut(marker, moment);
        const err = await pool.query(sql.unsafe`SELECT 1 AS ${sql.identifier([marker])}`).then(() => undefined, (e: unknown) => e);
        await cut;
        expect(err).toBeInstanceOf(Error);
        // The first cut loses the session read above; the next connection reads its own.
        if (moment === "during") expect(sessionOf(err)).toBe(pid);
        else expect(sessionOf(err)).toEqual(expect.any(Number));
        expect(sessionOf(err)).not.toBe("none");
      }
      expect(sent.filter((q) => q.includes("pg_backend_pid")).length).toBe(3);

      // A connection lost while it reads its session has sent nothing else: "none".
      const cut = cutting.cut("pg_backend_pid", "before");
      const early = await pool.query(sql.unsafe`SELECT 2 AS n`).then(() => undefined, (e: unknown) => e);
      await cut;
      expect(early).toBeInstanceOf(Error);
      expect(sessionOf(early)).toBe("none");
      expect(sessionOf(new Error("not from a connection"))).toBeUndefined();
    } finally {
      await pool.end();
      await cutting.close();
    }
  });
});
