// The ingest endpoint cache against a real database: a change made through this process must hold
// for the very next request, even when a lookup was in flight while the change happened.
import type pg from "pg";
import type { DatabasePool } from "slonik";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDatabasePool } from "../src/db/pool.ts";
import { EndpointCache } from "../src/ingest/endpoint-cache.ts";
import { connect, createTestDatabase } from "../../test/support/database.ts";
import { testSecretBox } from "../../test/support/secrets.ts";
import { endpointSecret } from "../src/secrets/secret-columns.ts";
import { randomUUID } from "node:crypto";

let url: string;
let pool: DatabasePool;
let db: pg.Client;
let endpointId: string;
beforeAll(async () => {
  url = await createTestDatabase();
  pool = await createDatabasePool(url, { maximumPoolSize: 2 });
  db = await connect(url);
  const tenant = await db.query<{ id: string }>("INSERT INTO tenants (name) VALUES ('cache') RETURNING id");
  endpointId = randomUUID();
  const box = testSecretBox();
  await db.query(
    "INSERT INTO endpoints (id, tenant_id, url, signing_secret, source_secret) VALUES ($1, $2, 'https://93.184.216.34/', $3, $4)",
    [endpointId, tenant.rows[0]!.id, box.seal("whsec_x", endpointSecret(endpointId, "signing_secret")), box.seal("", endpointSecret(endpointId, "source_secret"))],
  );
});
afterAll(async () => {
  await db?.end();
  await pool?.end();
});

const setEnabled = (enabled: boolean) => db.query("UPDATE endpoints SET enabled = $2 WHERE id = $1", [endpointId, enabled]);

describe("EndpointCache", () => {
  it("answers from the cache within the TTL and reloads after invalidate", async () => {
    await setEnabled(true);
    const cache = new EndpointCache(pool, testSecretBox(), { ttlMs: 60_000 });
    expect((await cache.get(endpointId))?.enabled).toBe(true);
    await setEnabled(false);
    expect((await cache.get(endpointId))?.enabled).toBe(true);
    cache.invalidate(endpointId);
    expect((await cache.get(endpointId))?.enabled).toBe(false);
  });

  it("a lookup that was in flight across an invalidate is not kept", async () => {
    await setEnabled(true);
    const cache = new EndpointCache(pool, testSecretBox(), { ttlMs: 60_000 });
    // Hold the lookup's SELECT back until after the invalidate, so its answer spans the change.
    const blocker = await connect(url);
    try {
      await blocker.query("BEGIN");
      await blocker.query("LOCK TABLE endpoints IN ACCESS EXCLUSIVE MODE");
      const inFlight = cache.get(endpointId);
      cache.invalidate(endpointId);
      await blocker.query("COMMIT");
      expect((await inFlight)?.enabled).toBe(true);
    } finally {
      await blocker.end();
    }
    await setEnabled(false);
    expect((await cache.get(endpointId))?.enabled).toBe(false);
  });

  it("stays within its size, and a stream of unknown ids does not push out an endpoint in use", async () => {
    await setEnabled(true);
    const cache = new EndpointCache(pool, testSecretBox(), { ttlMs: 60_000, max: 3 });
    expect((await cache.get(endpointId))?.enabled).toBe(true);
    // A reload from here on would see the endpoint disabled: enabled === true means a cache hit.
    await setEnabled(false);
    for (let i = 0; i < 20; i++) {
      expect(await cache.get(`00000000-0000-4000-8000-${String(i).padStart(12, "0")}`)).toBeUndefined();
      expect((await cache.get(endpointId))?.enabled).toBe(true);
    }
  });

  it("an unknown id is undefined", async () => {
    const cache = new EndpointCache(pool, testSecretBox());
    expect(await cache.get("00000000-0000-4000-8000-000000000000")).toBeUndefined();
  });
});
