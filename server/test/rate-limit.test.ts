// Per-tenant ingest rate limiting: the token bucket with an injected clock, then E1005 end to end
// after UpdateTenant lowers a tenant's limit — 429 with Retry-After on the gateway,
// ResourceExhausted with RetryInfo on the RPCs (Connect JSON and @grpc/grpc-js).
import * as grpc from "@grpc/grpc-js";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RateLimiter, type Limit } from "../src/ingest/rate-limiter.ts";
import { connect } from "../../test/support/database.ts";
import { bearer, errorInfos, failure, unary } from "../../test/support/grpc.ts";
import { ingestClient, retryInfos } from "../../test/support/grpc-ingest.ts";
import { countEvents, createEndpoint, INGEST_ONLY, postIngest } from "../../test/support/ingest.ts";
import { createTenant, errorCode, rpc } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";

describe("RateLimiter (token bucket, injected clock)", () => {
  function limiter(limits: Record<string, Limit>, refreshMs = 10_000) {
    let now = 1_000_000;
    const reads: string[] = [];
    const rl = new RateLimiter(async (tenant) => {
      reads.push(tenant);
      return limits[tenant]!;
    }, { now: () => now, refreshMs });
    return { rl, reads, advance: (ms: number) => (now += ms) };
  }

  it("a new tenant starts with a full burst, then waits for refill", async () => {
    const { rl } = limiter({ t: { perSecond: 2, burst: 3 } });
    expect([await rl.take("t"), await rl.take("t"), await rl.take("t")]).toEqual([0, 0, 0]);
    expect(await rl.take("t")).toBe(500);
  });

  it("refills at the tenant's rate and never beyond the burst", async () => {
    const { rl, advance } = limiter({ t: { perSecond: 4, burst: 2 } });
    await rl.take("t", 2);
    advance(250);
    expect(await rl.take("t")).toBe(0);
    expect(await rl.take("t")).toBe(250);
    advance(60_000);
    expect(await rl.take("t", 2)).toBe(0);
    expect(await rl.take("t")).toBe(250);
  });

  it("answers the delay until enough tokens are there, and takes nothing when refusing", async () => {
    const { rl, advance } = limiter({ t: { perSecond: 10, burst: 10 } });
    await rl.take("t", 10);
    advance(100); // one token back
    expect(await rl.take("t", 5)).toBe(400);
    expect(await rl.take("t", 5)).toBe(400); // the refusal took nothing
    advance(400);
    expect(await rl.take("t", 5)).toBe(0);
    expect(await rl.take("t", 1)).toBe(100);
  });

  it("the delay is rounded up to whole milliseconds and is at least 1", async () => {
    const { rl, advance } = limiter({ t: { perSecond: 3, burst: 1 } });
    await rl.take("t");
    expect(await rl.take("t")).toBe(334);
    advance(333);
    expect(await rl.take("t")).toBe(1);
  });

  it("a request bigger than the burst goes through on a full bucket and leaves a debt to wait out", async () => {
    const { rl, advance } = limiter({ t: { perSecond: 10, burst: 5 } });
    expect(await rl.take("t", 20)).toBe(0);
    // 15 tokens in debt: 5 more needed for the next batch of 20 means 2 s until the bucket is full.
    expect(await rl.take("t", 20)).toBe(2000);
    advance(1999);
    expect(await rl.take("t", 20)).toBe(1);
    advance(1);
    expect(await rl.take("t", 20)).toBe(0);
  });

  it("tenants have separate buckets", async () => {
    const { rl } = limiter({ a: { perSecond: 1, burst: 1 }, b: { perSecond: 1, burst: 1 } });
    expect(await rl.take("a")).toBe(0);
    expect(await rl.take("a")).toBe(1000);
    expect(await rl.take("b")).toBe(0);
  });

  it("a request that read the clock before a slow limit read does not drain tokens of the ones after it", async () => {
    // The limit read is slow: a second request is answered meanwhile, and the first comes back
    // with its older clock reading. Time must not run backwards for the bucket.
    let now = 0;
    let release!: () => void;
    const slowRead = new Promise<void>((r) => (release = r));
    let reads = 0;
    const rl = new RateLimiter(async () => {
      if (reads++ === 1) await slowRead;
      return { perSecond: 1000, burst: 1000 };
    }, { now: () => now, refreshMs: 10 });
    expect(await rl.take("t", 1000)).toBe(0); // drains the bucket at t = 0
    now = 20; // past the refresh interval: the next take re-reads the limit (slowly)
    const first = rl.take("t", 1);
    now = 1000; // the bucket is full again by now; a second request takes 999 of the 1000 tokens
    expect(await rl.take("t", 999)).toBe(0);
    release();
    // One token is left, and the first request (clock read at t = 20) may have it.
    expect(await first).toBe(0);
  });

  it("a flood of requests reads a tenant's limit once, and a stale limit is re-read in the background while requests go on", async () => {
    let now = 0;
    let reads = 0;
    let release!: () => void;
    let gate = new Promise<void>((r) => (release = r));
    const rl = new RateLimiter(async () => {
      reads++;
      await gate;
      return { perSecond: 1, burst: 1000 };
    }, { now: () => now, refreshMs: 10_000 });
    // Never read: everyone waits for the one read.
    const first = Array.from({ length: 500 }, () => rl.take("t"));
    release();
    expect(await Promise.all(first)).toEqual(Array(500).fill(0));
    expect(reads).toBe(1);
    // Past the interval: one read starts, and requests are answered without waiting for it.
    gate = new Promise<void>((r) => (release = r));
    now = 10_001;
    const during = await Promise.all(Array.from({ length: 520 }, () => rl.take("t")));
    expect(during.filter((d) => d === 0)).toHaveLength(510); // 500 left + 10 refilled; the last 10 wait
    expect(reads).toBe(2);
    release();
    await new Promise((r) => setTimeout(r, 0));
    // Read: no new read until the next interval.
    await rl.take("t");
    expect(reads).toBe(2);
  });

  it("a change that comes while a limit is being read is not lost: the next request reads again", async () => {
    let limit: Limit = { perSecond: 1, burst: 100 };
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let reads = 0;
    const rl = new RateLimiter(async () => {
      const seen = limit;
      if (reads++ === 0) await gate;
      return seen;
    }, { now: () => 0 });
    const before = rl.take("t", 50);
    limit = { perSecond: 1, burst: 1 };
    rl.invalidate("t");
    release();
    expect(await before).toBe(0); // it came before the change, under the old limit
    // The old read answered its waiter but was not kept: the new burst of 1 applies.
    expect(await rl.take("t")).toBe(0);
    expect(await rl.take("t")).toBeGreaterThan(0);
    expect(reads).toBe(2);
  });

  it("re-reads a tenant's limit after the refresh interval or at once when invalidated", async () => {
    const limits = { t: { perSecond: 1, burst: 100 } };
    const { rl, reads, advance } = limiter(limits, 10_000);
    await rl.take("t");
    await rl.take("t");
    expect(reads).toEqual(["t"]);
    limits.t = { perSecond: 1, burst: 1 };
    rl.invalidate("t");
    // The new burst caps the tokens already there.
    expect(await rl.take("t")).toBe(0);
    expect(await rl.take("t")).toBe(1000);
    expect(reads).toEqual(["t", "t"]);
    advance(10_001);
    await rl.take("t");
    expect(reads).toEqual(["t", "t", "t"]);
  });
});

let server: TestServer;
let db: pg.Client;
let grpcIngest: grpc.Client;
beforeAll(async () => {
  server = await startTestServer(INGEST_ONLY);
  db = await connect(server.databaseUrl);
  grpcIngest = ingestClient(`127.0.0.1:${server.port}`);
});
afterAll(async () => {
  grpcIngest?.close();
  await db?.end();
  await server?.stop();
});

/** A tenant whose limit is lowered to `burst` events and then a slow trickle (one per 100 s), so a
 * test never sees a token come back while it runs. */
async function throttledTenant(burst: number) {
  const tenant = await createTenant(server.url, ADMIN_TOKEN);
  const endpointId = await createEndpoint(server.url, tenant.apiKey);
  // One request before the change, so the limiter already holds a (generous) bucket for the tenant.
  expect((await postIngest(server.url, endpointId, "{}")).status).toBe(202);
  const upd = await rpc(server.url, "UpdateTenant", { tenantId: tenant.id, rateLimitPerSecond: 0.01, rateLimitBurst: burst }, ADMIN_TOKEN);
  expect(upd.body.tenant).toMatchObject({ rateLimitPerSecond: 0.01, rateLimitBurst: burst });
  return { ...tenant, endpointId };
}

describe("E1005 when a tenant is over its limit", () => {
  it("the gateway answers 429 with Retry-After and stores nothing for the refused request", async () => {
    const t = await throttledTenant(2);
    expect((await postIngest(server.url, t.endpointId, "{}")).status).toBe(202);
    expect((await postIngest(server.url, t.endpointId, "{}")).status).toBe(202);
    const r = await postIngest(server.url, t.endpointId, "{}", { "x-request-id": "throttled-1" });
    expect([r.status, r.body]).toEqual([429, { code: "E1005", message: expect.any(String), request_id: "throttled-1" }]);
    const retryAfter = Number(r.headers["retry-after"]);
    expect(Number.isInteger(retryAfter)).toBe(true);
    // One token at 0.01/s is 100 s away (less whatever trickled in during the test).
    expect(retryAfter).toBeGreaterThan(90);
    expect(retryAfter).toBeLessThanOrEqual(100);
    expect(await countEvents(db, t.endpointId)).toBe(3);
  });

  it("the limit is per tenant: another tenant is not affected", async () => {
    const t = await throttledTenant(1);
    expect((await postIngest(server.url, t.endpointId, "{}")).status).toBe(202);
    expect((await postIngest(server.url, t.endpointId, "{}")).status).toBe(429);
    const other = await createTenant(server.url, ADMIN_TOKEN);
    expect((await postIngest(server.url, await createEndpoint(server.url, other.apiKey), "{}")).status).toBe(202);
  });

  it("Ingest over Connect answers resource_exhausted with ErrorInfo E1005 and RetryInfo", async () => {
    const t = await throttledTenant(2);
    const body = { endpointId: t.endpointId, payload: Buffer.from("{}").toString("base64") };
    expect((await rpc(server.url, "Ingest", body, t.apiKey)).status).toBe(200);
    expect((await rpc(server.url, "Ingest", body, t.apiKey)).status).toBe(200);
    const r = await rpc(server.url, "Ingest", body, t.apiKey);
    expect([r.status, r.body.code, errorCode(r.body)]).toEqual([429, "resource_exhausted", "E1005"]);
    const retry = r.body.details.find((d: { type: string }) => d.type === "google.rpc.RetryInfo");
    const seconds = Number(/^(\d+(?:\.\d+)?)s$/.exec(retry.debug.retryDelay)?.[1]);
    expect(seconds).toBeGreaterThan(90);
    expect(seconds).toBeLessThanOrEqual(100);
    expect(await countEvents(db, t.endpointId)).toBe(3);
  });

  it("the gateway and the RPCs draw on one bucket per tenant", async () => {
    const t = await throttledTenant(1);
    expect((await postIngest(server.url, t.endpointId, "{}")).status).toBe(202);
    const r = await rpc(server.url, "Ingest", { endpointId: t.endpointId, payload: "" }, t.apiKey);
    expect(errorCode(r.body)).toBe("E1005");
  });

  it("IngestBatch is charged per event and refused as a whole", async () => {
    const t = await throttledTenant(3);
    const item = { endpointId: t.endpointId, payload: "" };
    const r = await rpc(server.url, "IngestBatch", { events: [item, item, item, item] }, t.apiKey);
    // A batch bigger than the burst passes on a full bucket (leaving a debt) rather than never.
    expect(r.status).toBe(200);
    const next = await rpc(server.url, "IngestBatch", { events: [item] }, t.apiKey);
    expect([next.status, errorCode(next.body)]).toEqual([429, "E1005"]);
    expect(await countEvents(db, t.endpointId)).toBe(5);
  });

  it("Ingest over gRPC answers RESOURCE_EXHAUSTED with ErrorInfo E1005 and RetryInfo", async () => {
    const t = await throttledTenant(1);
    const request = { endpointId: t.endpointId, payload: Buffer.from("{}") };
    await unary(grpcIngest, "Ingest", request, bearer(t.apiKey));
    const err = await failure(unary(grpcIngest, "Ingest", request, bearer(t.apiKey)));
    expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(errorInfos(err).map((i) => i.reason)).toEqual(["E1005"]);
    const [retry] = retryInfos(err);
    const seconds = Number(retry!.retryDelay!.seconds);
    expect(seconds).toBeGreaterThanOrEqual(90);
    expect(seconds).toBeLessThanOrEqual(100);
  });
});
