// Work that used to get stuck. A retry of an event whose endpoint was deleted is refused, and a job
// of a deleted endpoint that slipped into the queue anyway is ended by the next claim instead of
// waiting forever. The outcome writer survives an ambiguous commit — the connection lost after
// COMMIT reached Postgres, so the batch is on disk but the process never heard — by writing the
// batch again without recording, deciding or reporting anything twice; and a batch that keeps
// failing never holds up the batches behind it. The connection is really cut, by a TCP proxy
// between the server and Postgres (test/support/pg-proxy.ts).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, createTestDatabase } from "../../test/support/database.ts";
import { addEndpoint, eventReaching, getEvent, ingest, until } from "../../test/support/delivery.ts";
import { INGEST_ONLY } from "../../test/support/ingest.ts";
import { startPgProxy, type PgProxy } from "../../test/support/pg-proxy.ts";
import { createTenant, errorCode, rpc } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";
import { startSink, type Sink } from "../../test/support/sink.ts";

let sink: Sink;
const servers: TestServer[] = [];
let proxy: PgProxy | undefined;
beforeAll(async () => {
  // Bodies that ask to fail get a 500; everything else a 200.
  sink = await startSink((req) => (req.body.includes("fail") ? { status: 500, body: "no" } : { status: 200, body: "ok" }));
});
afterAll(async () => {
  for (const s of servers) await s.stop();
  await proxy?.close();
  await sink?.close();
});

async function server(env: Record<string, string> = {}): Promise<TestServer> {
  const s = await startTestServer({ KAPSEL_RETRY_BASE_MS: "20", ...env });
  servers.push(s);
  return s;
}

describe("events of deleted endpoints", () => {
  it("RetryEvent refuses with E2003 and RecoverEvents skips them: no job is left that nothing would ever claim", async () => {
    const s = await server();
    const { apiKey } = await createTenant(s.url, ADMIN_TOKEN);
    const { endpointId } = await addEndpoint(s.url, apiKey, sink.url, { maxAttempts: 1 });
    const payload = Buffer.from('{"please":"fail"}').toString("base64");
    const eventId = (await rpc(s.url, "Ingest", { endpointId, payload, eventType: "order.paid" }, apiKey)).body.eventId;
    await eventReaching(s.url, apiKey, eventId, "EVENT_STATUS_FAILED");
    expect((await rpc(s.url, "DeleteEndpoint", { endpointId }, apiKey)).status).toBe(200);

    const retried = await rpc(s.url, "RetryEvent", { eventId }, apiKey);
    expect(retried.body.code).toBe("failed_precondition");
    expect(errorCode(retried.body)).toBe("E2003");
    expect(retried.body.message).toContain("endpoint was deleted");
    const recovered = await rpc(s.url, "RecoverEvents", { eventType: "order.paid", since: "2000-01-01T00:00:00Z" }, apiKey);
    expect(recovered.status).toBe(200);
    expect(recovered.body.count ?? 0).toBe(0);

    const db = await connect(s.databaseUrl);
    try {
      expect((await db.query("SELECT 1 FROM delivery_jobs WHERE event_id = $1", [eventId])).rowCount).toBe(0);
      expect((await getEvent(s.url, apiKey, eventId)).status).toBe("EVENT_STATUS_FAILED");
    } finally {
      await db.end();
    }
  });

  it("a job of a deleted endpoint that raced the deletion is ended by the next claim: its event fails, the queue keeps moving", async () => {
    const ingestOnly = await server(INGEST_ONLY);
    const { apiKey } = await createTenant(ingestOnly.url, ADMIN_TOKEN);
    const { endpointId: doomed } = await addEndpoint(ingestOnly.url, apiKey, sink.url);
    const { endpointId: live } = await addEndpoint(ingestOnly.url, apiKey, sink.url);
    const orphan = await ingest(ingestOnly.url, doomed);
    expect((await rpc(ingestOnly.url, "DeleteEndpoint", { endpointId: doomed }, apiKey)).status).toBe(200);
    const db = await connect(ingestOnly.databaseUrl);
    try {
      // What a group commit or a retry racing the deletion leaves behind: a pending event with a
      // due job, whose endpoint is gone.
      await db.query("UPDATE events SET status = 'pending' WHERE id = $1", [orphan]);
      await db.query("INSERT INTO delivery_jobs (event_id, endpoint_id) VALUES ($1, $2)", [orphan, doomed]);

      const delivering = await server({ DATABASE_URL: ingestOnly.databaseUrl });
      const other = await ingest(delivering.url, live);
      await eventReaching(delivering.url, apiKey, other, "EVENT_STATUS_DELIVERED");
      await until("the orphaned job to be ended", async () =>
        (await db.query("SELECT 1 FROM delivery_jobs WHERE event_id = $1", [orphan])).rowCount === 0 ? true : undefined);
      const event = await getEvent(delivering.url, apiKey, orphan);
      expect(event.status).toBe("EVENT_STATUS_FAILED");
      expect(event.attempts ?? []).toEqual([]);
      expect(sink.forEvent(orphan)).toEqual([]);
    } finally {
      await db.end();
    }
  });
});

describe("the outcome writer", () => {
  it("after a commit whose answer was lost, writes the batch again without a duplicate attempt, a second breaker count or a second operational event, and keeps writing", async () => {
    const databaseUrl = await createTestDatabase();
    proxy = await startPgProxy(databaseUrl);
    const s = await server({ DATABASE_URL: proxy.url, KAPSEL_CIRCUIT_CONSECUTIVE_FAILURES: "2" });
    const { apiKey } = await createTenant(s.url, ADMIN_TOKEN);
    const { endpointId } = await addEndpoint(s.url, apiKey, sink.url, { maxAttempts: 1 });

    // The transaction that records the next attempt commits, and its connection is cut before
    // the answer to COMMIT reaches the server.
    const cut = proxy.cut("INSERT INTO delivery_attempts", "after", { atCommit: true });
    const failing = await ingest(s.url, endpointId, '{"please":"fail"}');
    await cut;
    const later = [];
    for (let i = 0; i < 3; i++) later.push(await ingest(s.url, endpointId, `{"n":${i}}`));
    for (const id of later) await eventReaching(s.url, apiKey, id, "EVENT_STATUS_DELIVERED");
    const event = await eventReaching(s.url, apiKey, failing, "EVENT_STATUS_FAILED");

    const db = await connect(databaseUrl);
    try {
      expect(event.attempts).toHaveLength(1);
      expect(Number((await db.query("SELECT count(*) AS n FROM delivery_attempts WHERE event_id = $1", [failing])).rows[0].n)).toBe(1);
      expect(Number((await db.query("SELECT count(*) AS n FROM log_queue q JOIN delivery_attempts a ON a.id = q.attempt_id WHERE a.event_id = $1", [failing])).rows[0].n)
        + Number((await db.query("SELECT count(*) AS n FROM log_leaves l JOIN delivery_attempts a ON a.id = l.attempt_id WHERE a.event_id = $1", [failing])).rows[0].n)).toBe(1);
      // One kapsel.event.failed report, not one per write of the batch.
      const reports = await db.query("SELECT payload FROM messages WHERE event_type = 'kapsel.event.failed' AND tenant_id = (SELECT tenant_id FROM events WHERE id = $1)", [failing]);
      expect(reports.rows.filter((r) => JSON.parse(r.payload.toString()).data.event_id === failing)).toHaveLength(1);
      // The failure counted once: with a threshold of two, a double count would have opened the
      // circuit (and the deliveries after it reset the count).
      const opened = await db.query("SELECT 1 FROM messages WHERE event_type = 'kapsel.endpoint.circuit_opened'");
      expect(opened.rowCount).toBe(0);
      expect(proxy.cuts).toBe(1);
    } finally {
      await db.end();
    }
  });

  it("a batch that keeps failing to commit does not hold up the batches behind it, and is written once the database lets it", async () => {
    const s = servers.at(-1)!;
    const { apiKey } = await createTenant(s.url, ADMIN_TOKEN, "blocked");
    const { endpointId } = await addEndpoint(s.url, apiKey, sink.url);
    const stuck = await ingest(s.url, endpointId, '{"stuck":true}');
    // Every transaction that mentions the stuck event is cut before its COMMIT reaches Postgres.
    const cuts = proxy!.cutEvery(stuck, "before", { atCommit: true });
    try {
      await until("the stuck batch to have failed", () => (cuts.count >= 1 ? true : undefined));
      const others = [];
      for (let i = 0; i < 3; i++) others.push(await ingest(s.url, endpointId, `{"other":${i}}`));
      for (const id of others) await eventReaching(s.url, apiKey, id, "EVENT_STATUS_DELIVERED");
      // The others were recorded while the stuck batch was still waiting for its next try.
      expect((await getEvent(s.url, apiKey, stuck)).attempts ?? []).toEqual([]);
    } finally {
      cuts.stop();
    }
    const event = await eventReaching(s.url, apiKey, stuck, "EVENT_STATUS_DELIVERED");
    expect(event.attempts).toHaveLength(1);
    expect(sink.forEvent(stuck)).toHaveLength(1);
  });
});
