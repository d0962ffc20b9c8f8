// Idempotency keys: a repeated key answers the first event's id and stores nothing new — in
// sequence, under 50-way concurrency, inside one batch — scoped per tenant and endpoint, and only
// for the configured window. Senders' own delivery ids (webhook-id, X-GitHub-Delivery) stand in
// for a key on the schemes that define them, so a sender's retries are stored once.
import { createHmac, randomBytes } from "node:crypto";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "../../test/support/database.ts";
import { countEvents, createEndpoint, INGEST_ONLY, postIngest } from "../../test/support/ingest.ts";
import { createTenant, rpc } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";

let server: TestServer;
let db: pg.Client;
beforeAll(async () => {
  server = await startTestServer(INGEST_ONLY);
  db = await connect(server.databaseUrl);
});
afterAll(async () => {
  await db?.end();
  await server?.stop();
});

const b64 = (s: string) => Buffer.from(s).toString("base64");

async function tenantWithEndpoint(fields: Record<string, unknown> = {}) {
  const tenant = await createTenant(server.url, ADMIN_TOKEN);
  return { ...tenant, endpointId: await createEndpoint(server.url, tenant.apiKey, fields) };
}

describe("on the gateway", () => {
  it("a repeated X-Idempotency-Key answers 200 with the first event's id and duplicate: true", async () => {
    const { endpointId } = await tenantWithEndpoint();
    const first = await postIngest(server.url, endpointId, '{"n":1}', { "x-idempotency-key": "order-1" });
    expect(first.status).toBe(202);
    expect(first.body).toEqual({ event_id: expect.any(String), message_id: expect.any(String) });
    // Even with a different body: the key, not the content, identifies the event.
    const again = await postIngest(server.url, endpointId, '{"n":2}', { "x-idempotency-key": "order-1" });
    expect([again.status, again.body]).toEqual([200, { event_id: first.body.event_id, message_id: first.body.message_id, duplicate: true }]);
    expect(await countEvents(db, endpointId)).toBe(1);
    const row = await db.query("SELECT m.payload, m.idempotency_key FROM events e JOIN messages m ON m.id = e.message_id WHERE e.id = $1", [first.body.event_id]);
    expect([row.rows[0].payload.toString(), row.rows[0].idempotency_key]).toEqual(['{"n":1}', "order-1"]);
  });

  it("Idempotency-Key works the same, and shares its key space with X-Idempotency-Key", async () => {
    const { endpointId } = await tenantWithEndpoint();
    const first = await postIngest(server.url, endpointId, "{}", { "idempotency-key": "k-1" });
    expect(first.status).toBe(202);
    const again = await postIngest(server.url, endpointId, "{}", { "idempotency-key": "k-1" });
    expect([again.status, again.body.event_id]).toEqual([200, first.body.event_id]);
    const other = await postIngest(server.url, endpointId, "{}", { "x-idempotency-key": "k-1" });
    expect([other.status, other.body.event_id]).toEqual([200, first.body.event_id]);
    expect(await countEvents(db, endpointId)).toBe(1);
  });

  it("requests without a key are never deduplicated", async () => {
    const { endpointId } = await tenantWithEndpoint();
    const a = await postIngest(server.url, endpointId, "{}");
    const b = await postIngest(server.url, endpointId, "{}");
    expect([a.status, b.status]).toEqual([202, 202]);
    expect(a.body.event_id).not.toBe(b.body.event_id);
    expect(await countEvents(db, endpointId)).toBe(2);
  });

  it("50 concurrent requests with one key store exactly one event and all get its id", async () => {
    const { endpointId } = await tenantWithEndpoint();
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) => postIngest(server.url, endpointId, `{"i":${i}}`, { "x-idempotency-key": "burst" })),
    );
    const ids = new Set(answers.map((a) => a.body.event_id));
    expect(ids.size).toBe(1);
    expect(answers.filter((a) => a.status === 202)).toHaveLength(1);
    expect(answers.filter((a) => a.status === 200 && a.body.duplicate === true)).toHaveLength(49);
    expect(await countEvents(db, endpointId)).toBe(1);
    const jobs = await db.query("SELECT count(*)::int AS n FROM delivery_jobs WHERE endpoint_id = $1", [endpointId]);
    expect(jobs.rows[0].n).toBe(1);
  });
});

describe("on the RPCs", () => {
  it("Ingest with a repeated key answers the first id with duplicate set", async () => {
    const t = await tenantWithEndpoint();
    const first = await rpc(server.url, "Ingest", { endpointId: t.endpointId, payload: b64("{}"), idempotencyKey: "rpc-1" }, t.apiKey);
    expect(first.status).toBe(200);
    expect(first.body.duplicate).toBeUndefined(); // false is the JSON default and is left out
    const again = await rpc(server.url, "Ingest", { endpointId: t.endpointId, payload: b64("{}"), idempotencyKey: "rpc-1" }, t.apiKey);
    expect(again.body).toEqual({ eventId: first.body.eventId, messageId: first.body.messageId, eventIds: [first.body.eventId], duplicate: true });
    expect(await countEvents(db, t.endpointId)).toBe(1);
  });

  it("50 concurrent Ingest calls with one key store exactly one event and all get its id", async () => {
    const t = await tenantWithEndpoint();
    const answers = await Promise.all(
      Array.from({ length: 50 }, () => rpc(server.url, "Ingest", { endpointId: t.endpointId, payload: b64("{}"), idempotencyKey: "burst" }, t.apiKey)),
    );
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(new Set(answers.map((a) => a.body.eventId)).size).toBe(1);
    expect(answers.filter((a) => a.body.duplicate !== true)).toHaveLength(1);
    expect(await countEvents(db, t.endpointId)).toBe(1);
  });

  it("a key repeated inside one IngestBatch: the later item is DUPLICATE with the first item's id", async () => {
    const t = await tenantWithEndpoint();
    const earlier = await rpc(server.url, "Ingest", { endpointId: t.endpointId, payload: b64("{}"), idempotencyKey: "seen-before" }, t.apiKey);
    const item = (key?: string) => ({ endpointId: t.endpointId, payload: b64("{}"), ...(key ? { idempotencyKey: key } : {}) });
    const r = await rpc(server.url, "IngestBatch", { events: [item("a"), item("b"), item("a"), item(), item("seen-before"), item("b")] }, t.apiKey);
    expect(r.status).toBe(200);
    const results = r.body.results as { status: string; eventId: string }[];
    expect(results.map((x) => x.status)).toEqual([
      "INGEST_RESULT_STATUS_ACCEPTED", "INGEST_RESULT_STATUS_ACCEPTED", "INGEST_RESULT_STATUS_DUPLICATE",
      "INGEST_RESULT_STATUS_ACCEPTED", "INGEST_RESULT_STATUS_DUPLICATE", "INGEST_RESULT_STATUS_DUPLICATE",
    ]);
    expect(results[2]!.eventId).toBe(results[0]!.eventId);
    expect(results[5]!.eventId).toBe(results[1]!.eventId);
    expect(results[4]!.eventId).toBe(earlier.body.eventId);
    expect(new Set([results[0]!.eventId, results[1]!.eventId, results[3]!.eventId]).size).toBe(3);
    expect(await countEvents(db, t.endpointId)).toBe(4);
  });

  it("the gateway and the RPCs share one key space per endpoint", async () => {
    const t = await tenantWithEndpoint();
    const viaGateway = await postIngest(server.url, t.endpointId, "{}", { "idempotency-key": "shared" });
    const viaRpc = await rpc(server.url, "Ingest", { endpointId: t.endpointId, payload: b64("{}"), idempotencyKey: "shared" }, t.apiKey);
    expect(viaRpc.body).toEqual({ eventId: viaGateway.body.event_id, messageId: viaGateway.body.message_id, eventIds: [viaGateway.body.event_id], duplicate: true });
  });
});

describe("several server processes on one database", () => {
  it("racing batches that share keys in opposite orders all succeed, one event per key", async () => {
    // Each in-process server has its own pool and group commit, so their statements run
    // concurrently against the same idempotency keys, as separate processes' would.
    const others = await Promise.all([1, 2, 3].map(() => startTestServer({ ...INGEST_ONLY, DATABASE_URL: server.databaseUrl })));
    try {
      const servers = [server, ...others];
      const t = await tenantWithEndpoint();
      const idsByKey = new Map<string, Set<string>>();
      const statuses: number[] = [];
      for (let round = 0; round < 8; round++) {
        const keys = Array.from({ length: 300 }, (_, i) => `r${round}-k${i}`);
        const batch = (ks: string[]) => ({ events: ks.map((k) => ({ endpointId: t.endpointId, payload: b64("{}"), idempotencyKey: k })) });
        const calls = servers.flatMap((s, i) => [0, 1].map(async (j) => {
          const ordered = (i + j) % 2 === 0 ? keys : [...keys].reverse();
          const r = await rpc(s.url, "IngestBatch", batch(ordered), t.apiKey);
          statuses.push(r.status);
          (r.body.results ?? []).forEach((x: { eventId: string }, n: number) => {
            const set = idsByKey.get(ordered[n]!) ?? new Set();
            idsByKey.set(ordered[n]!, set.add(x.eventId));
          });
        }));
        await Promise.all(calls);
      }
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
      expect(idsByKey.size).toBe(8 * 300);
      expect([...idsByKey.values()].every((ids) => ids.size === 1)).toBe(true);
      expect(await countEvents(db, t.endpointId)).toBe(8 * 300);
    } finally {
      await Promise.all(others.map((s) => s.stop()));
    }
  });
});

describe("key scope", () => {
  it("the same key on another endpoint of the same tenant is a new event", async () => {
    const t = await tenantWithEndpoint();
    const second = await createEndpoint(server.url, t.apiKey);
    const a = await postIngest(server.url, t.endpointId, "{}", { "idempotency-key": "same" });
    const b = await postIngest(server.url, second, "{}", { "idempotency-key": "same" });
    expect([a.status, b.status]).toEqual([202, 202]);
    expect(a.body.event_id).not.toBe(b.body.event_id);
    const viaRpc = await rpc(server.url, "Ingest", { endpointId: second, payload: b64("{}"), idempotencyKey: "same" }, t.apiKey);
    expect(viaRpc.body).toEqual({ eventId: b.body.event_id, messageId: b.body.message_id, eventIds: [b.body.event_id], duplicate: true });
  });

  it("the same key for another tenant is a new event", async () => {
    const one = await tenantWithEndpoint();
    const two = await tenantWithEndpoint();
    const a = await rpc(server.url, "Ingest", { endpointId: one.endpointId, payload: b64("{}"), idempotencyKey: "tenant-key" }, one.apiKey);
    const b = await rpc(server.url, "Ingest", { endpointId: two.endpointId, payload: b64("{}"), idempotencyKey: "tenant-key" }, two.apiKey);
    expect([a.body.duplicate, b.body.duplicate]).toEqual([undefined, undefined]);
    expect(a.body.eventId).not.toBe(b.body.eventId);
  });
});

describe("senders' delivery ids", () => {
  const body = '{"action":"opened"}';

  it("a Standard Webhooks sender's retry (same webhook-id) is stored once", async () => {
    const key = randomBytes(24);
    const { endpointId } = await tenantWithEndpoint({ sourceScheme: "SOURCE_SCHEME_STANDARD_WEBHOOKS", sourceSecret: `whsec_${key.toString("base64")}` });
    const send = (ts: number) => postIngest(server.url, endpointId, body, {
      "webhook-id": "msg_retry_1",
      "webhook-timestamp": String(ts),
      "webhook-signature": `v1,${createHmac("sha256", key).update(`msg_retry_1.${ts}.${body}`).digest("base64")}`,
    });
    const now = Math.floor(Date.now() / 1000);
    const first = await send(now);
    // A retry is signed afresh with a later timestamp but keeps the message id.
    const retry = await send(now + 5);
    expect([first.status, retry.status, retry.body]).toEqual([202, 200, { event_id: first.body.event_id, message_id: first.body.message_id, duplicate: true }]);
    expect(await countEvents(db, endpointId)).toBe(1);
  });

  it("a GitHub redelivery (same X-GitHub-Delivery) is stored once; an explicit key takes precedence", async () => {
    const { endpointId } = await tenantWithEndpoint({ sourceScheme: "SOURCE_SCHEME_GITHUB", sourceSecret: "gh" });
    const signed = { "x-hub-signature-256": `sha256=${createHmac("sha256", "gh").update(body).digest("hex")}`, "x-github-delivery": "d-123" };
    const first = await postIngest(server.url, endpointId, body, signed);
    const redelivery = await postIngest(server.url, endpointId, body, signed);
    expect([first.status, redelivery.status, redelivery.body.event_id]).toEqual([202, 200, first.body.event_id]);
    const explicit = await postIngest(server.url, endpointId, body, { ...signed, "idempotency-key": "explicit" });
    expect(explicit.status).toBe(202);
    expect(await countEvents(db, endpointId)).toBe(2);
  });

  it("X-GitHub-Delivery means nothing on an endpoint that does not use the GitHub scheme", async () => {
    const { endpointId } = await tenantWithEndpoint();
    const a = await postIngest(server.url, endpointId, body, { "x-github-delivery": "d-1" });
    const b = await postIngest(server.url, endpointId, body, { "x-github-delivery": "d-1" });
    expect([a.status, b.status]).toEqual([202, 202]);
    expect(await countEvents(db, endpointId)).toBe(2);
  });
});

describe("the idempotency window", () => {
  let shortWindow: TestServer;
  beforeAll(async () => {
    shortWindow = await startTestServer({ ...INGEST_ONLY, KAPSEL_IDEMPOTENCY_WINDOW_MS: "1000" });
  });
  afterAll(async () => {
    await shortWindow?.stop();
  });

  it("a key older than the window is a new event, which the key then names", async () => {
    const t = await createTenant(shortWindow.url, ADMIN_TOKEN);
    const endpointId = await createEndpoint(shortWindow.url, t.apiKey);
    const first = await postIngest(shortWindow.url, endpointId, "{}", { "idempotency-key": "expiring" });
    const inside = await postIngest(shortWindow.url, endpointId, "{}", { "idempotency-key": "expiring" });
    expect([first.status, inside.status, inside.body.event_id]).toEqual([202, 200, first.body.event_id]);

    await new Promise((r) => setTimeout(r, 1200));
    const after = await postIngest(shortWindow.url, endpointId, "{}", { "idempotency-key": "expiring" });
    expect(after.status).toBe(202);
    expect(after.body.event_id).not.toBe(first.body.event_id);
    const repeat = await postIngest(shortWindow.url, endpointId, "{}", { "idempotency-key": "expiring" });
    expect([repeat.status, repeat.body.event_id]).toEqual([200, after.body.event_id]);

    const own = await connect(shortWindow.databaseUrl);
    try {
      expect((await own.query("SELECT count(*)::int AS n FROM events WHERE endpoint_id = $1", [endpointId])).rows[0].n).toBe(2);
    } finally {
      await own.end();
    }
  });
});
