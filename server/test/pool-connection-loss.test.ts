// Connections lost in the middle of a query (the socket cut by a proxy, as a network failure or a
// failover would) must leave the pool: after more losses than the pool has connections, queries
// still get a connection instead of waiting forever for one (server/src/db/resilient-driver.ts).
import { sql } from "slonik";
import { afterAll, describe, expect, it } from "vitest";
import { createDatabasePool } from "../src/db/pool.ts";
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
