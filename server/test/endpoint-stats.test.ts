// GetEndpointStats: an endpoint's attempts, deliveries and latency percentiles per time bucket,
// from real deliveries, checked against the attempts GetEvent reports; its bounds (31 days, 500
// buckets), its access rules and tenant isolation.
import { Code, ConnectError } from "@connectrpc/connect";
import { timestampDate, timestampFromDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDestination, eventReaching, ingest, kapselCode, managementClient } from "../../test/support/delivery.ts";
import { rpc } from "../../test/support/rpc.ts";
import { startTestServer, type TestServer } from "../../test/support/server.ts";
import { failTimes, startSink, type Sink } from "../../test/support/sink.ts";
import { statsWindow } from "../src/management/endpoint-stats.ts";

let server: TestServer;
let sink: Sink;
beforeAll(async () => {
  server = await startTestServer({ KAPSEL_RETRY_BASE_MS: "20" });
  sink = await startSink(failTimes(1, 503));
});
afterAll(async () => {
  await server?.stop();
  await sink?.close();
});

async function failure(call: Promise<unknown>): Promise<{ code: Code; kapsel: string | undefined }> {
  const err = await call.then(() => undefined, (e: unknown) => e);
  if (!(err instanceof ConnectError)) throw new Error(`expected a ConnectError, got ${String(err)}`);
  return { code: err.code, kapsel: kapselCode(err) };
}

/** percentile_disc: the smallest value whose cumulative share reaches p. */
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)]!;
}

describe("GetEndpointStats over real deliveries", () => {
  it("counts every attempt and delivery in the bucket it started in, with the exact latency percentiles", async () => {
    const d = await createDestination(server.url, sink.url);
    const events = [];
    for (let i = 0; i < 4; i++) events.push(await ingest(server.url, d.endpointId, `{"n":${i}}`));
    const done = await Promise.all(events.map((id) => eventReaching(server.url, d.apiKey, id, "EVENT_STATUS_DELIVERED")));
    const attempts = done.flatMap((e) => e.attempts as { startedAt: string; durationMs?: number; outcome: string }[]);
    expect(attempts).toHaveLength(8);

    const client = managementClient(server.url, d.apiKey);
    const until = new Date(Date.now() + 60_000);
    const stats = await client.getEndpointStats({
      endpointId: d.endpointId,
      since: timestampFromDate(new Date(until.getTime() - 3600_000)),
      until: timestampFromDate(until),
      bucketSeconds: 60,
    });
    expect(stats.endpointId).toBe(d.endpointId);
    expect(stats.bucketSeconds).toBe(60);
    const starts = stats.buckets.map((b) => timestampDate(b.start!).getTime());
    expect(starts.every((s, i) => s % 60_000 === 0 && (i === 0 || s - starts[i - 1]! === 60_000))).toBe(true);
    expect(stats.buckets.length).toBe(Math.ceil((until.getTime() - starts[0]!) / 60_000));

    // The same figures computed here from the attempts themselves.
    const expected = new Map<number, { attempts: number; delivered: number; durations: number[] }>();
    for (const a of attempts) {
      const start = Math.floor(Date.parse(a.startedAt) / 60_000) * 60_000;
      const b = expected.get(start) ?? { attempts: 0, delivered: 0, durations: [] };
      b.attempts++;
      if (a.outcome === "ATTEMPT_OUTCOME_DELIVERED") b.delivered++;
      b.durations.push(a.durationMs ?? 0);
      expected.set(start, b);
    }
    const actual = stats.buckets.filter((b) => b.attempts > 0).map((b) => ({
      start: timestampDate(b.start!).getTime(),
      attempts: b.attempts,
      delivered: b.delivered,
      p50: b.latencyP50Ms,
      p95: b.latencyP95Ms,
    }));
    expect(actual).toEqual(
      [...expected.entries()].sort(([a], [b]) => a - b).map(([start, b]) => ({
        start,
        attempts: b.attempts,
        delivered: b.delivered,
        p50: percentile(b.durations, 0.5),
        p95: percentile(b.durations, 0.95),
      })),
    );
    expect(stats.buckets.reduce((n, b) => n + b.attempts, 0)).toBe(8);
    expect(stats.buckets.reduce((n, b) => n + b.delivered, 0)).toBe(4);
    expect(stats.buckets.filter((b) => b.attempts === 0).every((b) => b.delivered === 0 && b.latencyP50Ms === 0 && b.latencyP95Ms === 0)).toBe(true);
  });

  it("without a range it covers the last 24 hours in buckets of 30 minutes", async () => {
    const d = await createDestination(server.url, sink.url);
    const before = Date.now();
    const stats = await managementClient(server.url, d.apiKey).getEndpointStats({ endpointId: d.endpointId });
    expect(stats.bucketSeconds).toBe(1800);
    const first = timestampDate(stats.buckets[0]!.start!).getTime();
    expect(first % 1_800_000).toBe(0);
    expect(first).toBeLessThanOrEqual(before - 86_400_000);
    expect(first).toBeGreaterThan(before - 86_400_000 - 1_800_000);
    const lastEnd = timestampDate(stats.buckets.at(-1)!.start!).getTime() + 1_800_000;
    expect(lastEnd).toBeGreaterThanOrEqual(before);
    expect(stats.buckets.every((b) => b.attempts === 0)).toBe(true);
  });
});

describe("GetEndpointStats bounds and access", () => {
  let d: Awaited<ReturnType<typeof createDestination>>;
  beforeAll(async () => {
    d = await createDestination(server.url, sink.url);
  });

  it("a range longer than 31 days, more than 500 buckets, or an empty range is E1006", async () => {
    const client = managementClient(server.url, d.apiKey);
    const now = Date.now();
    const cases = [
      { since: timestampFromMs(now - 32 * 86_400_000), until: timestampFromMs(now) },
      { since: timestampFromMs(now - 86_400_000), until: timestampFromMs(now), bucketSeconds: 60 },
      { since: timestampFromMs(now), until: timestampFromMs(now) },
      { since: timestampFromMs(now), until: timestampFromMs(now - 1000) },
    ];
    for (const c of cases) {
      expect(await failure(client.getEndpointStats({ endpointId: d.endpointId, ...c }))).toEqual({ code: Code.InvalidArgument, kapsel: "E1006" });
    }
    // Exactly 31 days in buckets of 2 hours (372 buckets) is allowed.
    const ok = await client.getEndpointStats({ endpointId: d.endpointId, since: timestampFromMs(now - 31 * 86_400_000), until: timestampFromMs(now), bucketSeconds: 7200 });
    expect(ok.buckets.length).toBeLessThanOrEqual(500);
  });

  it("a malformed id is E1006; an unknown or another tenant's endpoint is E1003", async () => {
    const client = managementClient(server.url, d.apiKey);
    expect(await failure(client.getEndpointStats({ endpointId: "nope" }))).toEqual({ code: Code.InvalidArgument, kapsel: "E1006" });
    const other = await createDestination(server.url, sink.url);
    expect(await failure(client.getEndpointStats({ endpointId: other.endpointId }))).toEqual({ code: Code.NotFound, kapsel: "E1003" });
    expect(await failure(client.getEndpointStats({ endpointId: "0190a3b4-1c2d-7e8f-9a0b-1c2d3e4f5a6b" }))).toEqual({ code: Code.NotFound, kapsel: "E1003" });
  });

  it("needs a key with read or manage: none is E1004, an ingest-only key is PermissionDenied, read works", async () => {
    expect((await rpc(server.url, "GetEndpointStats", { endpointId: d.endpointId })).status).toBe(401);
    const ingestKey = (await rpc(server.url, "CreateApiKey", { name: "i", scopes: ["SCOPE_INGEST"] }, d.apiKey)).body.secret;
    expect((await rpc(server.url, "GetEndpointStats", { endpointId: d.endpointId }, ingestKey)).status).toBe(403);
    const readKey = (await rpc(server.url, "CreateApiKey", { name: "r", scopes: ["SCOPE_READ"] }, d.apiKey)).body.secret;
    expect((await rpc(server.url, "GetEndpointStats", { endpointId: d.endpointId }, readKey)).status).toBe(200);
  });
});

describe("statsWindow", () => {
  it("aligns the first bucket to a multiple of the width and counts buckets to cover the range", () => {
    expect(statsWindow({ since: timestampFromMs(90_000), until: timestampFromMs(250_000), bucketSeconds: 60 }, 0)).toEqual({ startMs: 60_000, bucketSeconds: 60, buckets: 4 });
    expect(statsWindow({ since: timestampFromMs(0), until: timestampFromMs(500 * 60_000), bucketSeconds: 60 }, 0).buckets).toBe(500);
    expect(() => statsWindow({ since: timestampFromMs(1), until: timestampFromMs(500 * 60_000 + 1), bucketSeconds: 60 }, 0)).toThrow(/at most 500/);
  });

  it("defaults to 48 buckets of at least a minute", () => {
    expect(statsWindow({ since: undefined, until: undefined, bucketSeconds: 0 }, 86_400_000 * 10).bucketSeconds).toBe(1800);
    expect(statsWindow({ since: timestampFromMs(0), until: timestampFromMs(600_000), bucketSeconds: 0 }, 0).bucketSeconds).toBe(60);
  });
});
