// WatchEvents: a tenant's events stream in as they are received and as their deliveries change
// state (real deliveries to a loopback sink), filtered by endpoint, never another tenant's; each
// tenant holds a bounded number of streams, and every stream ends with its deadline.
import { Code, ConnectError, createContextValues, createHandlerContext } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventStatus, ManagementService, type Event, type WatchEventsResponse } from "@kapsel/contracts/management";
import { addEndpoint, createDestination, ingest, kapselCode, managementClient, until } from "../../test/support/delivery.ts";
import { rpc } from "../../test/support/rpc.ts";
import { startTestServer, type TestServer } from "../../test/support/server.ts";
import { alwaysFail, startSink, succeed, type Sink } from "../../test/support/sink.ts";
import { callerKey } from "../src/auth/auth-context.ts";
import { createDatabasePool } from "../src/db/pool.ts";
import { EventWatch, WATCH_DEFAULTS } from "../src/management/watch-events.ts";

let server: TestServer;
const sinks: Sink[] = [];
beforeAll(async () => {
  server = await startTestServer({ KAPSEL_RETRY_BASE_MS: "20" });
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

interface Watched {
  messages: WatchEventsResponse[];
  events(): Event[];
  /** The latest state seen of an event. */
  latest(id: string): Event | undefined;
  waitFor<T>(what: string, check: () => T | undefined, timeoutMs?: number): Promise<T>;
  ended: Promise<unknown>;
  abort(): void;
}

function watch(apiKey: string, filter: { endpointId?: string; eventType?: string } = {}, timeoutMs = 60_000): Watched {
  const controller = new AbortController();
  const messages: WatchEventsResponse[] = [];
  const stream = managementClient(server.url, apiKey).watchEvents(filter, { signal: controller.signal, timeoutMs });
  const ended = (async () => {
    for await (const m of stream) messages.push(m);
  })().then(() => undefined, (err: unknown) => err);
  const events = () => messages.flatMap((m) => m.events);
  return {
    messages,
    events,
    latest: (id) => events().filter((e) => e.id === id).at(-1),
    waitFor: (what, check, ms = 30_000) => until(what, check, ms),
    ended,
    abort: () => controller.abort(),
  };
}

describe("WatchEvents with real deliveries", () => {
  it("opens with an empty message, then shows a new event not yet delivered and, live, delivered", async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const s = await sink(() => ({ status: 200, body: "ok", after: held }));
    const d = await createDestination(server.url, s.url);
    const w = watch(d.apiKey);
    await w.waitFor("the subscription message", () => (w.messages.length > 0 ? true : undefined));
    expect(w.messages[0]!.events).toEqual([]);

    const eventId = await ingest(server.url, d.endpointId);
    const first = await w.waitFor("the new event", () => w.latest(eventId));
    // The sink holds the request: the event is seen before it is delivered (pending or delivering).
    expect([EventStatus.PENDING, EventStatus.DELIVERING]).toContain(first.status);
    expect(first.endpointId).toBe(d.endpointId);
    await s.waitFor(1);
    release();
    const delivered = await w.waitFor("the delivery", () => (w.latest(eventId)?.status === EventStatus.DELIVERED ? w.latest(eventId) : undefined));
    expect(delivered.attemptCount).toBe(1);
    // Each state once (a state already sent is not repeated), delivered last.
    const states = w.events().filter((e) => e.id === eventId).map((e) => e.status);
    expect(states.at(-1)).toBe(EventStatus.DELIVERED);
    expect(states.every((st, i) => i === 0 || st !== states[i - 1])).toBe(true);
    expect(states.slice(0, -1).every((st) => st === EventStatus.PENDING || st === EventStatus.DELIVERING)).toBe(true);
    w.abort();
  });

  it("follows a failed event back to pending and delivered after RetryEvent", async () => {
    const s = await sink(alwaysFail(500));
    const d = await createDestination(server.url, s.url, { maxAttempts: 1 });
    const w = watch(d.apiKey);
    await w.waitFor("subscribed", () => (w.messages.length > 0 ? true : undefined));
    const eventId = await ingest(server.url, d.endpointId);
    await w.waitFor("the failure", () => (w.latest(eventId)?.status === EventStatus.FAILED ? true : undefined));
    s.behaviour = succeed();
    expect((await rpc(server.url, "RetryEvent", { eventId }, d.apiKey)).status).toBe(200);
    const done = await w.waitFor("the retry's delivery", () => (w.latest(eventId)?.status === EventStatus.DELIVERED ? w.latest(eventId) : undefined));
    expect(done.attemptCount).toBe(2);
    w.abort();
  });

  it("an endpoint filter shows only that endpoint's events, and no stream shows another tenant's", async () => {
    const s = await sink();
    const a = await createDestination(server.url, s.url);
    const b = await addEndpoint(server.url, a.apiKey, s.url);
    const other = await createDestination(server.url, s.url);
    const all = watch(a.apiKey);
    const onlyB = watch(a.apiKey, { endpointId: b.endpointId });
    const otherTenant = watch(other.apiKey);
    for (const w of [all, onlyB, otherTenant]) await w.waitFor("subscribed", () => (w.messages.length > 0 ? true : undefined));

    const toA = await ingest(server.url, a.endpointId);
    const toB = await ingest(server.url, b.endpointId);
    const toOther = await ingest(server.url, other.endpointId);
    for (const [w, id] of [[all, toA], [all, toB], [onlyB, toB], [otherTenant, toOther]] as const) {
      await w.waitFor(`${id} delivered`, () => (w.latest(id)?.status === EventStatus.DELIVERED ? true : undefined));
    }
    // A's event was received before B's: had the filter let it through, it would be here by now.
    expect(new Set(onlyB.events().map((e) => e.id))).toEqual(new Set([toB]));
    expect(new Set(all.events().map((e) => e.id))).toEqual(new Set([toA, toB]));
    expect(new Set(otherTenant.events().map((e) => e.id))).toEqual(new Set([toOther]));
    for (const w of [all, onlyB, otherTenant]) w.abort();
  });
});

describe("WatchEvents bounds", () => {
  it(`a tenant may hold ${WATCH_DEFAULTS.maxStreamsPerTenant} streams: one more is E1005 with a retry hint, until one closes`, async () => {
    const s = await sink();
    const d = await createDestination(server.url, s.url);
    const other = await createDestination(server.url, s.url);
    const open = Array.from({ length: WATCH_DEFAULTS.maxStreamsPerTenant }, () => watch(d.apiKey));
    for (const w of open) await w.waitFor("subscribed", () => (w.messages.length > 0 ? true : undefined));

    const refused = watch(d.apiKey);
    const err = await refused.ended;
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
    expect(kapselCode(err)).toBe("E1005");
    // Another tenant is not affected.
    const elsewhere = watch(other.apiKey);
    await elsewhere.waitFor("another tenant's stream", () => (elsewhere.messages.length > 0 ? true : undefined));

    open[0]!.abort();
    const again = await until("a free slot", async () => {
      const w = watch(d.apiKey);
      const outcome = await Promise.race([w.ended, w.waitFor("subscribed", () => (w.messages.length > 0 ? "open" : undefined))]);
      return outcome === "open" ? w : undefined;
    });
    expect(again.messages[0]!.events).toEqual([]);
    for (const w of [...open, again, elsewhere]) w.abort();
  });

  it("a stream ends with DeadlineExceeded at the client's deadline", async () => {
    const d = await createDestination(server.url, (await sink()).url);
    const w = watch(d.apiKey, {}, 1500);
    const err = await w.ended;
    expect((err as ConnectError).code).toBe(Code.DeadlineExceeded);
    expect(w.messages.length).toBeGreaterThanOrEqual(1);
  });

  it("without a deadline, a stream ends by itself after its maximum lifetime and frees its slot", async () => {
    const d = await createDestination(server.url, (await sink()).url);
    const tenantId = d.tenantId;
    const pool = await createDatabasePool(server.databaseUrl, { maximumPoolSize: 2 });
    const watcher = new EventWatch(pool, { maxLifetimeMs: 700, pollMs: 100 });
    const ctx = createHandlerContext({
      service: ManagementService,
      method: ManagementService.method.watchEvents,
      protocolName: "connect",
      requestMethod: "POST",
      url: `${server.url}/kapsel.v1.ManagementService/WatchEvents`,
      contextValues: createContextValues().set(callerKey, { kind: "tenant", tenantId, keyId: "k", scopes: ["read"] }),
    });
    const received: unknown[] = [];
    for await (const m of watcher.watchEvents({ endpointId: "", eventType: "", $typeName: "kapsel.v1.WatchEventsRequest" }, ctx)) {
      received.push(m);
      expect(watcher.open(tenantId)).toBe(1);
    }
    expect(received).toEqual([{ events: [] }]);
    expect(watcher.open(tenantId)).toBe(0);
    await pool.end();
  });

  it("needs a read or manage key; bad filters are E1006; another tenant's endpoint is E1003", async () => {
    const d = await createDestination(server.url, (await sink()).url);
    const other = await createDestination(server.url, (await sink()).url);
    const unauth = await watch("ksk_not_a_key").ended;
    expect(kapselCode(unauth)).toBe("E1004");
    const ingestKey = (await rpc(server.url, "CreateApiKey", { name: "i", scopes: ["SCOPE_INGEST"] }, d.apiKey)).body.secret;
    expect(((await watch(ingestKey).ended) as ConnectError).code).toBe(Code.PermissionDenied);
    expect(kapselCode(await watch(d.apiKey, { endpointId: "x" }).ended)).toBe("E1006");
    expect(kapselCode(await watch(d.apiKey, { eventType: "Not A Type" }).ended)).toBe("E1006");
    expect(kapselCode(await watch(d.apiKey, { endpointId: other.endpointId }).ended)).toBe("E1003");
  });
});
