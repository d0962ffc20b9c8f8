// The HTTP gateway as a plain webhook sender sees it: POST raw bytes to /ingest/{endpoint_id} over
// HTTP/1.1 or HTTP/2, get 202 {event_id} once the event is durable; the stored event holds the exact
// bytes, the content type and the headers the endpoint keeps.
import http2 from "node:http2";
import net from "node:net";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "../../test/support/database.ts";
import { allBytes, countEvents, createEndpoint, eventRow, INGEST_ONLY, postIngest, postIngestH2, postStreamed } from "../../test/support/ingest.ts";
import { createTenant, rpc } from "../../test/support/rpc.ts";
import { scrape as scrapeMetrics } from "../../test/support/metrics.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let server: TestServer;
let db: pg.Client;
let tenant: { id: string; apiKey: string };
beforeAll(async () => {
  server = await startTestServer({ ...INGEST_ONLY, KAPSEL_KEPT_HEADERS: "X-Team-Id, x-trace-id" });
  db = await connect(server.databaseUrl);
  tenant = await createTenant(server.url, ADMIN_TOKEN);
});
afterAll(async () => {
  await db?.end();
  await server?.stop();
});

describe("POST /ingest/{endpoint_id}", () => {
  it("answers 202 {event_id} after the event and its delivery job are stored, bytes exactly as received", async () => {
    const endpointId = await createEndpoint(server.url, tenant.apiKey);
    const body = allBytes();
    const r = await postIngest(server.url, endpointId, body, { "content-type": "application/x-thing; v=1", "x-request-id": "sender-req-1" });
    expect(r.status).toBe(202);
    expect(r.headers["content-type"]).toBe("application/json");
    expect(Object.keys(r.body)).toEqual(["event_id", "message_id"]);
    expect(r.body.event_id).toMatch(UUID);

    const row = await eventRow(db, r.body.event_id);
    expect(row).toMatchObject({ tenant_id: tenant.id, endpoint_id: endpointId, content_type: "application/x-thing; v=1", idempotency_key: null, request_id: "sender-req-1" });
    expect(Buffer.compare(row!.payload, body)).toBe(0);
    const job = await db.query("SELECT endpoint_id FROM delivery_jobs WHERE event_id = $1", [r.body.event_id]);
    expect(job.rows).toEqual([{ endpoint_id: endpointId }]);
  });

  it("stores a streamed (chunked) body byte for byte", async () => {
    const endpointId = await createEndpoint(server.url, tenant.apiKey);
    const body = Buffer.concat(Array.from({ length: 50 }, () => allBytes()));
    const chunks = Array.from({ length: 100 }, (_, i) => body.subarray(i * 256, (i + 1) * 256));
    const r = await postStreamed(server.url, endpointId, chunks, { "content-type": "application/octet-stream" });
    expect(r.status).toBe(202);
    expect(Buffer.compare((await eventRow(db, r.body.event_id))!.payload, body)).toBe(0);
  });

  it("stores application/octet-stream when the sender names no content type", async () => {
    const endpointId = await createEndpoint(server.url, tenant.apiKey);
    const r = await postIngest(server.url, endpointId, new Uint8Array([1, 2, 3]));
    expect(r.status).toBe(202);
    expect((await eventRow(db, r.body.event_id))!.content_type).toBe("application/octet-stream");
  });

  it("keeps the default headers, KAPSEL_KEPT_HEADERS and the endpoint's kept_headers, and nothing else", async () => {
    const endpointId = await createEndpoint(server.url, tenant.apiKey, { keptHeaders: ["X-Endpoint-Extra"] });
    const r = await postIngest(server.url, endpointId, '{"a":1}', {
      "content-type": "application/json",
      "x-github-event": "push",
      "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
      "x-shopify-topic": "orders/create",
      "x-team-id": "team-7",
      "x-trace-id": "trace-9",
      "x-endpoint-extra": "yes",
      "x-unlisted": "dropped",
      authorization: "Bearer secret",
      cookie: "session=1",
      "user-agent": "GitHub-Hookshot/abc",
    });
    expect(r.status).toBe(202);
    expect((await eventRow(db, r.body.event_id))!.headers).toEqual({
      "x-github-event": "push",
      "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
      "x-shopify-topic": "orders/create",
      "x-team-id": "team-7",
      "x-trace-id": "trace-9",
      "x-endpoint-extra": "yes",
    });
  });

  it("an endpoint's kept_headers cannot keep credentials, transport or webhook-* headers", async () => {
    // Names that could never be forwarded are refused outright; credentials are dropped at ingest.
    for (const name of ["webhook-id", "webhook-signature", "transfer-encoding", "expect"]) {
      const refused = await rpc(server.url, "CreateEndpoint", { url: "https://93.184.216.34/hook", keptHeaders: ["x-fine", name] }, tenant.apiKey);
      expect(refused.status, name).toBe(400);
      expect(refused.body.message).toContain(name);
    }
    const endpointId = await createEndpoint(server.url, tenant.apiKey, { keptHeaders: ["authorization", "cookie", "x-fine"] });
    const r = await postIngest(server.url, endpointId, "{}", {
      authorization: "Bearer secret",
      cookie: "a=b",
      "webhook-id": "msg_1",
      "webhook-signature": "v1,AAAA",
      "x-fine": "kept",
    });
    expect(r.status).toBe(202);
    expect((await eventRow(db, r.body.event_id))!.headers).toEqual({ "x-fine": "kept" });
  });

  it("a kept_headers change through UpdateEndpoint applies to the next request", async () => {
    const endpointId = await createEndpoint(server.url, tenant.apiKey);
    const before = await postIngest(server.url, endpointId, "{}", { "x-late": "1" });
    expect((await eventRow(db, before.body.event_id))!.headers).toEqual({});
    const upd = await rpc(server.url, "UpdateEndpoint", { endpointId, keptHeaders: ["x-late"], updateKeptHeaders: true }, tenant.apiKey);
    expect(upd.status).toBe(200);
    const after = await postIngest(server.url, endpointId, "{}", { "x-late": "2" });
    expect((await eventRow(db, after.body.event_id))!.headers).toEqual({ "x-late": "2" });
  });

  it("works over HTTP/2 with prior knowledge (h2c) on the same port", async () => {
    const endpointId = await createEndpoint(server.url, tenant.apiKey);
    const body = allBytes();
    const headers = { "content-type": "application/x-h2", "x-github-event": "ping", "idempotency-key": "h2-key" };
    const r = await postIngestH2(server.url, endpointId, body, headers);
    expect(r.status).toBe(202);
    expect(r.headers["content-type"]).toBe("application/json");
    const row = await eventRow(db, r.body.event_id);
    expect(row).toMatchObject({ content_type: "application/x-h2", headers: { "x-github-event": "ping" }, idempotency_key: "h2-key" });
    expect(Buffer.compare(row!.payload, body)).toBe(0);
    const again = await postIngestH2(server.url, endpointId, body, headers);
    expect([again.status, again.body]).toEqual([200, { event_id: r.body.event_id, message_id: r.body.message_id, duplicate: true }]);
  });

  it("an HTTP/2 error answer is the same JSON as over HTTP/1.1", async () => {
    const r = await postIngestH2(server.url, "not-a-uuid", Buffer.from("{}"), { "x-request-id": "h2-req" });
    expect([r.status, r.body]).toEqual([400, { code: "E1006", message: expect.any(String), request_id: "h2-req" }]);
  });

  it("a sender that leaves mid-body has nothing stored (HTTP/1.1 and HTTP/2) and does not count as a database outage", async () => {
    const endpointId = await createEndpoint(server.url, tenant.apiKey);
    const scrape = async () => {
      const text = await scrapeMetrics(server);
      const sum = (re: RegExp) => [...text.matchAll(re)].reduce((n, m) => n + Number(m[1]), 0);
      return {
        finished: sum(/^kapsel_http_requests_total\{route="\/ingest\/\{endpoint_id\}",[^}]*\} (\d+)$/gm),
        aborted: sum(/^kapsel_ingest_messages_total\{path="gateway",result="aborted"\} (\d+)$/gm),
        outage: /result="E9001"/.test(text),
      };
    };
    const { finished: finishedBefore, aborted: abortedBefore } = await scrape();
    // HTTP/1.1: 10 of 1000 declared bytes, then the connection closes.
    await new Promise<void>((resolve, reject) => {
      const socket = net.connect(server.port, "127.0.0.1", () => {
        socket.write(`POST /ingest/${endpointId} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789`, () => {
          setTimeout(() => socket.destroy(), 50);
        });
      });
      socket.on("close", () => resolve());
      socket.on("error", reject);
    });
    // HTTP/2: part of a body, then the stream is reset without END_STREAM. (stream.close() would
    // not do: Node's client ends the stream, completing the body, before its RST_STREAM.)
    await new Promise<void>((resolve, reject) => {
      const session = http2.connect(server.url);
      session.on("error", reject);
      const stream = session.request({ ":method": "POST", ":path": `/ingest/${endpointId}` });
      stream.on("error", () => {});
      stream.write(Buffer.alloc(100, 0x61), () => {
        setTimeout(() => {
          stream.on("close", () => {
            session.close();
            resolve();
          });
          stream.destroy();
        }, 50);
      });
    });
    // Once the server has finished both requests: nothing stored, counted as aborted, no outage.
    while ((await scrape()).finished < finishedBefore + 2) await new Promise((r) => setTimeout(r, 20));
    const after = await scrape();
    expect([after.aborted - abortedBefore, after.outage]).toEqual([2, false]);
    expect(await countEvents(db, endpointId)).toBe(0);
    expect((await postIngest(server.url, endpointId, "{}")).status).toBe(202);
  });
});
