// Events through ManagementService: dead letters and RetryEvent, RecoverEvents over a time window,
// ListEvents filters and cursor pages, WatchEvent, GetEndpointHealth, and tenant isolation.
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventStatus } from "@kapsel/contracts/management";
import { addEndpoint, createDestination, eventReaching, getEvent, ingest, kapselCode, managementClient, until } from "../../test/support/delivery.ts";
import { errorCode, rpc } from "../../test/support/rpc.ts";
import { startTestServer, type TestServer } from "../../test/support/server.ts";
import { alwaysFail, failTimes, startSink, succeed, type Reply, type Sink } from "../../test/support/sink.ts";

let server: TestServer;
const sinks: Sink[] = [];
beforeAll(async () => {
  // Endpoints here fail on purpose many times in a row; keep their circuits closed.
  server = await startTestServer({ KAPSEL_RETRY_BASE_MS: "20", KAPSEL_CIRCUIT_CONSECUTIVE_FAILURES: "1000", KAPSEL_CIRCUIT_MIN_ATTEMPTS: "1000" });
});
afterAll(async () => {
  await server?.stop();
  await Promise.all(sinks.map((s) => s.close()));
});

async function sink(...args: Parameters<typeof startSink>): Promise<Sink> {
  const s = await startSink(...args);
  sinks.push(s);
  return s;
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An RFC 3339 timestamp from Connect JSON (0, 3, 6 or 9 fraction digits) in nanoseconds. */
function nanos(ts: string): bigint {
  const m = /^(.*?)(?:\.(\d+))?Z$/.exec(ts)!;
  return BigInt(Date.parse(`${m[1]}Z`)) * 1_000_000n + BigInt((m[2] ?? "").padEnd(9, "0"));
}

describe("dead letters", () => {
  it("a failed event goes FAILED → PENDING → DELIVERED with RetryEvent, and its attempt numbers continue", async () => {
    const s = await sink(alwaysFail(500));
    const d = await createDestination(server.url, s.url, { maxAttempts: 2 });
    const eventId = await ingest(server.url, d.endpointId);
    const failed = await eventReaching(server.url, d.apiKey, eventId, "EVENT_STATUS_FAILED");
    expect(failed.attempts.map((a: any) => a.attempt)).toEqual([1, 2]);

    s.behaviour = succeed();
    const r = await rpc(server.url, "RetryEvent", { eventId }, d.apiKey);
    expect(r.status).toBe(200);
    expect(r.body.event).toMatchObject({ id: eventId, status: "EVENT_STATUS_PENDING" });
    const delivered = await eventReaching(server.url, d.apiKey, eventId, "EVENT_STATUS_DELIVERED");
    expect(delivered.attempts.map((a: any) => [a.attempt, a.outcome])).toEqual([
      [1, "ATTEMPT_OUTCOME_HTTP_ERROR"],
      [2, "ATTEMPT_OUTCOME_HTTP_ERROR"],
      [3, "ATTEMPT_OUTCOME_DELIVERED"],
    ]);
    expect(delivered.attemptCount).toBe(3);
    expect(s.forEvent(eventId)).toHaveLength(3);
  });

  it("a retried event gets a fresh round of max_attempts before it is dead-lettered again", async () => {
    const s = await sink(alwaysFail(500));
    const d = await createDestination(server.url, s.url, { maxAttempts: 2 });
    const eventId = await ingest(server.url, d.endpointId);
    await eventReaching(server.url, d.apiKey, eventId, "EVENT_STATUS_FAILED");
    expect((await rpc(server.url, "RetryEvent", { eventId }, d.apiKey)).status).toBe(200);
    const again = await until("the second round to fail", async () => {
      const e = await getEvent(server.url, d.apiKey, eventId);
      return e.status === "EVENT_STATUS_FAILED" && e.attempts.length === 4 ? e : undefined;
    });
    expect(again.attempts.map((a: any) => a.attempt)).toEqual([1, 2, 3, 4]);
    expect(s.forEvent(eventId)).toHaveLength(4);
  });

  it("RetryEvent on a delivered or pending event is E2003 FailedPrecondition and changes nothing", async () => {
    const ok = await sink();
    const d = await createDestination(server.url, ok.url);
    const delivered = await ingest(server.url, d.endpointId);
    await eventReaching(server.url, d.apiKey, delivered, "EVENT_STATUS_DELIVERED");
    const r1 = await rpc(server.url, "RetryEvent", { eventId: delivered }, d.apiKey);
    // The Connect protocol carries FailedPrecondition as HTTP 400.
    expect([r1.status, r1.body.code, errorCode(r1.body)]).toEqual([400, "failed_precondition", "E2003"]);

    // Pending: throttled with a Retry-After long enough that the next attempt is well in the future.
    const slow = await sink(() => ({ status: 429, headers: { "retry-after": "3600" }, body: "" }));
    const p = await addEndpoint(server.url, d.apiKey, slow.url);
    const pending = await ingest(server.url, p.endpointId);
    await until("the first attempt to be recorded", async () => {
      const e = await getEvent(server.url, d.apiKey, pending);
      return e.status === "EVENT_STATUS_PENDING" && e.attemptCount === 1 ? e : undefined;
    });
    const r2 = await rpc(server.url, "RetryEvent", { eventId: pending }, d.apiKey);
    expect([r2.body.code, errorCode(r2.body)]).toEqual(["failed_precondition", "E2003"]);
    const e = await getEvent(server.url, d.apiKey, pending);
    expect(e.status).toBe("EVENT_STATUS_PENDING");
    expect(Date.parse(e.nextAttemptAt)).toBeGreaterThan(Date.now() + 60_000);
    expect(slow.forEvent(pending)).toHaveLength(1);
  });

  it("RetryEvent on an unknown or malformed id", async () => {
    const d = await createDestination(server.url, "http://127.0.0.1:9/none");
    const unknown = await rpc(server.url, "RetryEvent", { eventId: "01890000-0000-7000-8000-000000000000" }, d.apiKey);
    expect([unknown.status, errorCode(unknown.body)]).toEqual([404, "E2002"]);
    const bad = await rpc(server.url, "RetryEvent", { eventId: "nope" }, d.apiKey);
    expect([bad.status, errorCode(bad.body)]).toEqual([400, "E1006"]);
  });
});

describe("RecoverEvents", () => {
  it("re-queues the endpoint's failed events received in the window and returns the count; others stay failed", async () => {
    const s = await sink(alwaysFail(503));
    const d = await createDestination(server.url, s.url, { maxAttempts: 1 });
    const other = await addEndpoint(server.url, d.apiKey, s.url, { maxAttempts: 1 });
    const send = async (endpointId: string, n: number) => {
      const ids: string[] = [];
      for (let i = 0; i < n; i++) ids.push(await ingest(server.url, endpointId));
      for (const id of ids) await eventReaching(server.url, d.apiKey, id, "EVENT_STATUS_FAILED");
      return ids;
    };
    const before = await send(d.endpointId, 3);
    await pause(20);
    const inside = await send(d.endpointId, 2);
    const otherInside = await send(other.endpointId, 1);
    await pause(20);
    const after = await send(d.endpointId, 1);

    const since = (await getEvent(server.url, d.apiKey, inside[0]!)).receivedAt;
    const untilTime = (await getEvent(server.url, d.apiKey, after[0]!)).receivedAt;
    s.behaviour = succeed();
    const r = await rpc(server.url, "RecoverEvents", { endpointId: d.endpointId, since, until: untilTime }, d.apiKey);
    expect(r.status).toBe(200);
    expect(r.body.count).toBe(2);

    for (const id of inside) {
      const e = await eventReaching(server.url, d.apiKey, id, "EVENT_STATUS_DELIVERED");
      expect(e.attempts.map((a: any) => [a.attempt, a.statusCode])).toEqual([[1, 503], [2, 200]]);
    }
    for (const id of [...before, ...after]) {
      const e = await getEvent(server.url, d.apiKey, id);
      expect(e.status).toBe("EVENT_STATUS_FAILED");
      expect(e.attempts).toHaveLength(1);
    }
    expect((await getEvent(server.url, d.apiKey, otherInside[0]!)).status).toBe("EVENT_STATUS_FAILED");

    // Nothing failed is left in the window now.
    const again = await rpc(server.url, "RecoverEvents", { endpointId: d.endpointId, since, until: untilTime }, d.apiKey);
    expect(again.body.count ?? 0).toBe(0);
  });

  it("needs `since`, and a known endpoint of the caller's tenant", async () => {
    const d = await createDestination(server.url, "http://127.0.0.1:9/none");
    const noSince = await rpc(server.url, "RecoverEvents", { endpointId: d.endpointId }, d.apiKey);
    expect([noSince.status, errorCode(noSince.body)]).toEqual([400, "E1006"]);
    const unknown = await rpc(server.url, "RecoverEvents", { endpointId: "01890000-0000-7000-8000-000000000000", since: new Date().toISOString() }, d.apiKey);
    expect([unknown.status, errorCode(unknown.body)]).toEqual([404, "E1003"]);
  });
});

describe("ListEvents", () => {
  it("pages through every event exactly once, newest first, including events accepted in one batch", async () => {
    const s = await sink();
    const d = await createDestination(server.url, s.url);
    // Sent concurrently, so group commit stores several in one statement with one received_at.
    const ids = await Promise.all(Array.from({ length: 12 }, (_, i) => ingest(server.url, d.endpointId, `{"i":${i}}`)));
    for (const id of ids) await eventReaching(server.url, d.apiKey, id, "EVENT_STATUS_DELIVERED");

    const seen: any[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await rpc(server.url, "ListEvents", { pageSize: 5, pageToken }, d.apiKey);
      expect(page.status).toBe(200);
      expect(page.body.events.length).toBeLessThanOrEqual(5);
      seen.push(...page.body.events);
      pageToken = page.body.nextPageToken ?? "";
      pages++;
    } while (pageToken && pages < 10);
    expect(seen.map((e) => e.id).sort()).toEqual([...ids].sort());
    expect(pages).toBe(3);
    const order = seen.map((e) => [nanos(e.receivedAt), e.id] as const);
    for (let i = 1; i < order.length; i++) {
      const [t0, id0] = order[i - 1]!;
      const [t1, id1] = order[i]!;
      expect(t0 > t1 || (t0 === t1 && id0 > id1)).toBe(true);
    }
    // Lists carry neither payload nor attempts.
    expect(seen[0].payload).toBeUndefined();
    expect(seen[0].attempts).toBeUndefined();
    expect(seen[0].payloadSize).toBeGreaterThan(0);
  });

  it("filters by status, endpoint and received time", async () => {
    const ok = await sink();
    const bad = await sink(alwaysFail(500));
    const d = await createDestination(server.url, ok.url);
    const b = await addEndpoint(server.url, d.apiKey, bad.url, { maxAttempts: 1 });
    const good1 = await ingest(server.url, d.endpointId);
    const failed1 = await ingest(server.url, b.endpointId);
    await eventReaching(server.url, d.apiKey, good1, "EVENT_STATUS_DELIVERED");
    await eventReaching(server.url, d.apiKey, failed1, "EVENT_STATUS_FAILED");
    await pause(20);
    const good2 = await ingest(server.url, d.endpointId);
    await eventReaching(server.url, d.apiKey, good2, "EVENT_STATUS_DELIVERED");
    const boundary = (await getEvent(server.url, d.apiKey, good2)).receivedAt;

    const list = async (filter: Record<string, unknown>) => {
      const r = await rpc(server.url, "ListEvents", filter, d.apiKey);
      expect(r.status).toBe(200);
      return (r.body.events ?? []).map((e: any) => e.id);
    };
    expect(await list({})).toEqual([good2, failed1, good1]);
    expect(await list({ status: "EVENT_STATUS_FAILED" })).toEqual([failed1]);
    expect(await list({ status: "EVENT_STATUS_DELIVERED" })).toEqual([good2, good1]);
    expect(await list({ status: "EVENT_STATUS_PENDING" })).toEqual([]);
    expect(await list({ endpointId: d.endpointId })).toEqual([good2, good1]);
    expect(await list({ endpointId: b.endpointId, status: "EVENT_STATUS_FAILED" })).toEqual([failed1]);
    expect(await list({ receivedAfter: boundary })).toEqual([good2]);
    expect(await list({ receivedBefore: boundary })).toEqual([failed1, good1]);
    expect(await list({ receivedBefore: boundary, endpointId: d.endpointId })).toEqual([good1]);

    // An event whose attempt is in flight lists as DELIVERING, not PENDING.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const holding = await sink(() => ({ status: 200, body: "ok", after: held }));
    const h = await addEndpoint(server.url, d.apiKey, holding.url);
    const inFlight = await ingest(server.url, h.endpointId);
    await holding.waitFor(1);
    expect(await list({ status: "EVENT_STATUS_DELIVERING" })).toEqual([inFlight]);
    expect(await list({ status: "EVENT_STATUS_PENDING" })).toEqual([]);
    expect((await getEvent(server.url, d.apiKey, inFlight)).status).toBe("EVENT_STATUS_DELIVERING");
    release();
    await eventReaching(server.url, d.apiKey, inFlight, "EVENT_STATUS_DELIVERED");
    expect(await list({ status: "EVENT_STATUS_DELIVERING" })).toEqual([]);

    const badToken = await rpc(server.url, "ListEvents", { pageToken: "garbage" }, d.apiKey);
    expect([badToken.status, errorCode(badToken.body)]).toEqual([400, "E1006"]);
  });
});

describe("WatchEvent", () => {
  it("streams the event's states, PENDING and DELIVERING, until DELIVERED, then ends", async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const s = await sink((_req, nth): Reply =>
      nth === 0 ? { status: 429, headers: { "retry-after": "1" }, body: "" } : { status: 200, body: "ok", after: held });
    const d = await createDestination(server.url, s.url);
    const eventId = await ingest(server.url, d.endpointId);
    const client = managementClient(server.url, d.apiKey);
    const states: { status: number; attempts: number }[] = [];
    for await (const msg of client.watchEvent({ eventId })) {
      states.push({ status: msg.event!.status, attempts: msg.event!.attempts.length });
      if (msg.event!.status === EventStatus.DELIVERING && msg.event!.attempts.length === 1) release();
    }
    const statusName = Object.fromEntries(Object.entries(EventStatus).map(([k, v]) => [v, k]));
    const names = states.map((s) => `${statusName[s.status]}/${s.attempts}`);
    expect(names.at(-1)).toBe("DELIVERED/2");
    expect(names).toContain("PENDING/1");
    expect(names).toContain("DELIVERING/1");
    // States arrive in life-cycle order, each at most once (fast changes may coalesce).
    const lifecycle = ["PENDING/0", "DELIVERING/0", "PENDING/1", "DELIVERING/1", "DELIVERED/2"];
    const positions = names.map((n) => lifecycle.indexOf(n));
    expect(positions.every((p, i) => p >= 0 && (i === 0 || p > positions[i - 1]!))).toBe(true);
  });

  it("a final event answers once and ends", async () => {
    const s = await sink();
    const d = await createDestination(server.url, s.url);
    const eventId = await ingest(server.url, d.endpointId);
    await eventReaching(server.url, d.apiKey, eventId, "EVENT_STATUS_DELIVERED");
    const messages = [];
    for await (const msg of managementClient(server.url, d.apiKey).watchEvent({ eventId })) messages.push(msg);
    expect(messages).toHaveLength(1);
    expect(messages[0]!.event!.attempts).toHaveLength(1);
  });
});

describe("GetEndpointHealth", () => {
  it("reports the circuit state, recent success rate, last error and pending events", async () => {
    const s = await sink(failTimes(1, 502));
    const d = await createDestination(server.url, s.url);
    const fresh = await rpc(server.url, "GetEndpointHealth", { endpointId: d.endpointId }, d.apiKey);
    expect(fresh.body).toMatchObject({ endpointId: d.endpointId, circuitState: "CIRCUIT_STATE_CLOSED", successRate: 1 });
    expect(fresh.body.recentAttempts ?? 0).toBe(0);

    const ids = [await ingest(server.url, d.endpointId), await ingest(server.url, d.endpointId)];
    for (const id of ids) await eventReaching(server.url, d.apiKey, id, "EVENT_STATUS_DELIVERED");
    const h = (await rpc(server.url, "GetEndpointHealth", { endpointId: d.endpointId }, d.apiKey)).body;
    expect(h).toMatchObject({ circuitState: "CIRCUIT_STATE_CLOSED", successRate: 0.5, recentAttempts: 4, lastError: "HTTP 502" });
    expect(h.consecutiveFailures ?? 0).toBe(0);
    expect(h.pendingEvents ?? 0).toBe(0);
    const lastStarted = Math.max(...(await Promise.all(ids.map((id) => getEvent(server.url, d.apiKey, id)))).flatMap((e) => e.attempts.map((a: any) => Date.parse(a.startedAt))));
    expect(Date.parse(h.lastAttemptAt)).toBe(lastStarted);
  });
});

describe("tenant isolation", () => {
  it("another tenant's event id is E2002 NotFound for GetEvent, RetryEvent and WatchEvent; lists and recovery do not see it", async () => {
    const s = await sink(alwaysFail(500));
    const a = await createDestination(server.url, s.url, { maxAttempts: 1 });
    const b = await createDestination(server.url, s.url);
    const eventId = await ingest(server.url, a.endpointId);
    await eventReaching(server.url, a.apiKey, eventId, "EVENT_STATUS_FAILED");

    const get = await rpc(server.url, "GetEvent", { eventId }, b.apiKey);
    expect([get.status, errorCode(get.body)]).toEqual([404, "E2002"]);
    const retry = await rpc(server.url, "RetryEvent", { eventId }, b.apiKey);
    expect([retry.status, errorCode(retry.body)]).toEqual([404, "E2002"]);
    let watchError: unknown;
    try {
      for await (const _ of managementClient(server.url, b.apiKey).watchEvent({ eventId })) throw new Error("got a message");
    } catch (err) {
      watchError = err;
    }
    expect(watchError).toBeInstanceOf(ConnectError);
    expect((watchError as ConnectError).code).toBe(Code.NotFound);
    expect(kapselCode(watchError)).toBe("E2002");

    expect((await rpc(server.url, "ListEvents", {}, b.apiKey)).body.events ?? []).toEqual([]);
    expect((await rpc(server.url, "ListEvents", { endpointId: a.endpointId }, b.apiKey)).body.events ?? []).toEqual([]);
    const recover = await rpc(server.url, "RecoverEvents", { endpointId: a.endpointId, since: "2000-01-01T00:00:00Z" }, b.apiKey);
    expect([recover.status, errorCode(recover.body)]).toEqual([404, "E1003"]);
    const health = await rpc(server.url, "GetEndpointHealth", { endpointId: a.endpointId }, b.apiKey);
    expect([health.status, errorCode(health.body)]).toEqual([404, "E1003"]);
    // Still failed, untouched by the other tenant's calls.
    expect((await getEvent(server.url, a.apiKey, eventId)).status).toBe("EVENT_STATUS_FAILED");
  });
});
