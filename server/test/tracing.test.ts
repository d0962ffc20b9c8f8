// OpenTelemetry traces of an event's life, checked at a real OTLP/HTTP receiver that decodes the
// exported protobuf: a `kapsel serve` process exporting to it, a real loopback destination, and
// the span tree — ingest (continuing the sender's traceparent) → group commit → delivery attempt
// → HTTP client span (whose context the destination receives as `traceparent`) — plus the
// sequencer's batch span linked to the attempts it logged. Without OTEL configuration nothing is
// exported, and a sender's own traceparent is carried through unchanged.
import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, createTestDatabase } from "../../test/support/database.ts";
import { addEndpoint, createDestination, eventReaching, until, type Destination } from "../../test/support/delivery.ts";
import { bearer, unary } from "../../test/support/grpc.ts";
import { ingestClient } from "../../test/support/grpc-ingest.ts";
import { SpanKind, StatusCode, startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "../../test/support/otlp-receiver.ts";
import { createTenant, rpc } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, spawnServer, startTestServer, type ServerProcess, type TestServer } from "../../test/support/server.ts";
import { alwaysFail, startSink, type Sink } from "../../test/support/sink.ts";

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID = "00f067aa0ba902b7";
const TRACEPARENT = `00-${TRACE_ID}-${PARENT_ID}-01`;
const TRACEPARENT_RE = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;
const b64 = (s: string) => Buffer.from(s).toString("base64");

let receiver: OtlpReceiver;
let server: ServerProcess;
let sink: Sink;
let failing: Sink;
let dest: Destination;
let databaseUrl: string;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  sink = await startSink();
  failing = await startSink(alwaysFail(503));
  databaseUrl = await createTestDatabase();
  server = await spawnServer({
    DATABASE_URL: databaseUrl,
    KAPSEL_LOG_LEVEL: "warn",
    KAPSEL_CHECKPOINT_INTERVAL_MS: "100",
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_SERVICE_NAME: "kapsel-under-test",
    OTEL_BSP_SCHEDULE_DELAY: "100",
  });
  // The query holds a secret that no span may show.
  dest = await createDestination(server.url, `${sink.url}?token=s3cr3t-in-query`);
});
afterAll(async () => {
  await server?.stop();
  await Promise.all([receiver?.close(), sink?.close(), failing?.close()]);
});

/** Waits for a span matching `match` to be exported. */
function spanWhere(what: string, match: (s: ReceivedSpan) => boolean): Promise<ReceivedSpan> {
  return until(what, () => receiver.spans.find(match), 30_000);
}

async function gatewayIngest(endpointId: string, headers: Record<string, string | string[]>): Promise<{ eventId: string; messageId: string }> {
  // node:http, not fetch: a header may be sent on several lines.
  return new Promise((resolve, reject) => {
    const req = http.request(`${server.url}/ingest/${endpointId}`, { method: "POST", headers: { "content-type": "application/json", ...headers } }, (res) => {
      let text = "";
      res.on("data", (c: Buffer) => (text += c.toString()));
      res.on("end", () => {
        if (res.statusCode !== 202) reject(new Error(`ingest answered ${res.statusCode}: ${text}`));
        else {
          const body = JSON.parse(text) as { event_id: string; message_id: string };
          resolve({ eventId: body.event_id, messageId: body.message_id });
        }
      });
    });
    req.on("error", reject);
    req.end('{"type":"traced"}');
  });
}

describe("tracing with an OTLP endpoint", () => {
  it("follows a gateway event from the sender's traceparent through group commit, the attempt and its HTTP request to the destination, and into a sequencer batch", async () => {
    const { eventId, messageId } = await gatewayIngest(dest.endpointId, { traceparent: TRACEPARENT, tracestate: "vendor=abc,other=1", "x-github-event": "push" });

    const [delivered] = await sink.waitFor(1, (r) => r.eventId === eventId);
    const sent = TRACEPARENT_RE.exec(String(delivered!.headers.traceparent));
    expect(sent, "the webhook carries a traceparent").not.toBeNull();
    expect(sent![1]).toBe(TRACE_ID);
    expect(delivered!.headers.tracestate).toBe("vendor=abc,other=1");

    const ingest = await spanWhere("the ingest span", (s) => s.kind === SpanKind.SERVER && s.attributes["kapsel.message_id"] === messageId);
    expect(ingest).toMatchObject({ name: "POST /ingest/{endpoint_id}", traceId: TRACE_ID, parentSpanId: PARENT_ID });
    expect(ingest.attributes).toMatchObject({
      "http.request.method": "POST", "http.route": "/ingest/{endpoint_id}", "http.response.status_code": 202,
      "kapsel.endpoint_id": dest.endpointId, "kapsel.event_id": eventId,
    });
    expect(ingest.resource["service.name"]).toBe("kapsel-under-test");

    const commit = await spanWhere("the group commit span", (s) => s.name === "kapsel.ingest.group_commit" && s.attributes["kapsel.message_id"] === messageId);
    expect(commit).toMatchObject({ traceId: TRACE_ID, parentSpanId: ingest.spanId });
    expect(commit.attributes).toMatchObject({ "db.system.name": "postgresql", "kapsel.tenant_id": dest.tenantId, "kapsel.batch.size": 1, "kapsel.event_count": 1 });

    const attempt = await spanWhere("the attempt span", (s) => s.name === "kapsel.delivery.attempt" && s.attributes["kapsel.event_id"] === eventId);
    expect(attempt).toMatchObject({ traceId: TRACE_ID, parentSpanId: ingest.spanId, status: { code: StatusCode.UNSET } });
    expect(attempt.attributes).toMatchObject({
      "kapsel.tenant_id": dest.tenantId, "kapsel.endpoint_id": dest.endpointId, "kapsel.event_id": eventId, "kapsel.message_id": messageId,
      "kapsel.attempt": 1, "kapsel.event_type": "push", "kapsel.outcome": "delivered", "kapsel.decision": "delivered",
    });

    const request = await spanWhere("the HTTP client span", (s) => s.kind === SpanKind.CLIENT && s.parentSpanId === attempt.spanId);
    expect(request).toMatchObject({ name: "POST", traceId: TRACE_ID, spanId: sent![2] });
    expect(request.attributes).toMatchObject({
      "http.request.method": "POST", "http.response.status_code": 200, "server.address": "127.0.0.1", "server.port": sink.port,
      "url.full": `http://127.0.0.1:${sink.port}/hook?token=REDACTED`,
    });

    // Nothing secret anywhere: the query's token, the signing secret, the webhook signature.
    const everything = JSON.stringify(receiver.spans, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v));
    expect(everything).not.toContain("s3cr3t-in-query");
    expect(everything).not.toContain(dest.signingSecret);
    expect(everything).not.toContain(String(delivered!.headers["webhook-signature"]));

    const stored = await connect(databaseUrl);
    try {
      const { rows } = await stored.query("SELECT traceparent, tracestate FROM messages WHERE id = $1", [messageId]);
      expect(rows[0]).toEqual({ traceparent: `00-${TRACE_ID}-${ingest.spanId}-01`, tracestate: "vendor=abc,other=1" });
    } finally {
      await stored.end();
    }

    const batch = await spanWhere("the sequencer batch linked to the attempt", (s) => s.name === "kapsel.log.sequence" && s.links.some((l) => l.spanId === attempt.spanId));
    expect(batch.parentSpanId).toBe("");
    expect(batch.links.find((l) => l.spanId === attempt.spanId)).toMatchObject({ traceId: TRACE_ID });
    expect(batch.attributes["kapsel.batch.size"]).toBeGreaterThanOrEqual(1);
    expect(batch.attributes["kapsel.log.tree_size"]).toBeGreaterThanOrEqual(1);
  });

  it("joins every attempt of a fanned-out message to the trace of its RPC, from Connect headers and from gRPC metadata", async () => {
    const tenant = await createTenant(server.url, ADMIN_TOKEN, "fan-out-traced");
    const endpoints = [];
    for (let i = 0; i < 2; i++) endpoints.push((await addEndpoint(server.url, tenant.apiKey, `${sink.url}?e=${i}`, { eventTypes: ["order.paid"] })).endpointId);

    const connectTrace = "11111111111111111111111111111111";
    const r = await rpc(server.url, "Ingest", { payload: b64("{}"), eventType: "order.paid" }, tenant.apiKey, { traceparent: `00-${connectTrace}-2222222222222222-01` });
    expect(r.status).toBe(200);
    const ingest = await spanWhere("the Connect ingest span", (s) => s.kind === SpanKind.SERVER && s.attributes["kapsel.message_id"] === r.body.messageId);
    expect(ingest).toMatchObject({ name: "kapsel.v1.IngestService/Ingest", traceId: connectTrace, parentSpanId: "2222222222222222" });
    expect(ingest.attributes).toMatchObject({ "rpc.system": "connect_rpc", "rpc.service": "kapsel.v1.IngestService", "rpc.method": "Ingest", "kapsel.tenant_id": tenant.id });

    const attempts = await until("an attempt span per event", () => {
      const found = receiver.spans.filter((s) => s.name === "kapsel.delivery.attempt" && s.attributes["kapsel.message_id"] === r.body.messageId);
      return found.length === 2 ? found : undefined;
    });
    expect(attempts.map((a) => a.attributes["kapsel.endpoint_id"]).sort()).toEqual([...endpoints].sort());
    for (const a of attempts) expect(a).toMatchObject({ traceId: connectTrace, parentSpanId: ingest.spanId });
    const received = await sink.waitFor(2, (q) => (r.body.eventIds as string[]).includes(q.eventId));
    for (const q of received) expect(String(q.headers.traceparent)).toMatch(new RegExp(`^00-${connectTrace}-`));

    const grpcTrace = "33333333333333333333333333333333";
    const client = ingestClient(`127.0.0.1:${server.port}`);
    try {
      const metadata = bearer(tenant.apiKey);
      metadata.set("traceparent", `00-${grpcTrace}-4444444444444444-01`);
      const answer = await unary<{ messageId: string }>(client, "ingest", { payload: Buffer.from("{}"), eventType: "order.paid" }, metadata);
      const span = await spanWhere("the gRPC ingest span", (s) => s.kind === SpanKind.SERVER && s.attributes["kapsel.message_id"] === answer.messageId);
      expect(span).toMatchObject({ traceId: grpcTrace, parentSpanId: "4444444444444444" });
      expect(span.attributes["rpc.system"]).toBe("grpc");
    } finally {
      client.close();
    }
  });

  it("marks a failed attempt and its request as errors", async () => {
    const d = await addEndpoint(server.url, dest.apiKey, failing.url, { maxAttempts: 1 });
    const { eventId } = await gatewayIngest(d.endpointId, { traceparent: TRACEPARENT });
    await eventReaching(server.url, dest.apiKey, eventId, "EVENT_STATUS_FAILED");
    const attempt = await spanWhere("the failed attempt", (s) => s.name === "kapsel.delivery.attempt" && s.attributes["kapsel.event_id"] === eventId);
    expect(attempt.status.code).toBe(StatusCode.ERROR);
    expect(attempt.attributes).toMatchObject({ "kapsel.outcome": "http_error", "kapsel.decision": "failed", "error.type": "503" });
    const request = await spanWhere("its request", (s) => s.parentSpanId === attempt.spanId);
    expect(request.status.code).toBe(StatusCode.ERROR);
    expect(request.attributes).toMatchObject({ "http.response.status_code": 503, "error.type": "503" });
  });

  it("writes an IngestBatch in one group commit whose span links to the ingest span of each message", async () => {
    const batchTrace = "55555555555555555555555555555555";
    const r = await rpc(server.url, "IngestBatch", {
      events: [1, 2, 3].map((i) => ({ endpointId: dest.endpointId, payload: b64(`{"i":${i}}`), eventType: "batch.item" })),
    }, dest.apiKey, { traceparent: `00-${batchTrace}-6666666666666666-01` });
    expect(r.status).toBe(200);
    const messageIds = (r.body.results as { messageId: string }[]).map((x) => x.messageId);
    const ingest = await spanWhere("the IngestBatch span", (s) => s.name === "kapsel.v1.IngestService/IngestBatch" && s.traceId === batchTrace);
    expect(ingest.attributes["kapsel.batch.size"]).toBe(3);
    const commit = await spanWhere("the batch's group commit", (s) => s.name === "kapsel.ingest.group_commit" && s.links.some((l) => l.attributes["kapsel.message_id"] === messageIds[0]));
    // A write of several messages belongs to none of their traces: a root span with links.
    expect(commit.parentSpanId).toBe("");
    expect(commit.attributes["kapsel.batch.size"]).toBe(3);
    expect(commit.links.map((l) => l.attributes["kapsel.message_id"]).sort()).toEqual([...messageIds].sort());
    for (const l of commit.links) expect(l).toMatchObject({ traceId: batchTrace, spanId: ingest.spanId });
  });

  it("starts a new trace, linked to the message's, for an attempt long after the message arrived (a manual retry)", async () => {
    const d = await addEndpoint(server.url, dest.apiKey, failing.url, { maxAttempts: 1 });
    const { eventId, messageId } = await gatewayIngest(d.endpointId, { traceparent: TRACEPARENT });
    await eventReaching(server.url, dest.apiKey, eventId, "EVENT_STATUS_FAILED");
    const ingest = await spanWhere("its ingest span", (s) => s.kind === SpanKind.SERVER && s.attributes["kapsel.message_id"] === messageId);
    const db = await connect(databaseUrl);
    try {
      await db.query("UPDATE events SET received_at = received_at - interval '2 hours' WHERE id = $1", [eventId]);
    } finally {
      await db.end();
    }
    expect((await rpc(server.url, "RetryEvent", { eventId }, dest.apiKey)).status).toBe(200);
    const retried = await spanWhere("the retried attempt", (s) => s.name === "kapsel.delivery.attempt" && s.attributes["kapsel.event_id"] === eventId && s.attributes["kapsel.attempt"] === 2);
    expect(retried.parentSpanId).toBe("");
    expect(retried.traceId).not.toBe(TRACE_ID);
    expect(retried.links).toEqual([expect.objectContaining({ traceId: TRACE_ID, spanId: ingest.spanId })]);
    // The destination is told about the new trace.
    const requests = await failing.waitFor(2, (q) => q.eventId === eventId);
    expect(String(requests[1]!.headers.traceparent)).toMatch(new RegExp(`^00-${retried.traceId}-`));
  });

  it("ignores a malformed, repeated or oversized trace context: the ingest span starts a trace of its own", async () => {
    const cases: Record<string, string | string[]>[] = [
      { traceparent: "00-zzf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" },
      { traceparent: `00-${"0".repeat(32)}-${PARENT_ID}-01` },
      { traceparent: `${TRACEPARENT}-extra` },
      { traceparent: "x".repeat(8000) },
      // Two header lines: the spec says to ignore both.
      { traceparent: [TRACEPARENT, `00-${"a".repeat(32)}-${PARENT_ID}-01`] },
    ];
    for (const headers of cases) {
      const { messageId } = await gatewayIngest(dest.endpointId, headers);
      const span = await spanWhere("the ingest span", (s) => s.kind === SpanKind.SERVER && s.attributes["kapsel.message_id"] === messageId);
      expect(span.parentSpanId, JSON.stringify(headers).slice(0, 100)).toBe("");
      expect(span.traceId).not.toBe(TRACE_ID);
    }
    // A valid traceparent with a tracestate past 512 bytes: the trace continues, the state is dropped.
    const { eventId } = await gatewayIngest(dest.endpointId, { traceparent: TRACEPARENT, tracestate: `k=${"v".repeat(600)}` });
    const [delivered] = await sink.waitFor(1, (r) => r.eventId === eventId);
    expect(String(delivered!.headers.traceparent)).toMatch(new RegExp(`^00-${TRACE_ID}-`));
    expect(delivered!.headers.tracestate).toBeUndefined();
  });
});

describe("tracing off", () => {
  let off: TestServer;
  let offReceiver: OtlpReceiver;
  beforeAll(async () => {
    offReceiver = await startOtlpReceiver();
    // An endpoint is configured, but the SDK is disabled: nothing may reach the receiver.
    off = await startTestServer({ OTEL_SDK_DISABLED: "true", OTEL_EXPORTER_OTLP_ENDPOINT: offReceiver.url, OTEL_BSP_SCHEDULE_DELAY: "50" });
  });
  afterAll(async () => {
    await off?.stop();
    await offReceiver?.close();
  });

  it("exports nothing, adds no traceparent of its own, and carries a sender's valid one through unchanged", async () => {
    const d = await createDestination(off.url, sink.url);
    const post = (headers: Record<string, string>) => fetch(`${off.url}/ingest/${d.endpointId}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: "{}" })
      .then(async (res) => ((await res.json()) as { event_id: string; message_id: string }));
    const plain = await post({});
    const carried = await post({ traceparent: TRACEPARENT, tracestate: "vendor=abc" });
    const malformed = await post({ traceparent: TRACEPARENT.toUpperCase(), tracestate: "vendor=abc" });
    const received = await sink.waitFor(3, (r) => [plain, carried, malformed].some((e) => e.event_id === r.eventId));
    const of = (e: { event_id: string }) => received.find((r) => r.eventId === e.event_id)!.headers;
    expect(of(plain).traceparent).toBeUndefined();
    expect(of(carried)).toMatchObject({ traceparent: TRACEPARENT, tracestate: "vendor=abc" });
    expect(of(malformed).traceparent).toBeUndefined();
    expect(of(malformed).tracestate).toBeUndefined();

    const db = await connect(off.databaseUrl);
    try {
      const { rows } = await db.query("SELECT id, traceparent, tracestate FROM messages WHERE id = ANY($1) ORDER BY id", [[plain.message_id, carried.message_id, malformed.message_id]]);
      expect(rows).toEqual([
        { id: plain.message_id, traceparent: null, tracestate: null },
        { id: carried.message_id, traceparent: TRACEPARENT, tracestate: "vendor=abc" },
        { id: malformed.message_id, traceparent: null, tracestate: null },
      ].sort((a, b) => a.id.localeCompare(b.id)));
      // Attempts store no span of their own.
      const attempts = await db.query("SELECT count(*)::int AS n FROM delivery_attempts WHERE traceparent IS NOT NULL");
      expect(attempts.rows[0].n).toBe(0);
    } finally {
      await db.end();
    }
    // Several export intervals, then a stop (which would flush): still nothing.
    await new Promise((r) => setTimeout(r, 300));
    await off.stop();
    expect(offReceiver.requests).toBe(0);
  });
});
