// IngestService for backend services: a stock @grpc/grpc-js client over h2c (built from the .proto
// at run time, `authorization: Bearer` metadata) and Connect JSON over fetch. Events are stored as
// sent; IngestBatch answers per item so one bad item does not sink the others.
import { randomUUID } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "../../test/support/database.ts";
import { bearer, unary } from "../../test/support/grpc.ts";
import { ingestClient } from "../../test/support/grpc-ingest.ts";
import { allBytes, countEvents, createEndpoint, eventRow, INGEST_ONLY } from "../../test/support/ingest.ts";
import { createTenant, rpc } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";

const CAP = 4096;

let server: TestServer;
let db: pg.Client;
let client: grpc.Client;
beforeAll(async () => {
  server = await startTestServer({ ...INGEST_ONLY, KAPSEL_MAX_PAYLOAD_BYTES: String(CAP) });
  db = await connect(server.databaseUrl);
  client = ingestClient(`127.0.0.1:${server.port}`);
});
afterAll(async () => {
  client?.close();
  await db?.end();
  await server?.stop();
});

async function tenantWithEndpoint() {
  const tenant = await createTenant(server.url, ADMIN_TOKEN);
  return { ...tenant, endpointId: await createEndpoint(server.url, tenant.apiKey) };
}

interface BatchResult {
  status: string;
  eventId: string;
  errorCode: string;
  errorMessage: string;
}

describe("@grpc/grpc-js client", () => {
  it("Ingest stores the payload bytes, content type, headers and key, and answers the event id", async () => {
    const t = await tenantWithEndpoint();
    const payload = allBytes();
    const res = await unary(client, "Ingest", {
      endpointId: t.endpointId,
      payload,
      contentType: "application/x-protobuf",
      idempotencyKey: "grpc-1",
      headers: { "X-Event-Type": "order.created", "x-tenant-ref": "abc" },
    }, bearer(t.apiKey));
    expect(res).toEqual({ eventId: expect.stringMatching(/^[0-9a-f-]{36}$/), duplicate: false, messageId: expect.stringMatching(/^[0-9a-f-]{36}$/), eventIds: [res.eventId] });
    const row = await eventRow(db, res.eventId);
    expect(row).toMatchObject({
      tenant_id: t.id, endpoint_id: t.endpointId, content_type: "application/x-protobuf", idempotency_key: "grpc-1",
      headers: { "x-event-type": "order.created", "x-tenant-ref": "abc" },
    });
    expect(Buffer.compare(row!.payload, payload)).toBe(0);
    const again = await unary(client, "Ingest", { endpointId: t.endpointId, payload, idempotencyKey: "grpc-1" }, bearer(t.apiKey));
    expect(again).toEqual({ eventId: res.eventId, duplicate: true, messageId: res.messageId, eventIds: [res.eventId] });
  });

  it("Ingest without a content type stores application/json", async () => {
    const t = await tenantWithEndpoint();
    const res = await unary(client, "Ingest", { endpointId: t.endpointId, payload: Buffer.from("{}") }, bearer(t.apiKey));
    expect((await eventRow(db, res.eventId))!.content_type).toBe("application/json");
  });

  it("IngestBatch with mixed items answers each one and stores only the good ones", async () => {
    const t = await tenantWithEndpoint();
    const other = await tenantWithEndpoint();
    const disabled = await createEndpoint(server.url, t.apiKey, { disabled: true });
    const good = (n: number, key?: string) => ({ endpointId: t.endpointId, payload: Buffer.from(`{"n":${n}}`), idempotencyKey: key ?? "" });
    const res = await unary<{ results: BatchResult[] }>(client, "IngestBatch", {
      events: [
        good(0, "first"),
        { endpointId: randomUUID(), payload: Buffer.from("{}") },
        { endpointId: "not-a-uuid", payload: Buffer.from("{}") },
        { endpointId: t.endpointId, payload: Buffer.alloc(CAP + 1) },
        good(4),
        good(5, "first"),
        { endpointId: other.endpointId, payload: Buffer.from("{}") },
        { endpointId: disabled, payload: Buffer.from("{}") },
        { endpointId: t.endpointId, payload: Buffer.from("{}"), headers: { "webhook-signature": "v1,x" } },
        { endpointId: t.endpointId, payload: Buffer.from("{}"), contentType: "text/plain\u0000" },
        good(10, "last"),
      ],
    }, bearer(t.apiKey));
    const summary = res.results.map((r) => (r.status === "INGEST_RESULT_STATUS_ERROR" ? r.errorCode : r.status.replace("INGEST_RESULT_STATUS_", "")));
    expect(summary).toEqual(["ACCEPTED", "E1003", "E1006", "E1001", "ACCEPTED", "DUPLICATE", "E1003", "E1007", "E1006", "E1006", "ACCEPTED"]);
    for (const r of res.results) {
      if (r.status === "INGEST_RESULT_STATUS_ERROR") expect([r.eventId, r.errorMessage !== ""]).toEqual(["", true]);
      else expect(r.errorCode).toBe("");
    }
    expect(res.results[5]!.eventId).toBe(res.results[0]!.eventId);

    const stored = await db.query("SELECT e.id, m.payload FROM events e JOIN messages m ON m.id = e.message_id WHERE e.endpoint_id = $1 ORDER BY e.id", [t.endpointId]);
    expect(stored.rows.map((r) => r.id).sort()).toEqual([res.results[0]!.eventId, res.results[4]!.eventId, res.results[10]!.eventId].sort());
    expect(stored.rows.map((r) => r.payload.toString()).sort()).toEqual(['{"n":0}', '{"n":10}', '{"n":4}']);
    expect(await countEvents(db, other.endpointId)).toBe(0);
    expect(await countEvents(db, disabled)).toBe(0);
    const jobs = await db.query("SELECT count(*)::int AS n FROM delivery_jobs WHERE endpoint_id = $1", [t.endpointId]);
    expect(jobs.rows[0].n).toBe(3);
  });

  it("IngestBatch answers in request order with one result per item", async () => {
    const t = await tenantWithEndpoint();
    const events = Array.from({ length: 500 }, (_, i) => ({ endpointId: t.endpointId, payload: Buffer.from(String(i)), idempotencyKey: `k${i}` }));
    const res = await unary<{ results: BatchResult[] }>(client, "IngestBatch", { events }, bearer(t.apiKey));
    expect(res.results).toHaveLength(500);
    expect(res.results.every((r) => r.status === "INGEST_RESULT_STATUS_ACCEPTED")).toBe(true);
    const rows = await db.query<{ id: string; k: string; p: string }>(
      "SELECT e.id, m.idempotency_key AS k, convert_from(m.payload, 'UTF8') AS p FROM events e JOIN messages m ON m.id = e.message_id WHERE e.endpoint_id = $1", [t.endpointId]);
    const byId = new Map(rows.rows.map((r) => [r.id, r]));
    res.results.forEach((r, i) => expect([byId.get(r.eventId)?.k, byId.get(r.eventId)?.p]).toEqual([`k${i}`, String(i)]));
  });

  it("many concurrent Ingest calls on one connection are all stored", async () => {
    const t = await tenantWithEndpoint();
    const ids = await Promise.all(Array.from({ length: 200 }, (_, i) =>
      unary<{ eventId: string }>(client, "Ingest", { endpointId: t.endpointId, payload: Buffer.from(String(i)) }, bearer(t.apiKey)).then((r) => r.eventId)));
    expect(new Set(ids).size).toBe(200);
    expect(await countEvents(db, t.endpointId)).toBe(200);
  });
});

describe("Connect JSON", () => {
  it("IngestBatch answers per item in the JSON form", async () => {
    const t = await tenantWithEndpoint();
    const r = await rpc(server.url, "IngestBatch", {
      events: [
        { endpointId: t.endpointId, payload: Buffer.from("a").toString("base64") },
        { endpointId: "bad", payload: "" },
      ],
    }, t.apiKey);
    expect(r.status).toBe(200);
    expect(r.body.results).toEqual([
      { status: "INGEST_RESULT_STATUS_ACCEPTED", eventId: expect.any(String), messageId: expect.any(String), eventIds: [expect.any(String)] },
      { status: "INGEST_RESULT_STATUS_ERROR", errorCode: "E1006", errorMessage: expect.any(String) },
    ]);
    expect((await eventRow(db, r.body.results[0].eventId))!.payload.toString()).toBe("a");
  });

  it("an empty IngestBatch answers no results", async () => {
    const t = await tenantWithEndpoint();
    const r = await rpc(server.url, "IngestBatch", { events: [] }, t.apiKey);
    expect([r.status, r.body.results ?? []]).toEqual([200, []]);
  });

  it("a bad item sent alongside good requests does not sink their group commit", async () => {
    const t = await tenantWithEndpoint();
    const good = Array.from({ length: 20 }, () => rpc(server.url, "Ingest", { endpointId: t.endpointId, payload: "" }, t.apiKey));
    const bad = rpc(server.url, "Ingest", { endpointId: t.endpointId, payload: "", contentType: "a\u0000b" }, t.apiKey);
    const answers = await Promise.all([...good, bad]);
    expect(answers.map((a) => a.status)).toEqual([...Array(20).fill(200), 400]);
    expect(await countEvents(db, t.endpointId)).toBe(20);
  });
});
