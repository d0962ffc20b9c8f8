// Kapsel's own events about a tenant's endpoints reach the endpoints subscribed to `kapsel.*`,
// signed, delivered and attested like any event; an endpoint never receives reports about itself,
// and a failed report is not reported again.
import { verifyProofBundle } from "@kapsel/verify";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addEndpoint, eventReaching, ingest, until } from "../../test/support/delivery.ts";
import { createTenant, rpc } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";
import { alwaysFail, startSink, type ReceivedRequest, type Sink } from "../../test/support/sink.ts";

let server: TestServer;
const sinks: Sink[] = [];
beforeAll(async () => {
  server = await startTestServer({
    KAPSEL_CIRCUIT_OPEN_MS: "300",
    KAPSEL_CHECKPOINT_INTERVAL_MS: "100",
    KAPSEL_RETRY_BASE_MS: "10",
  });
});
afterAll(async () => {
  await server?.stop();
  await Promise.all(sinks.map((s) => s.close()));
});

async function sink(behaviour?: Parameters<typeof startSink>[0]): Promise<Sink> {
  const s = await startSink(behaviour);
  sinks.push(s);
  return s;
}

const bodyOf = (r: ReceivedRequest) => JSON.parse(r.body.toString()) as { type: string; timestamp: string; data: Record<string, unknown> };

describe("operational webhooks", () => {
  it("a failing endpoint's opened circuit and failed events reach a kapsel.* subscriber, signed and attested, and never the endpoint itself", async () => {
    const tenant = await createTenant(server.url, ADMIN_TOKEN, "ops");
    let failing = true;
    const brokenSink = await sink((req) => (failing && !req.body.toString().includes('"type":"kapsel.') ? { status: 500, body: "broken" } : { status: 200, body: "ok" }));
    const watcherSink = await sink();
    // The failing endpoint asks for kapsel.* too: it must still get no report about itself.
    const broken = await addEndpoint(server.url, tenant.apiKey, brokenSink.url, { maxAttempts: 1, eventTypes: ["order.*", "kapsel.*"] });
    const watcher = await addEndpoint(server.url, tenant.apiKey, watcherSink.url, { eventTypes: ["kapsel.*"] });

    const failed: string[] = [];
    for (let i = 0; i < 5; i++) {
      const id = await ingest(server.url, broken.endpointId, `{"n":${i}}`);
      await eventReaching(server.url, tenant.apiKey, id, "EVENT_STATUS_FAILED");
      failed.push(id);
    }
    const reports = await until("the circuit report and five failure reports", () => {
      const got = watcherSink.requests.map(bodyOf);
      return got.filter((b) => b.type === "kapsel.event.failed").length >= 5 && got.some((b) => b.type === "kapsel.endpoint.circuit_opened") ? got : undefined;
    });
    const failures = reports.filter((b) => b.type === "kapsel.event.failed");
    expect(failures.map((b) => b.data.event_id).sort()).toEqual([...failed].sort());
    expect(failures[0]!.data).toMatchObject({ endpoint_id: broken.endpointId, attempts: 1, last_outcome: "http_error", last_status_code: 500 });
    expect(reports.find((b) => b.type === "kapsel.endpoint.circuit_opened")!.data).toMatchObject({ endpoint_id: broken.endpointId, consecutive_failures: 5 });

    // Signed with the watcher's own secret (Standard Webhooks, checked by its reference library).
    const wh = new Webhook(watcher.signingSecret);
    for (const r of watcherSink.requests) expect(() => wh.verify(r.body.toString(), r.headers as Record<string, string>)).not.toThrow();

    // Attested: the report's attempt is in the log and its bundle verifies offline.
    const reportEvent = watcherSink.requests[0]!.eventId;
    const attemptId = (await eventReaching(server.url, tenant.apiKey, reportEvent, "EVENT_STATUS_DELIVERED")).attempts[0].id;
    const keys = (await rpc(server.url, "GetPublicKeys", {}, tenant.apiKey)).body.keys.map((k: any) => k.vkey);
    const bundle = await until("the report's proof", async () => {
      const r = await rpc(server.url, "GetProofBundle", { attemptId }, tenant.apiKey);
      return r.status === 200 ? r.body.bundle as string : undefined;
    });
    const verified = verifyProofBundle(bundle, { trustedKeys: keys, payload: watcherSink.requests[0]!.body });
    expect(verified.ok).toBe(true);

    // The failing endpoint got no report about itself, only its own order events.
    expect(brokenSink.requests.filter((r) => r.body.toString().includes("kapsel."))).toEqual([]);

    // It recovers: the next event is the half-open probe, it succeeds, the circuit closes, and the
    // watcher hears so.
    failing = false;
    await eventReaching(server.url, tenant.apiKey, await ingest(server.url, broken.endpointId, '{"n":"probe"}'), "EVENT_STATUS_DELIVERED", 20_000);
    await until("the circuit closed report", () => watcherSink.requests.map(bodyOf).find((b) => b.type === "kapsel.endpoint.circuit_closed"), 20_000);
    // Listed as messages of their type, visible to the tenant's dashboard.
    const listed = await rpc(server.url, "ListMessages", { eventType: "kapsel.*" }, tenant.apiKey);
    expect(listed.body.messages.length).toBeGreaterThanOrEqual(7);
  });

  it("a rotated secret and a disabled endpoint are reported; the subject endpoint hears neither", async () => {
    const tenant = await createTenant(server.url, ADMIN_TOKEN, "ops2");
    const subjectSink = await sink();
    const watcherSink = await sink();
    const subject = await addEndpoint(server.url, tenant.apiKey, subjectSink.url, { eventTypes: ["kapsel.*"] });
    await addEndpoint(server.url, tenant.apiKey, watcherSink.url, { eventTypes: ["kapsel.endpoint.*"] });
    await rpc(server.url, "RotateEndpointSecret", { endpointId: subject.endpointId }, tenant.apiKey);
    await rpc(server.url, "UpdateEndpoint", { endpointId: subject.endpointId, enabled: false }, tenant.apiKey);
    const got = await until("two reports", () => (watcherSink.requests.length >= 2 ? watcherSink.requests.map(bodyOf) : undefined));
    expect(got.map((b) => [b.type, b.data.endpoint_id])).toEqual([
      ["kapsel.endpoint.secret_rotated", subject.endpointId],
      ["kapsel.endpoint.disabled", subject.endpointId],
    ]);
    expect(got[1]!.data.reason).toBe("disabled through the API");
    await new Promise((r) => setTimeout(r, 300));
    expect(subjectSink.requests).toEqual([]);
  });

  it("endpoints that subscribe to every type do not receive kapsel.* reports unless they ask", async () => {
    const tenant = await createTenant(server.url, ADMIN_TOKEN, "ops3");
    const quietSink = await sink();
    const failingSink = await sink(alwaysFail(500));
    await addEndpoint(server.url, tenant.apiKey, quietSink.url);
    const bad = await addEndpoint(server.url, tenant.apiKey, failingSink.url, { maxAttempts: 1 });
    const id = await ingest(server.url, bad.endpointId);
    await eventReaching(server.url, tenant.apiKey, id, "EVENT_STATUS_FAILED");
    const listed = await until("the failure report, stored with no events", async () => {
      const r = await rpc(server.url, "ListMessages", { eventType: "kapsel.event.failed" }, tenant.apiKey);
      return r.body.messages?.length ? r.body.messages : undefined;
    });
    expect(listed[0].eventCount ?? 0).toBe(0);
    expect(quietSink.requests).toEqual([]);
  });
});
