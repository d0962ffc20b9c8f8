// /metrics after a known sequence of ingest requests on each path: requests by path and result
// code, the latency histogram, group-commit batch sizes and duplicates, with exact counts.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEndpoint, INGEST_ONLY, postIngest } from "../../test/support/ingest.ts";
import { createTenant, rpc } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer(INGEST_ONLY);
});
afterAll(async () => {
  await server?.stop();
});

/** Prometheus text → `name{k="v",…}` (labels sorted) → value. */
async function scrape(): Promise<Map<string, number>> {
  const res = await fetch(`${server.url}/metrics`);
  expect(res.status).toBe(200);
  const samples = new Map<string, number>();
  for (const line of (await res.text()).split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = [...(m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map(([, k, v]) => `${k}="${v}"`).sort();
    samples.set(`${m[1]}{${labels.join(",")}}`, Number(m[3]));
  }
  return samples;
}

describe("ingest metrics", () => {
  it("count requests by path and code, latency, batch sizes and duplicates", async () => {
    const t = await createTenant(server.url, ADMIN_TOKEN);
    const endpointId = await createEndpoint(server.url, t.apiKey);
    const b64 = (s: string) => Buffer.from(s).toString("base64");

    // Sequential, so every commit is its own batch and the batch sizes are known.
    expect((await postIngest(server.url, endpointId, "1")).status).toBe(202);
    expect((await postIngest(server.url, endpointId, "2", { "idempotency-key": "m" })).status).toBe(202);
    expect((await postIngest(server.url, endpointId, "3", { "idempotency-key": "m" })).status).toBe(200);
    expect((await postIngest(server.url, "00000000-0000-4000-8000-000000000000", "4")).status).toBe(404);
    expect((await rpc(server.url, "Ingest", { endpointId, payload: b64("5") }, t.apiKey)).status).toBe(200);
    expect((await rpc(server.url, "Ingest", { endpointId, payload: b64("6"), idempotencyKey: "m" }, t.apiKey)).body.duplicate).toBe(true);
    expect((await rpc(server.url, "Ingest", { endpointId: "x", payload: "" }, t.apiKey)).status).toBe(400);
    const batch = await rpc(server.url, "IngestBatch", {
      events: [{ endpointId, payload: "", idempotencyKey: "b" }, { endpointId, payload: "", idempotencyKey: "b" }, { endpointId, payload: "", idempotencyKey: "m" }],
    }, t.apiKey);
    expect(batch.status).toBe(200);

    const m = await scrape();
    const requests = (path: string, code: string) => m.get(`kapsel_ingest_requests_total{code="${code}",path="${path}"}`);
    expect([requests("gateway", "ok"), requests("gateway", "duplicate"), requests("gateway", "E1003")]).toEqual([2, 1, 1]);
    expect([requests("ingest", "ok"), requests("ingest", "duplicate"), requests("ingest", "E1006")]).toEqual([1, 1, 1]);
    expect(requests("ingest_batch", "ok")).toBe(1);

    // Latency is observed for acknowledged requests (new or duplicate).
    expect(m.get('kapsel_ingest_duration_seconds_count{path="gateway"}')).toBe(3);
    expect(m.get('kapsel_ingest_duration_seconds_count{path="ingest"}')).toBe(2);
    expect(m.get('kapsel_ingest_duration_seconds_count{path="ingest_batch"}')).toBe(1);
    expect(m.get('kapsel_ingest_duration_seconds_bucket{le="+Inf",path="gateway"}')).toBe(3);
    expect(m.get('kapsel_ingest_duration_seconds_sum{path="gateway"}')).toBeGreaterThan(0);

    // Six single-event commits and one of three.
    expect(m.get("kapsel_ingest_group_commit_rows_count{}")).toBe(6);
    expect(m.get("kapsel_ingest_group_commit_rows_sum{}")).toBe(8);
    expect(m.get('kapsel_ingest_group_commit_rows_bucket{le="1"}')).toBe(5);
    expect(m.get('kapsel_ingest_group_commit_rows_bucket{le="5"}')).toBe(6);

    expect(m.get('kapsel_ingest_duplicates_total{path="gateway"}')).toBe(1);
    expect(m.get('kapsel_ingest_duplicates_total{path="ingest"}')).toBe(1);
    expect(m.get('kapsel_ingest_duplicates_total{path="ingest_batch"}')).toBe(2);
  });
});
