// Delivery end to end on loopback: ingest through the gateway, a real dispatcher, real HTTP to sink
// servers that succeed, fail, hang, throttle, redirect, answer 410 or reset the connection.
import { createHash } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "../../test/support/database.ts";
import { createDestination, eventReaching, getEvent, ingest, until } from "../../test/support/delivery.ts";
import { sample, scrape } from "../../test/support/metrics.ts";
import { rpc } from "../../test/support/rpc.ts";
import { startTestServer, type TestServer } from "../../test/support/server.ts";
import { alwaysFail, failTimes, gone, hang, redirect, reset, startSink, succeed, throttle, type Sink } from "../../test/support/sink.ts";

let server: TestServer;
const sinks: Sink[] = [];
beforeAll(async () => {
  server = await startTestServer({ KAPSEL_RETRY_BASE_MS: "20", KAPSEL_RETRY_CAP_MS: "5000" });
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

const sha256 = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");

async function attemptRows(eventId: string): Promise<number> {
  const db = await connect(server.databaseUrl);
  try {
    return Number((await db.query("SELECT count(*) FROM delivery_attempts WHERE event_id = $1", [eventId])).rows[0].count);
  } finally {
    await db.end();
  }
}

describe("a successful delivery", () => {
  it("arrives with the body, content type and kept headers, signed so the standardwebhooks package verifies it", async () => {
    const s = await sink();
    const d = await createDestination(server.url, s.url);
    const body = JSON.stringify({ type: "invoice.paid", amount: 4200, note: "grüße" });
    const eventId = await ingest(server.url, d.endpointId, body, {
      "content-type": "application/vnd.acme+json; charset=utf-8",
      "x-github-event": "push",
      "x-event-id": "evt_123",
      "x-not-kept": "dropped",
    });
    const event = await eventReaching(server.url, d.apiKey, eventId, "EVENT_STATUS_DELIVERED");
    expect(event.attempts).toHaveLength(1);

    const [req] = s.forEvent(eventId);
    expect(req!.method).toBe("POST");
    expect(req!.path).toBe("/hook");
    expect(req!.body.toString("utf8")).toBe(body);
    expect(req!.headers["content-type"]).toBe("application/vnd.acme+json; charset=utf-8");
    expect(req!.headers["x-github-event"]).toBe("push");
    expect(req!.headers["x-event-id"]).toBe("evt_123");
    expect(req!.headers["x-not-kept"]).toBeUndefined();
    expect(req!.headers["user-agent"]).toMatch(/^Kapsel-Webhooks\//);
    expect(req!.headers["webhook-id"]).toBe(eventId);
    expect(req!.headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    expect(new Webhook(d.signingSecret).verify(req!.body.toString("utf8"), req!.headers as Record<string, string>)).toEqual(JSON.parse(body));
    const stranger = new Webhook(`whsec_${Buffer.alloc(24, 7).toString("base64")}`);
    expect(() => stranger.verify(req!.body.toString("utf8"), req!.headers as Record<string, string>)).toThrow(/No matching signature/);
  });

  it("delivers binary payloads byte for byte", async () => {
    const s = await sink();
    const d = await createDestination(server.url, s.url);
    const bytes = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80, 0x0a, 0x0d, 0]);
    const eventId = await ingest(server.url, d.endpointId, bytes, { "content-type": "application/octet-stream" });
    await eventReaching(server.url, d.apiKey, eventId, "EVENT_STATUS_DELIVERED");
    expect(s.forEvent(eventId)[0]!.body.equals(bytes)).toBe(true);
    expect(s.forEvent(eventId)[0]!.headers["content-type"]).toBe("application/octet-stream");
  });

  it("after RotateEndpointSecret the next delivery verifies with both the old and the new secret", async () => {
    const s = await sink();
    const d = await createDestination(server.url, s.url);
    const rotated = await rpc(server.url, "RotateEndpointSecret", { endpointId: d.endpointId }, d.apiKey);
    expect(rotated.status).toBe(200);
    const newSecret = rotated.body.signingSecret as string;
    expect(newSecret).not.toBe(d.signingSecret);

    const body = '{"type":"after.rotation"}';
    const eventId = await ingest(server.url, d.endpointId, body);
    await eventReaching(server.url, d.apiKey, eventId, "EVENT_STATUS_DELIVERED");
    const req = s.forEvent(eventId)[0]!;
    const headers = req.headers as Record<string, string>;
    expect(headers["webhook-signature"]!.split(" ")).toHaveLength(2);
    expect(new Webhook(d.signingSecret).verify(body, headers)).toEqual({ type: "after.rotation" });
    expect(new Webhook(newSecret).verify(body, headers)).toEqual({ type: "after.rotation" });
  });
});

describe("attempt history", () => {
  it("lists every attempt with its number, outcome, status, payload and response hashes; one row per request the sink saw", async () => {
    const s = await sink(failTimes(2, 503));
    const d = await createDestination(server.url, s.url);
    const body = '{"type":"flaky"}';
    const eventId = await ingest(server.url, d.endpointId, body);
    const event = await eventReaching(server.url, d.apiKey, eventId, "EVENT_STATUS_DELIVERED");

    expect(event.attemptCount).toBe(3);
    expect(event.attempts.map((a: any) => [a.attempt, a.outcome, a.statusCode])).toEqual([
      [1, "ATTEMPT_OUTCOME_HTTP_ERROR", 503],
      [2, "ATTEMPT_OUTCOME_HTTP_ERROR", 503],
      [3, "ATTEMPT_OUTCOME_DELIVERED", 200],
    ]);
    for (const a of event.attempts) {
      expect(a.payloadSha256).toBe(sha256(body));
      expect(a.url).toBe(s.url);
      expect(a.id).toMatch(/^[0-9a-f-]{36}$/);
    }
    expect(event.attempts.map((a: any) => a.responseSha256)).toEqual([sha256("not yet"), sha256("not yet"), sha256("ok")]);
    expect(event.attempts.map((a: any) => a.responseExcerpt)).toEqual(["not yet", "not yet", "ok"]);
    expect(s.forEvent(eventId)).toHaveLength(3);
    expect(await attemptRows(eventId)).toBe(3);
  });

  it("keeps the response excerpt byte-exact (quotes, braces, backslashes, non-ASCII) minus NUL bytes", async () => {
    const tricky = 'he said "hi", {a,b} \\ back\\slash; NULL; ünïcödé ✓\0end';
    const s = await sink(() => ({ status: 200, body: tricky }));
    const d = await createDestination(server.url, s.url);
    const eventId = await ingest(server.url, d.endpointId);
    const event = await eventReaching(server.url, d.apiKey, eventId, "EVENT_STATUS_DELIVERED");
    expect(event.attempts[0].responseExcerpt).toBe(tricky.replace("\0", ""));
    expect(event.attempts[0].responseSha256).toBe(sha256(tricky));
  });

  it("a destination that hangs past the endpoint timeout is a timeout attempt with the limit in its error", async () => {
    const s = await sink(hang);
    const d = await createDestination(server.url, s.url, { timeoutMs: 300, maxAttempts: 2 });
    const eventId = await ingest(server.url, d.endpointId);
    const event = await eventReaching(server.url, d.apiKey, eventId, "EVENT_STATUS_FAILED");
    expect(event.attempts.map((a: any) => [a.attempt, a.outcome, a.statusCode ?? 0])).toEqual([
      [1, "ATTEMPT_OUTCOME_TIMEOUT", 0],
      [2, "ATTEMPT_OUTCOME_TIMEOUT", 0],
    ]);
    for (const a of event.attempts) {
      expect(a.error).toBe("no complete response within 300 ms");
      expect(a.responseSha256 ?? "").toBe("");
    }
    expect(s.forEvent(eventId)).toHaveLength(2);
    expect(await attemptRows(eventId)).toBe(2);
  });

  it("a connection reset is a network_error attempt with the error text", async () => {
    const s = await sink(reset);
    const d = await createDestination(server.url, s.url, { maxAttempts: 2 });
    const eventId = await ingest(server.url, d.endpointId);
    const event = await eventReaching(server.url, d.apiKey, eventId, "EVENT_STATUS_FAILED");
    expect(event.attempts.map((a: any) => [a.attempt, a.outcome])).toEqual([
      [1, "ATTEMPT_OUTCOME_NETWORK_ERROR"],
      [2, "ATTEMPT_OUTCOME_NETWORK_ERROR"],
    ]);
    for (const a of event.attempts) expect(a.error).toMatch(/UND_ERR_SOCKET|ECONNRESET|other side closed|socket/i);
    expect(s.forEvent(eventId)).toHaveLength(2);
    expect(await attemptRows(eventId)).toBe(2);
  });

  it("a refused connection is a network_error attempt naming the cause", async () => {
    const s = await sink();
    const url = s.url;
    await s.close();
    sinks.splice(sinks.indexOf(s), 1);
    const d = await createDestination(server.url, url, { maxAttempts: 1 });
    const eventId = await ingest(server.url, d.endpointId);
    const event = await eventReaching(server.url, d.apiKey, eventId, "EVENT_STATUS_FAILED");
    expect(event.attempts).toHaveLength(1);
    expect(event.attempts[0]).toMatchObject({ attempt: 1, outcome: "ATTEMPT_OUTCOME_NETWORK_ERROR" });
    expect(event.attempts[0].error).toMatch(/ECONNREFUSED/);
  });
});

describe("outcomes that are not a plain success", () => {
  it("a 3xx is a failed attempt and the redirect is not followed", async () => {
    const target = await sink();
    const s = await sink(redirect(target.url, 307));
    const d = await createDestination(server.url, s.url, { maxAttempts: 2 });
    const eventId = await ingest(server.url, d.endpointId);
    const event = await eventReaching(server.url, d.apiKey, eventId, "EVENT_STATUS_FAILED");
    expect(event.attempts.map((a: any) => [a.attempt, a.outcome, a.statusCode])).toEqual([
      [1, "ATTEMPT_OUTCOME_HTTP_ERROR", 307],
      [2, "ATTEMPT_OUTCOME_HTTP_ERROR", 307],
    ]);
    expect(event.attempts[0].error).toBe(`redirect to ${target.url} not followed`);
    expect(s.forEvent(eventId)).toHaveLength(2);
    expect(target.requests).toHaveLength(0);
  });

  it("410 Gone disables the endpoint and fails the event at once", async () => {
    const s = await sink(gone);
    const d = await createDestination(server.url, s.url, { maxAttempts: 10 });
    const eventId = await ingest(server.url, d.endpointId);
    const event = await eventReaching(server.url, d.apiKey, eventId, "EVENT_STATUS_FAILED");
    expect(event.attempts.map((a: any) => [a.attempt, a.outcome, a.statusCode])).toEqual([[1, "ATTEMPT_OUTCOME_HTTP_ERROR", 410]]);
    const endpoint = (await rpc(server.url, "GetEndpoint", { endpointId: d.endpointId }, d.apiKey)).body.endpoint;
    expect(endpoint.enabled ?? false).toBe(false);
    expect(endpoint.disabledReason).toBe("destination answered 410 Gone");
    expect(s.requests).toHaveLength(1);
    // A disabled endpoint takes no more events.
    const refused = await fetch(`${server.url}/ingest/${d.endpointId}`, { method: "POST", body: "{}" });
    expect(refused.status).toBe(409);
  });

  it("after max attempts the event is failed (dead letter) and no further request is made", async () => {
    const s = await sink(alwaysFail(500));
    const d = await createDestination(server.url, s.url, { maxAttempts: 3 });
    const eventId = await ingest(server.url, d.endpointId);
    const event = await eventReaching(server.url, d.apiKey, eventId, "EVENT_STATUS_FAILED");
    expect(event.attempts.map((a: any) => a.attempt)).toEqual([1, 2, 3]);
    expect(event.attemptCount).toBe(3);
    expect(event.nextAttemptAt).toBeUndefined();
    const db = await connect(server.databaseUrl);
    try {
      expect((await db.query("SELECT count(*)::int AS n FROM delivery_jobs WHERE event_id = $1", [eventId])).rows[0].n).toBe(0);
    } finally {
      await db.end();
    }
    expect(s.forEvent(eventId)).toHaveLength(3);
  });

  it("429 with Retry-After: the next attempt comes no earlier than asked", async () => {
    const s = await sink(throttle(1, "1"));
    const d = await createDestination(server.url, s.url);
    const eventId = await ingest(server.url, d.endpointId);
    const event = await eventReaching(server.url, d.apiKey, eventId, "EVENT_STATUS_DELIVERED");
    expect(event.attempts.map((a: any) => [a.attempt, a.statusCode])).toEqual([[1, 429], [2, 200]]);
    const [first, second] = s.forEvent(eventId);
    // The retry base is 20 ms, so only Retry-After can explain a wait of a second.
    expect(second!.at - first!.answeredAt!).toBeGreaterThanOrEqual(1000);
  });

  it("503 with Retry-After as an HTTP date is honoured too", async () => {
    // A whole second at least 2 s ahead, so the date's 1 s resolution cannot shorten the wait below 1 s.
    let asked = 0;
    const s = await sink((_req, nth) => {
      if (nth > 0) return { status: 200, body: "ok" };
      asked = (Math.floor(Date.now() / 1000) + 2) * 1000;
      return { status: 503, headers: { "retry-after": new Date(asked).toUTCString() }, body: "maintenance" };
    });
    const d = await createDestination(server.url, s.url);
    const eventId = await ingest(server.url, d.endpointId);
    await eventReaching(server.url, d.apiKey, eventId, "EVENT_STATUS_DELIVERED");
    const [, second] = s.forEvent(eventId);
    expect(second!.at).toBeGreaterThanOrEqual(asked);
  });
});

describe("metrics", () => {
  const value = (text: string, name: string, labels: Record<string, string> = {}) => sample(text, name, labels) ?? 0;

  it("count attempts by outcome, time them and the whole way from ingest to delivered, and report the queue and circuits by state", async () => {
    const before = await scrape(server);
    const ok = await sink();
    const flaky = await sink(failTimes(1, 500));
    const a = await createDestination(server.url, ok.url);
    const b = await createDestination(server.url, flaky.url);
    const started = performance.now();
    const ids = [await ingest(server.url, a.endpointId), await ingest(server.url, a.endpointId)];
    const flakyId = await ingest(server.url, b.endpointId);
    for (const id of ids) await eventReaching(server.url, a.apiKey, id, "EVENT_STATUS_DELIVERED");
    await eventReaching(server.url, b.apiKey, flakyId, "EVENT_STATUS_DELIVERED");
    const elapsed = (performance.now() - started) / 1000;
    // Queue and circuit gauges are refreshed in the background: wait for a refresh after the work.
    const after = await until("the queue gauge to be refreshed empty", async () => {
      const m = await scrape(server);
      return sample(m, "kapsel_delivery_queue_jobs") === 0 && value(m, "kapsel_delivery_attempts_total", { outcome: "delivered" }) - value(before, "kapsel_delivery_attempts_total", { outcome: "delivered" }) === 3 ? m : undefined;
    });

    const delta = (name: string, labels: Record<string, string> = {}) => value(after, name, labels) - value(before, name, labels);
    expect(delta("kapsel_delivery_attempts_total", { outcome: "delivered" })).toBe(3);
    expect(delta("kapsel_delivery_attempts_total", { outcome: "http_error" })).toBe(1);
    expect(delta("kapsel_delivery_attempt_duration_seconds_count", { outcome: "delivered" })).toBe(3);
    expect(delta("kapsel_delivery_attempt_duration_seconds_count", { outcome: "http_error" })).toBe(1);
    expect(after).toMatch(/^kapsel_delivery_attempt_duration_seconds_bucket\{le="0\.005",outcome="delivered"\} \d+$/m);
    // One observation per delivered event, each at most the time the test spent on all three.
    expect(delta("kapsel_delivery_ingest_to_delivered_seconds_count")).toBe(3);
    const sum = delta("kapsel_delivery_ingest_to_delivered_seconds_sum");
    expect(sum).toBeGreaterThan(0);
    expect(sum).toBeLessThanOrEqual(3 * elapsed);
    expect(after).toMatch(/^# TYPE kapsel_delivery_queue_jobs gauge$/m);
    expect(sample(after, "kapsel_delivery_queue_oldest_due_age_seconds")).toBe(0);
    // Circuits are counted by state; the flaky endpoint's breaker closed again. No endpoint is named.
    expect(sample(after, "kapsel_delivery_circuits", { state: "open" })).toBe(0);
    expect(sample(after, "kapsel_delivery_circuits", { state: "closed" })).toBeGreaterThanOrEqual(2);
    for (const id of [a.endpointId, b.endpointId, ...ids, flakyId]) expect(after).not.toContain(id);
    expect(after).not.toContain(ok.url);
  });
});

describe("reading an event", () => {
  it("GetEvent returns the payload and the kept headers", async () => {
    const s = await sink(succeed());
    const d = await createDestination(server.url, s.url);
    const eventId = await ingest(server.url, d.endpointId, '{"a":1}', { "x-event-type": "thing.created" });
    await eventReaching(server.url, d.apiKey, eventId, "EVENT_STATUS_DELIVERED");
    const event = await getEvent(server.url, d.apiKey, eventId);
    expect(Buffer.from(event.payload, "base64").toString()).toBe('{"a":1}');
    expect(event.headers).toEqual({ "x-event-type": "thing.created" });
    expect(event.contentType).toBe("application/json");
    expect(event.endpointId).toBe(d.endpointId);
  });
});
