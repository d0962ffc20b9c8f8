// Retention on a running server: the policy RPCs (who may set what), and the server's own purger
// with windows of seconds over real deliveries — payloads, excerpts, events and messages go, events
// in flight stay, nothing lingers in the job and log queues, and every attempt's proof still
// downloads and verifies after its event is gone, as does the whole log.
import type pg from "pg";
import { verifyProofBundle } from "@kapsel/verify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleFor, kapselCli, vkeysOf } from "../../test/support/attestation.ts";
import { connect } from "../../test/support/database.ts";
import { addEndpoint, createDestination, eventReaching, getEvent, ingest, until } from "../../test/support/delivery.ts";
import { createTenant, errorCode, rpc } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";
import { hang, startSink, type Behaviour, type Sink } from "../../test/support/sink.ts";
import { kapselVerifyProof } from "../../test/support/verify-cli.ts";

const MAX = 86_400;
let server: TestServer;
let db: pg.Client;
const sinks: Sink[] = [];

beforeAll(async () => {
  server = await startTestServer({
    KAPSEL_CHECKPOINT_INTERVAL_MS: "100",
    KAPSEL_PAYLOAD_RETENTION_SECONDS: "1",
    KAPSEL_RESPONSE_RETENTION_SECONDS: "2",
    KAPSEL_EVENT_RETENTION_SECONDS: "4",
    KAPSEL_RETENTION_MAX_SECONDS: String(MAX),
    KAPSEL_PURGE_INTERVAL_MS: "200",
    KAPSEL_PURGE_BATCH_SIZE: "2",
    KAPSEL_IDEMPOTENCY_WINDOW_MS: "1000",
  });
  db = await connect(server.databaseUrl);
});
afterAll(async () => {
  await db?.end();
  await server?.stop();
  await Promise.all(sinks.map((s) => s.close()));
});

async function sink(behaviour: Behaviour): Promise<Sink> {
  const s = await startSink(behaviour);
  sinks.push(s);
  return s;
}

const policy = async (token: string, request: Record<string, unknown> = {}) => rpc(server.url, "GetRetentionPolicy", request, token);
const update = async (token: string, request: Record<string, unknown>) => rpc(server.url, "UpdateRetentionPolicy", request, token);

describe("retention policy RPCs", () => {
  it("a tenant reads the operator's defaults, and shortens or lengthens its windows within the maximum", async () => {
    const t = await createTenant(server.url, ADMIN_TOKEN, "policy");
    const defaults = { payloadRetentionSeconds: 1, responseRetentionSeconds: 2, eventRetentionSeconds: 4 };
    expect((await policy(t.apiKey)).body).toEqual({ policy: defaults, defaults, maxRetentionSeconds: MAX });

    const changed = await update(t.apiKey, { eventRetentionSeconds: MAX, responseRetentionSeconds: 3600 });
    expect([changed.status, changed.body.policy]).toEqual([200, { payloadRetentionSeconds: 1, responseRetentionSeconds: 3600, eventRetentionSeconds: MAX }]);
    expect((await policy(t.apiKey, { tenantId: t.id })).body.policy).toEqual(changed.body.policy);
    const reset = await update(t.apiKey, { resetToDefaults: true, payloadRetentionSeconds: 2 });
    expect(reset.body.policy).toEqual({ ...defaults, payloadRetentionSeconds: 2 });
  });

  it("refuses windows beyond the maximum, 0, or that outlast the events, with E1006, and keeps the policy", async () => {
    const t = await createTenant(server.url, ADMIN_TOKEN, "policy");
    for (const request of [
      { eventRetentionSeconds: MAX + 1 },
      { payloadRetentionSeconds: 0 },
      { responseRetentionSeconds: 10 },
      { tenantId: "not-a-uuid" },
    ]) {
      const r = await update(t.apiKey, request);
      expect([JSON.stringify(request), r.status, errorCode(r.body)]).toEqual([JSON.stringify(request), request.tenantId ? 404 : 400, request.tenantId ? "E1008" : "E1006"]);
    }
    expect((await update(t.apiKey, { eventRetentionSeconds: MAX + 1 })).body.message).toMatch(/event_retention_seconds must be from 1 to 86400/);
    expect((await policy(t.apiKey)).body.policy).toEqual({ payloadRetentionSeconds: 1, responseRetentionSeconds: 2, eventRetentionSeconds: 4 });
  });

  it("reading takes scope read or manage, changing takes manage; another tenant's policy is not found", async () => {
    const t = await createTenant(server.url, ADMIN_TOKEN, "policy");
    const key = async (scopes: string[]) => (await rpc(server.url, "CreateApiKey", { name: "k", scopes }, t.apiKey)).body.secret as string;
    const [read, ingestOnly] = [await key(["SCOPE_READ"]), await key(["SCOPE_INGEST"])];
    expect((await policy(read)).status).toBe(200);
    expect([(await update(read, { payloadRetentionSeconds: 1 })).status, (await policy(ingestOnly)).status]).toEqual([403, 403]);
    expect([(await policy("")).status, (await update("", { payloadRetentionSeconds: 1 })).status]).toEqual([401, 401]);

    const other = await createTenant(server.url, ADMIN_TOKEN, "other");
    for (const r of [await policy(t.apiKey, { tenantId: other.id }), await update(t.apiKey, { tenantId: other.id, payloadRetentionSeconds: 1 })]) {
      expect([r.status, errorCode(r.body)]).toEqual([404, "E1008"]);
    }
  });

  it("the admin sets any tenant's windows, beyond the maximum and until erased", async () => {
    const t = await createTenant(server.url, ADMIN_TOKEN, "policy");
    const r = await update(ADMIN_TOKEN, { tenantId: t.id, payloadRetentionSeconds: 0, responseRetentionSeconds: 0, eventRetentionSeconds: 0 });
    expect([r.status, r.body.policy]).toEqual([200, {}]);
    const long = await update(ADMIN_TOKEN, { tenantId: t.id, payloadRetentionSeconds: 10 * MAX, responseRetentionSeconds: MAX, eventRetentionSeconds: 20 * MAX });
    expect(long.body.policy).toEqual({ payloadRetentionSeconds: 10 * MAX, responseRetentionSeconds: MAX, eventRetentionSeconds: 20 * MAX });
    expect((await policy(t.apiKey)).body.policy).toEqual(long.body.policy);
    // The tenant keeps what the admin granted until it changes it; it cannot grant itself more.
    expect(errorCode((await update(t.apiKey, { payloadRetentionSeconds: 11 * MAX })).body)).toBe("E1006");
    for (const request of [{}, { tenantId: "0190b6d0-0000-7000-8000-000000000000" }]) {
      const missing = await policy(ADMIN_TOKEN, request);
      expect(errorCode(missing.body)).toBe(request.tenantId ? "E1008" : "E1006");
    }
  });
});

describe("the server's purger with windows of seconds", () => {
  it("removes finished events' data on schedule, keeps events in flight, and the proofs outlive the events", async () => {
    const echo = await sink((req) => ({ status: 200, body: `got ${req.body.toString()}` }));
    const stuck = await sink(hang);
    const d = await createDestination(server.url, echo.url);
    const slow = await addEndpoint(server.url, d.apiKey, stuck.url, { eventTypes: ["order.shipped"], timeoutMs: 60_000 });
    const bodies = [0, 1, 2].map((i) => JSON.stringify({ email: `short-${i}@example.com` }));
    const delivered: { id: string; attemptId: string; body: string }[] = [];
    for (const body of bodies) {
      const id = await ingest(server.url, d.endpointId, body);
      const e = await eventReaching(server.url, d.apiKey, id, "EVENT_STATUS_DELIVERED");
      delivered.push({ id, attemptId: e.attempts[0].id, body });
    }
    const inFlight = await ingest(server.url, slow.endpointId, JSON.stringify({ email: "in-flight@example.com" }));
    const fan = await rpc(server.url, "Ingest", { payload: Buffer.from('{"order":1}').toString("base64"), contentType: "application/json", eventType: "order.shipped" }, d.apiKey);
    const fanned = await Promise.all((fan.body.eventIds as string[]).map((id) => getEvent(server.url, d.apiKey, id)));
    const fannedDone = fanned.find((e) => e.endpointId === d.endpointId)!.id;
    const fannedStuck = fanned.find((e) => e.endpointId === slow.endpointId)!.id;
    await eventReaching(server.url, d.apiKey, fannedDone, "EVENT_STATUS_DELIVERED");
    await stuck.waitFor(2);

    await until("the finished events to be deleted", async () => {
      const gone = await Promise.all([...delivered.map((e) => e.id), fannedDone].map((id) => rpc(server.url, "GetEvent", { eventId: id }, d.apiKey)));
      return gone.every((r) => errorCode(r.body) === "E2002") ? true : undefined;
    }, 30_000);
    const retry = await rpc(server.url, "RetryEvent", { eventId: delivered[0]!.id }, d.apiKey);
    expect(errorCode(retry.body)).toBe("E2002");

    // In flight: untouched, payload and all, however old — alone or sharing its message.
    for (const id of [inFlight, fannedStuck]) {
      const e = await getEvent(server.url, d.apiKey, id);
      expect([e.status, e.payloadErasedAt, e.payload === undefined]).toEqual(["EVENT_STATUS_DELIVERING", undefined, false]);
    }
    expect((await rpc(server.url, "GetMessage", { messageId: fan.body.messageId }, d.apiKey)).body.message.payload).toBe(Buffer.from('{"order":1}').toString("base64"));
    const { rows } = await db.query<{ n: string }>(
      "SELECT count(*) AS n FROM messages WHERE position(convert_to('short-', 'UTF8') IN payload) > 0");
    expect(rows[0]!.n).toBe("0");

    // Every attempt's receipt is still in the log and its proof verifies, payload included.
    const keys = await vkeysOf(server.url, d.apiKey);
    for (const e of delivered) {
      const bundle = await bundleFor(server.url, d.apiKey, e.attemptId);
      expect(verifyProofBundle(bundle, { trustedKeys: keys, requireTimestamp: true, payload: Buffer.from(e.body) })).toMatchObject({ ok: true, payloadVerified: true });
    }
    const cli = await kapselVerifyProof(await bundleFor(server.url, d.apiKey, delivered[0]!.attemptId), keys, Buffer.from(delivered[0]!.body));
    expect([cli.code, cli.stdout]).toEqual([0, expect.stringMatching(/payload\s+matches payload_sha256/)]);

    const metrics = await (await fetch(`${server.metricsUrl}/metrics`)).text();
    const value = (line: string) => Number(metrics.split("\n").find((l) => l.startsWith(line))?.split(" ").at(-1));
    expect(value('kapsel_retention_purged_total{kind="event"}')).toBeGreaterThanOrEqual(4);
    expect(value('kapsel_retention_purged_total{kind="payload"}')).toBeGreaterThanOrEqual(3);
    expect(value('kapsel_retention_purge_batches_total{result="error"}')).toBe(0);
    expect(value("kapsel_retention_purge_last_pass_timestamp_seconds")).toBeGreaterThan(Date.now() / 1000 - 60);
  });

  it("leaves nothing behind in the job and log queues: only events in flight hold a job", async () => {
    await until("the log to take every recorded attempt", async () => {
      const { rows } = await db.query<{ n: string }>("SELECT count(*) AS n FROM log_queue");
      return rows[0]!.n === "0" ? true : undefined;
    });
    const { rows } = await db.query<{ jobs: string; in_flight: string; orphans: string }>(`
      SELECT (SELECT count(*) FROM delivery_jobs) AS jobs,
        (SELECT count(*) FROM events WHERE status = 'pending') AS in_flight,
        (SELECT count(*) FROM delivery_jobs j WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.id = j.event_id AND e.status = 'pending')) AS orphans`);
    expect(rows[0]).toEqual({ jobs: rows[0]!.in_flight, in_flight: rows[0]!.in_flight, orphans: "0" });
    expect(Number(rows[0]!.jobs)).toBeGreaterThanOrEqual(2);
    const leaves = await db.query<{ n: string; attempts: string }>("SELECT (SELECT count(*) FROM log_leaves) AS n, (SELECT count(*) FROM delivery_attempts) AS attempts");
    expect(Number(leaves.rows[0]!.n)).toBeGreaterThan(Number(leaves.rows[0]!.attempts));
  });

  it("deletes idempotency keys once they stop deduplicating; the key is then free for a new message", async () => {
    const ok = await sink(() => ({ status: 200, body: "ok" }));
    const d = await createDestination(server.url, ok.url);
    const send = async (status: number) => {
      const res = await fetch(`${server.url}/ingest/${d.endpointId}`, { method: "POST", headers: { "content-type": "application/json", "idempotency-key": "order-7" }, body: "{}" });
      expect(res.status).toBe(status);
      return (await res.json()) as { event_id: string; message_id: string };
    };
    const first = await send(202);
    // A duplicate within the window answers 200 with the first message.
    expect((await send(200)).message_id).toBe(first.message_id);
    await until("the expired key to be deleted", async () => {
      const { rows } = await db.query("SELECT 1 FROM idempotency_keys WHERE key = 'order-7'");
      return rows.length === 0 ? true : undefined;
    });
    expect((await send(202)).message_id).not.toBe(first.message_id);
  });

  it("kapsel log verify passes over a log whose events were purged", async () => {
    const r = await kapselCli(["log", "verify"], { DATABASE_URL: server.databaseUrl });
    expect([r.code, r.stdout]).toEqual([0, expect.stringMatching(/^log verified: \d+ leaves/)]);
  });
});
