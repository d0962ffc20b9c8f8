// Ingest's metrics after a known sequence of requests on each path: messages by path and result
// (`ok`, `duplicate`, an E-code), the events they made (one per subscribed endpoint when a message
// fans out), the acknowledgement latency histogram and the messages per group-commit statement,
// with exact counts, read from the server's metrics listener.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEndpoint, INGEST_ONLY, postIngest } from "../../test/support/ingest.ts";
import { samples, scrape } from "../../test/support/metrics.ts";
import { createTenant, rpc } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer(INGEST_ONLY);
});
afterAll(async () => {
  await server?.stop();
});

describe("ingest metrics", () => {
  it("count messages by path and result, the events they made, latency and group-commit sizes", async () => {
    const t = await createTenant(server.url, ADMIN_TOKEN);
    const endpointId = await createEndpoint(server.url, t.apiKey);
    // A second endpoint: a fanned-out message (no endpoint named) makes an event for each.
    await createEndpoint(server.url, t.apiKey);
    const source = await rpc(server.url, "CreateSource", { name: "shop" }, t.apiKey);
    expect(source.status).toBe(200);
    const b64 = (s: string) => Buffer.from(s).toString("base64");

    // Sequential, so every commit is its own statement and the statement sizes are known.
    expect((await postIngest(server.url, endpointId, "1")).status).toBe(202);
    expect((await postIngest(server.url, endpointId, "2", { "idempotency-key": "m" })).status).toBe(202);
    expect((await postIngest(server.url, endpointId, "3", { "idempotency-key": "m" })).status).toBe(200);
    expect((await postIngest(server.url, "00000000-0000-4000-8000-000000000000", "4")).status).toBe(404);
    const viaSource = await fetch(`${server.url}/ingest/sources/${source.body.source.id}`, { method: "POST", body: "{}" });
    expect(viaSource.status).toBe(202);
    expect((await rpc(server.url, "Ingest", { endpointId, payload: b64("5") }, t.apiKey)).status).toBe(200);
    expect((await rpc(server.url, "Ingest", { endpointId, payload: b64("6"), idempotencyKey: "m" }, t.apiKey)).body.duplicate).toBe(true);
    expect((await rpc(server.url, "Ingest", { endpointId: "x", payload: "" }, t.apiKey)).status).toBe(400);
    expect((await rpc(server.url, "Ingest", { eventType: "order.paid", payload: b64("7") }, t.apiKey)).body.eventIds).toHaveLength(2);
    const batch = await rpc(server.url, "IngestBatch", {
      events: [
        { endpointId, payload: "", idempotencyKey: "b" },
        { endpointId, payload: "", idempotencyKey: "b" },
        { endpointId, payload: "", idempotencyKey: "m" },
        { endpointId: "00000000-0000-4000-8000-000000000000", payload: "" },
      ],
    }, t.apiKey);
    expect(batch.status).toBe(200);

    const m = samples(await scrape(server));
    const messages = (path: string, result: string) => m.get(`kapsel_ingest_messages_total{path="${path}",result="${result}"}`);
    expect([messages("gateway", "ok"), messages("gateway", "duplicate"), messages("gateway", "E1003")]).toEqual([2, 1, 1]);
    expect(messages("source_gateway", "ok")).toBe(1);
    expect([messages("ingest", "ok"), messages("ingest", "duplicate"), messages("ingest", "E1006")]).toEqual([2, 1, 1]);
    // A batch counts each message: one new, two duplicates (in the batch, and of the earlier "m"),
    // one for an unknown endpoint.
    expect([messages("ingest_batch", "ok"), messages("ingest_batch", "duplicate"), messages("ingest_batch", "E1003")]).toEqual([1, 2, 1]);

    // Events: one per new endpoint-targeted message, two per fanned-out one.
    const events = (path: string) => m.get(`kapsel_ingest_events_total{path="${path}"}`);
    expect([events("gateway"), events("source_gateway"), events("ingest"), events("ingest_batch")]).toEqual([2, 2, 3, 1]);

    // Latency is observed for acknowledged requests (new or duplicate).
    expect(m.get('kapsel_ingest_duration_seconds_count{path="gateway"}')).toBe(3);
    expect(m.get('kapsel_ingest_duration_seconds_count{path="source_gateway"}')).toBe(1);
    expect(m.get('kapsel_ingest_duration_seconds_count{path="ingest"}')).toBe(3);
    expect(m.get('kapsel_ingest_duration_seconds_count{path="ingest_batch"}')).toBe(1);
    expect(m.get('kapsel_ingest_duration_seconds_bucket{le="+Inf",path="gateway"}')).toBe(3);
    expect(m.get('kapsel_ingest_duration_seconds_sum{path="gateway"}')).toBeGreaterThan(0);

    // Eight single-message statements and one of three (the batch's known-endpoint messages).
    expect(m.get("kapsel_ingest_group_commit_messages_count{}")).toBe(8);
    expect(m.get("kapsel_ingest_group_commit_messages_sum{}")).toBe(10);
    expect(m.get('kapsel_ingest_group_commit_messages_bucket{le="1"}')).toBe(7);
    expect(m.get('kapsel_ingest_group_commit_messages_bucket{le="5"}')).toBe(8);
  });
});
