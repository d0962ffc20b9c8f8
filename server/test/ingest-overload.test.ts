// Past saturation ingest pushes back at once: with the database write held up, requests beyond the
// queue's bound get E9002 (HTTP 503 + Retry-After; RPC Unavailable + RetryInfo) without waiting, and
// nothing of theirs is stored; those that were queued are stored and acknowledged once the write
// goes through.
import { ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { IngestService } from "@kapsel/contracts/ingest";
import { RetryInfoSchema } from "@kapsel/contracts/error-details";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "../../test/support/database.ts";
import { addEndpoint, kapselCode } from "../../test/support/delivery.ts";
import { createTenant } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";

let server: TestServer;
let db: pg.Client;
beforeAll(async () => {
  server = await startTestServer({ KAPSEL_DELIVERY_ENABLED: "false", KAPSEL_INGEST_QUEUE_MAX_ROWS: "6" });
  db = await connect(server.databaseUrl);
});
afterAll(async () => {
  await db?.end();
  await server?.stop();
});

describe("overload", () => {
  it("requests past the queue's bound are refused at once with E9002 and a retry hint; the queued ones are stored", async () => {
    const tenant = await createTenant(server.url, ADMIN_TOKEN, "overload");
    const { endpointId } = await addEndpoint(server.url, tenant.apiKey, "https://93.184.216.34/");
    // Hold every insert behind a lock, so the queue fills.
    const blocker = await connect(server.databaseUrl);
    await blocker.query("BEGIN");
    await blocker.query("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE");
    try {
      const send = (i: number) => fetch(`${server.url}/ingest/${endpointId}`, {
        method: "POST", headers: { "content-type": "application/json", "idempotency-key": `k-${i}` }, body: `{"n":${i}}`,
      });
      // One write goes in flight (held), then 3 messages (2 rows each) fill the queue of 6 rows.
      const held = [send(0)];
      await new Promise((r) => setTimeout(r, 200));
      for (let i = 1; i <= 3; i++) held.push(send(i));
      await new Promise((r) => setTimeout(r, 200));
      // Answered while the held writes still wait on the lock: refused without waiting for them.
      const refused = await Promise.all([4, 5, 6, 7].map(send));
      for (const res of refused) {
        expect(res.status).toBe(503);
        expect(((await res.json()) as { code: string }).code).toBe("E9002");
        expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      }

      const client = createClient(IngestService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
      const err = await client.ingest({ endpointId, payload: new TextEncoder().encode("{}") }, { headers: { authorization: `Bearer ${tenant.apiKey}` } }).catch((e: unknown) => e);
      expect(kapselCode(err)).toBe("E9002");
      expect((err as ConnectError).findDetails(RetryInfoSchema)).toHaveLength(1);

      await blocker.query("COMMIT");
      const acknowledged = await Promise.all(held);
      expect(acknowledged.map((r) => r.status)).toEqual([202, 202, 202, 202]);
    } finally {
      await blocker.end();
    }
    const stored = await db.query<{ k: string }>("SELECT idempotency_key AS k FROM messages WHERE tenant_id = $1 ORDER BY k", [tenant.id]);
    expect(stored.rows.map((r) => r.k)).toEqual(["k-0", "k-1", "k-2", "k-3"]);
  });
});

describe("in-flight bound", () => {
  it("past KAPSEL_INGEST_MAX_IN_FLIGHT messages being accepted, the next request is refused at once with E9002", async () => {
    const small = await startTestServer({ KAPSEL_DELIVERY_ENABLED: "false", KAPSEL_INGEST_MAX_IN_FLIGHT: "2" });
    const blocker = await connect(small.databaseUrl);
    try {
      const tenant = await createTenant(small.url, ADMIN_TOKEN, "in-flight");
      const { endpointId } = await addEndpoint(small.url, tenant.apiKey, "https://93.184.216.34/");
      await blocker.query("BEGIN");
      await blocker.query("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE");
      const send = () => fetch(`${small.url}/ingest/${endpointId}`, { method: "POST", body: "{}" });
      const held = [send(), send()];
      await new Promise((r) => setTimeout(r, 200));
      const third = await send();
      expect([third.status, ((await third.json()) as { code: string }).code]).toEqual([503, "E9002"]);
      await blocker.query("COMMIT");
      expect((await Promise.all(held)).map((r) => r.status)).toEqual([202, 202]);
      // Room again.
      expect((await send()).status).toBe(202);
    } finally {
      await blocker.end();
      await small.stop();
    }
  });
});
