// Every ingest error code, on the HTTP gateway (JSON body + status) and on the RPCs (Connect code +
// ErrorInfo reason; gRPC status through a stock @grpc/grpc-js client). The server runs with a
// 1 KiB payload cap so the size limit is cheap to hit; rate limiting (E1005) and database outages
// (E9001) have their own files.
import { randomUUID } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bearer, errorInfos, failure, unary } from "../../test/support/grpc.ts";
import { ingestClient } from "../../test/support/grpc-ingest.ts";
import { connect } from "../../test/support/database.ts";
import { countEvents, createEndpoint, INGEST_ONLY, postIngest, postIngestH2, postStreamed } from "../../test/support/ingest.ts";
import { createTenant, errorCode, rpc } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";

const CAP = 1024;

let server: TestServer;
let db: pg.Client;
let grpcIngest: grpc.Client;
beforeAll(async () => {
  server = await startTestServer({ ...INGEST_ONLY, KAPSEL_MAX_PAYLOAD_BYTES: String(CAP) });
  db = await connect(server.databaseUrl);
  grpcIngest = ingestClient(`127.0.0.1:${server.port}`);
});
afterAll(async () => {
  grpcIngest?.close();
  await db?.end();
  await server?.stop();
});

async function tenantWithEndpoint(fields: Record<string, unknown> = {}) {
  const tenant = await createTenant(server.url, ADMIN_TOKEN);
  const endpointId = await createEndpoint(server.url, tenant.apiKey, fields);
  return { ...tenant, endpointId };
}

const b64 = (b: Buffer | string) => Buffer.from(b).toString("base64");

/** Splits n bytes into chunks of `size`. */
function* chunksOf(n: number, size: number): Generator<Buffer> {
  for (let sent = 0; sent < n; sent += size) yield Buffer.alloc(Math.min(size, n - sent), 0x61);
}

describe("the gateway answers JSON {code, message, request_id} with the table's status", () => {
  it("carries the caller's x-request-id in the error body", async () => {
    const r = await postIngest(server.url, randomUUID(), "{}", { "x-request-id": "req-abc-123" });
    expect(r.status).toBe(404);
    expect(r.headers["content-type"]).toBe("application/json");
    expect(r.body).toEqual({ code: "E1003", message: expect.any(String), request_id: "req-abc-123" });
    expect(r.body.message).not.toBe("");
  });

  it("E1001 413: a body one byte over the cap, with Content-Length or chunked, stores nothing", async () => {
    const { endpointId } = await tenantWithEndpoint();
    const declared = await postIngest(server.url, endpointId, Buffer.alloc(CAP + 1, 0x61));
    expect([declared.status, declared.body.code]).toEqual([413, "E1001"]);
    const chunked = await postStreamed(server.url, endpointId, chunksOf(CAP + 1, 100));
    expect([chunked.status, chunked.body.code]).toEqual([413, "E1001"]);
    expect(typeof chunked.body.request_id).toBe("string");
    expect(await countEvents(db, endpointId)).toBe(0);
  });

  it("E1001 413: a Content-Length above the cap is refused before the body is read", async () => {
    const { endpointId } = await tenantWithEndpoint();
    // Declares far more than it ever sends: only an answer from the header alone can arrive.
    const r = await postStreamed(server.url, endpointId, chunksOf(10, 10), { "content-length": String(50 * 1024 * 1024) });
    expect([r.status, r.body.code]).toEqual([413, "E1001"]);
  });

  it("E1001 413 over HTTP/2 too, with or without content-length, however far past the cap", async () => {
    const { endpointId } = await tenantWithEndpoint();
    for (const size of [CAP + 1, 200 * CAP]) {
      const streamed = await postIngestH2(server.url, endpointId, Buffer.alloc(size));
      expect([size, streamed.status, streamed.body.code]).toEqual([size, 413, "E1001"]);
      const declared = await postIngestH2(server.url, endpointId, Buffer.alloc(size), { "content-length": String(size) });
      expect([size, declared.status, declared.body.code]).toEqual([size, 413, "E1001"]);
    }
    expect((await postIngestH2(server.url, endpointId, Buffer.alloc(CAP))).status).toBe(202);
    expect(await countEvents(db, endpointId)).toBe(1);
  });

  it("a body of exactly the cap is accepted, with Content-Length or chunked", async () => {
    const { endpointId } = await tenantWithEndpoint();
    expect((await postIngest(server.url, endpointId, Buffer.alloc(CAP, 0x62))).status).toBe(202);
    expect((await postStreamed(server.url, endpointId, chunksOf(CAP, 100))).status).toBe(202);
    expect(await countEvents(db, endpointId)).toBe(2);
  });

  it("E1002 401: an endpoint with a source scheme and an unsigned request", async () => {
    const { endpointId } = await tenantWithEndpoint({ sourceScheme: "SOURCE_SCHEME_HMAC_SHA256", sourceSecret: "s3cret", sourceHeader: "x-sig" });
    const r = await postIngest(server.url, endpointId, "{}");
    expect([r.status, r.body.code]).toEqual([401, "E1002"]);
    expect(await countEvents(db, endpointId)).toBe(0);
  });

  it("E1003 404: an endpoint id that does not exist, or was deleted", async () => {
    expect((await postIngest(server.url, randomUUID(), "{}")).body.code).toBe("E1003");
    const t = await tenantWithEndpoint();
    expect((await postIngest(server.url, t.endpointId, "{}")).status).toBe(202);
    expect((await rpc(server.url, "DeleteEndpoint", { endpointId: t.endpointId }, t.apiKey)).status).toBe(200);
    const r = await postIngest(server.url, t.endpointId, "{}");
    expect([r.status, r.body.code]).toEqual([404, "E1003"]);
  });

  it("E1006 400: a malformed endpoint id, including broken percent-encoding and an empty id", async () => {
    for (const id of ["not-a-uuid", "%E0%A4%A", "%zz", "", `${randomUUID()}x`]) {
      const r = await postIngest(server.url, id, "{}");
      expect([id, r.status, r.body?.code]).toEqual([id, 400, "E1006"]);
    }
    // The server is still up after the broken percent-encoding.
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });

  it("E1006 400: an idempotency key longer than 255 characters", async () => {
    const { endpointId } = await tenantWithEndpoint();
    const r = await postIngest(server.url, endpointId, "{}", { "idempotency-key": "k".repeat(300) });
    expect([r.status, r.body.code]).toEqual([400, "E1006"]);
    expect(await countEvents(db, endpointId)).toBe(0);
  });

  it("E1007 409: an endpoint created disabled, and one disabled after it took events", async () => {
    const created = await tenantWithEndpoint({ disabled: true });
    expect((await postIngest(server.url, created.endpointId, "{}")).body.code).toBe("E1007");

    const t = await tenantWithEndpoint();
    expect((await postIngest(server.url, t.endpointId, "{}")).status).toBe(202);
    // The endpoint is cached for ingest; a change through the same process drops the entry at once.
    expect((await rpc(server.url, "UpdateEndpoint", { endpointId: t.endpointId, enabled: false }, t.apiKey)).status).toBe(200);
    const r = await postIngest(server.url, t.endpointId, "{}");
    expect([r.status, r.body.code]).toEqual([409, "E1007"]);
    expect((await rpc(server.url, "UpdateEndpoint", { endpointId: t.endpointId, enabled: true }, t.apiKey)).status).toBe(200);
    expect((await postIngest(server.url, t.endpointId, "{}")).status).toBe(202);
    expect(await countEvents(db, t.endpointId)).toBe(2);
  });
});

describe("Ingest over Connect JSON answers the Connect code with an ErrorInfo reason", () => {
  const ingest = (body: unknown, token?: string) => rpc(server.url, "Ingest", body, token);

  it("E1001 invalid_argument: a payload one byte over the cap; exactly the cap is accepted", async () => {
    const t = await tenantWithEndpoint();
    const over = await ingest({ endpointId: t.endpointId, payload: b64(Buffer.alloc(CAP + 1)) }, t.apiKey);
    expect([over.status, over.body.code, errorCode(over.body)]).toEqual([400, "invalid_argument", "E1001"]);
    expect(over.body.message).toMatch(/^E1001: /);
    const exact = await ingest({ endpointId: t.endpointId, payload: b64(Buffer.alloc(CAP)) }, t.apiKey);
    expect(exact.status).toBe(200);
    expect(await countEvents(db, t.endpointId)).toBe(1);
  });

  it("E1003 not_found: an unknown endpoint, and another tenant's endpoint", async () => {
    const mine = await tenantWithEndpoint();
    const theirs = await tenantWithEndpoint();
    const unknown = await ingest({ endpointId: randomUUID(), payload: b64("{}") }, mine.apiKey);
    expect([unknown.status, unknown.body.code, errorCode(unknown.body)]).toEqual([404, "not_found", "E1003"]);
    const foreign = await ingest({ endpointId: theirs.endpointId, payload: b64("{}") }, mine.apiKey);
    expect([foreign.status, foreign.body.code, errorCode(foreign.body)]).toEqual([404, "not_found", "E1003"]);
    // Same answer as an unknown id: nothing tells the caller the endpoint exists.
    expect(foreign.body.message).toBe(unknown.body.message);
    expect(await countEvents(db, theirs.endpointId)).toBe(0);
  });

  it("E1004: no key or a wrong key is unauthenticated; a key without the ingest scope is permission_denied", async () => {
    const t = await tenantWithEndpoint();
    const body = { endpointId: t.endpointId, payload: b64("{}") };
    const none = await ingest(body);
    expect([none.status, none.body.code, errorCode(none.body)]).toEqual([401, "unauthenticated", "E1004"]);
    const wrong = await ingest(body, "ksk_not-a-real-key");
    expect([wrong.status, errorCode(wrong.body)]).toEqual([401, "E1004"]);
    const manageOnly = (await rpc(server.url, "CreateApiKey", { name: "m", scopes: ["SCOPE_MANAGE", "SCOPE_READ"] }, t.apiKey)).body.secret;
    const scoped = await ingest(body, manageOnly);
    expect([scoped.status, scoped.body.code, errorCode(scoped.body)]).toEqual([403, "permission_denied", "E1004"]);
    const ingestOnly = (await rpc(server.url, "CreateApiKey", { name: "i", scopes: ["SCOPE_INGEST"] }, t.apiKey)).body.secret;
    expect((await ingest(body, ingestOnly)).status).toBe(200);
    expect(await countEvents(db, t.endpointId)).toBe(1);
  });

  it("E1006 invalid_argument: malformed endpoint id, bad idempotency keys, reserved headers, bad content type", async () => {
    const t = await tenantWithEndpoint();
    const base = { endpointId: t.endpointId, payload: b64("{}") };
    const cases: Record<string, unknown>[] = [
      { ...base, endpointId: "nope" },
      { ...base, idempotencyKey: "k".repeat(300) },
      { ...base, idempotencyKey: "line\nbreak" },
      { ...base, idempotencyKey: "tab\there" },
      { ...base, headers: { "webhook-id": "msg_1" } },
      { ...base, headers: { "Webhook-Signature": "v1,abc" } },
      { ...base, headers: { "content-length": "5" } },
      { ...base, headers: { host: "evil.example" } },
      { ...base, headers: { "bad name": "x" } },
      { ...base, headers: { "x-ok": "a\r\nInjected: 1" } },
      { ...base, contentType: "text/plain\r\nX-Injected: 1" },
      { ...base, contentType: "text/plain\u0000" },
    ];
    for (const body of cases) {
      const r = await ingest(body, t.apiKey);
      expect([JSON.stringify(body), r.status, r.body.code, errorCode(r.body)]).toEqual([JSON.stringify(body), 400, "invalid_argument", "E1006"]);
    }
    expect(await countEvents(db, t.endpointId)).toBe(0);
  });

  it("E1006 invalid_argument: a batch of more than 1000 events fails as a whole", async () => {
    const t = await tenantWithEndpoint();
    const events = Array.from({ length: 1001 }, () => ({ endpointId: t.endpointId, payload: b64("{}") }));
    const r = await rpc(server.url, "IngestBatch", { events }, t.apiKey);
    expect([r.status, r.body.code, errorCode(r.body)]).toEqual([400, "invalid_argument", "E1006"]);
    expect(await countEvents(db, t.endpointId)).toBe(0);
    const full = await rpc(server.url, "IngestBatch", { events: events.slice(0, 1000) }, t.apiKey);
    expect(full.status).toBe(200);
    expect(full.body.results).toHaveLength(1000);
    expect(await countEvents(db, t.endpointId)).toBe(1000);
  });

  it("E1007 failed_precondition: a disabled endpoint", async () => {
    const t = await tenantWithEndpoint();
    expect((await ingest({ endpointId: t.endpointId, payload: b64("{}") }, t.apiKey)).status).toBe(200);
    await rpc(server.url, "UpdateEndpoint", { endpointId: t.endpointId, enabled: false }, t.apiKey);
    const r = await ingest({ endpointId: t.endpointId, payload: b64("{}") }, t.apiKey);
    expect([r.body.code, errorCode(r.body)]).toEqual(["failed_precondition", "E1007"]);
    expect(await countEvents(db, t.endpointId)).toBe(1);
  });
});

describe("Ingest over gRPC (@grpc/grpc-js) answers the gRPC status with an ErrorInfo reason", () => {
  const call = (request: unknown, token?: string) => failure(unary(grpcIngest, "Ingest", request, token ? bearer(token) : new grpc.Metadata()));

  it("maps each code to its status", async () => {
    const t = await tenantWithEndpoint();
    const other = await tenantWithEndpoint();
    const disabled = await createEndpoint(server.url, t.apiKey, { disabled: true });
    const readOnly = (await rpc(server.url, "CreateApiKey", { name: "r", scopes: ["SCOPE_READ"] }, t.apiKey)).body.secret;
    const ok = { endpointId: t.endpointId, payload: Buffer.from("{}") };
    const cases: [string, unknown, string | undefined, grpc.status][] = [
      ["E1001", { ...ok, payload: Buffer.alloc(CAP + 1) }, t.apiKey, grpc.status.INVALID_ARGUMENT],
      ["E1003", { ...ok, endpointId: randomUUID() }, t.apiKey, grpc.status.NOT_FOUND],
      ["E1003", { ...ok, endpointId: other.endpointId }, t.apiKey, grpc.status.NOT_FOUND],
      ["E1004", ok, undefined, grpc.status.UNAUTHENTICATED],
      ["E1004", ok, readOnly, grpc.status.PERMISSION_DENIED],
      ["E1006", { ...ok, endpointId: "x" }, t.apiKey, grpc.status.INVALID_ARGUMENT],
      ["E1006", { ...ok, headers: { "webhook-id": "1" } }, t.apiKey, grpc.status.INVALID_ARGUMENT],
      ["E1007", { ...ok, endpointId: disabled }, t.apiKey, grpc.status.FAILED_PRECONDITION],
    ];
    for (const [code, request, token, status] of cases) {
      const err = await call(request, token);
      expect([code, err.code, errorInfos(err).map((i) => [i.reason, i.domain])]).toEqual([code, status, [[code, "kapsel.dev"]]]);
    }
    expect(await countEvents(db, t.endpointId)).toBe(0);
  });
});
