// The circuit breaker on the real-time path: a failing destination opens it, nothing is sent and
// no attempt is spent while it is open, after the (short, configured) open timeout at most two
// probes go out, and a successful probe closes it and lets the backlog drain. The state is never
// written by the test; it is only read back through GetEndpointHealth and /metrics (which counts
// circuits by state and never names an endpoint: an endpoint id is the gateway's credential).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDestination, getEvent, ingest, until } from "../../test/support/delivery.ts";
import { connect } from "../../test/support/database.ts";
import { sample, scrape } from "../../test/support/metrics.ts";
import { rpc } from "../../test/support/rpc.ts";
import { startTestServer, type TestServer } from "../../test/support/server.ts";
import { startSink, type Reply, type Sink } from "../../test/support/sink.ts";

const OPEN_MS = 700;
let server: TestServer;
let sink: Sink;
let other: Sink | undefined;
beforeAll(async () => {
  server = await startTestServer({
    KAPSEL_RETRY_BASE_MS: "20",
    KAPSEL_CIRCUIT_OPEN_MS: String(OPEN_MS),
    KAPSEL_CIRCUIT_CONSECUTIVE_FAILURES: "3",
  });
});
afterAll(async () => {
  await server?.stop();
  await sink?.close();
  await other?.close();
});

async function jobRows(): Promise<{ event_id: string; attempt: number; lease_until: Date | null }[]> {
  const db = await connect(server.databaseUrl);
  try {
    return (await db.query("SELECT event_id, attempt, lease_until FROM delivery_jobs ORDER BY event_id")).rows;
  } finally {
    await db.end();
  }
}

async function health(apiKey: string, endpointId: string) {
  const r = await rpc(server.url, "GetEndpointHealth", { endpointId }, apiKey);
  expect(r.status).toBe(200);
  return r.body;
}


describe("circuit breaker", () => {
  it("opens after 3 consecutive failures, holds deliveries while open, half-opens with at most 2 probes after the timeout, closes and drains", async () => {
    let mode: "fail" | "hold" | "ok" = "fail";
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    sink = await startSink((): Reply => {
      if (mode === "fail") return { status: 500, body: "down" };
      if (mode === "hold") return { status: 200, body: "back", after: released };
      return { status: 200, body: "ok" };
    });
    const d = await createDestination(server.url, sink.url, { maxAttempts: 20, timeoutMs: 30_000 });

    // Closed → Open: one event fails three times in a row.
    const first = await ingest(server.url, d.endpointId);
    const circuits = (m: string) => ["closed", "half_open", "open"].map((state) => sample(m, "kapsel_delivery_circuits", { state }));
    const opened = await until("the circuit to be seen open by GetEndpointHealth and /metrics", async () => {
      const [h, m] = await Promise.all([health(d.apiKey, d.endpointId), scrape(server)]);
      return h.circuitState === "CIRCUIT_STATE_OPEN" && circuits(m)[2] === 1 ? h : undefined;
    });
    const openedAt = Date.parse(opened.openedAt);
    expect(opened.consecutiveFailures).toBe(3);
    expect(opened.lastError).toBe("HTTP 500");
    expect(sink.requests).toHaveLength(3);

    // From here on, requests are held open until the test releases them: every probe stays in
    // flight, so what is in flight and what is pending can be read without racing the clock.
    mode = "hold";
    const backlog: string[] = [];
    for (let i = 0; i < 9; i++) backlog.push(await ingest(server.url, d.endpointId, `{"n":${i}}`));

    // Half-open after the real timeout: exactly two probes go out, and no more while they are out.
    const probes = await sink.waitFor(5);
    expect(probes[3]!.at).toBeGreaterThanOrEqual(openedAt + OPEN_MS);
    // The two earliest due jobs (which ones depends on the first event's jittered retry time).
    expect(new Set(probes.slice(3).map((r) => r.eventId)).size).toBe(2);
    await new Promise((r) => setTimeout(r, 1_500));
    expect(sink.requests).toHaveLength(5);
    expect(sink.requests.filter((r) => r.answeredAt === undefined)).toHaveLength(2);
    expect((await health(d.apiKey, d.endpointId)).circuitState).toBe("CIRCUIT_STATE_HALF_OPEN");

    // Nothing else was attempted: the backlog is pending with no attempts spent, except the probe.
    const probed = new Set(sink.requests.slice(3).map((r) => r.eventId));
    for (const id of backlog) {
      const e = await getEvent(server.url, d.apiKey, id);
      if (probed.has(id)) {
        expect(e.status).toBe("EVENT_STATUS_DELIVERING");
      } else {
        expect(e.status).toBe("EVENT_STATUS_PENDING");
        expect(e.attemptCount ?? 0).toBe(0);
        expect(e.attempts ?? []).toEqual([]);
      }
    }
    // The gauges are refreshed in the background: wait for a refresh that saw this state.
    const metrics = await until("the gauges to show the half-open circuit", async () => {
      const m = await scrape(server);
      return circuits(m)[1] === 1 ? m : undefined;
    });
    expect(circuits(metrics)).toEqual([0, 1, 0]);
    expect(metrics).not.toContain(d.endpointId);
    expect(sample(metrics, "kapsel_delivery_queue_jobs")).toBe(10);
    expect(sample(metrics, "kapsel_delivery_queue_oldest_due_age_seconds")).toBeGreaterThan(0);

    // The probes succeed: closed, and the whole backlog drains.
    mode = "ok";
    release();
    const all = [first, ...backlog];
    await until("every event to be delivered", async () => {
      const events = await Promise.all(all.map((id) => getEvent(server.url, d.apiKey, id)));
      return events.every((e) => e.status === "EVENT_STATUS_DELIVERED") ? events : undefined;
    });
    const h = await health(d.apiKey, d.endpointId);
    expect(h.circuitState).toBe("CIRCUIT_STATE_CLOSED");
    expect(h.consecutiveFailures ?? 0).toBe(0);
    expect(h.pendingEvents ?? 0).toBe(0);

    const firstEvent = await getEvent(server.url, d.apiKey, first);
    expect(firstEvent.attempts.map((a: any) => a.statusCode)).toEqual([500, 500, 500, 200]);
    for (const id of backlog) {
      expect((await getEvent(server.url, d.apiKey, id)).attemptCount).toBe(1);
      expect(sink.forEvent(id)).toHaveLength(1);
    }
    expect(sink.requests).toHaveLength(13);
  });

  it("an endpoint disabled while its circuit is open is not probed: its events wait untouched until it is enabled again", async () => {
    let healthy = false;
    other = await startSink(() => (healthy ? { status: 200, body: "ok" } : { status: 500, body: "down" }));
    const d = await createDestination(server.url, other.url, { maxAttempts: 20 });
    const first = await ingest(server.url, d.endpointId);
    await until("the circuit to open", async () => ((await health(d.apiKey, d.endpointId)).circuitState === "CIRCUIT_STATE_OPEN" ? true : undefined));
    const second = await ingest(server.url, d.endpointId);
    expect((await rpc(server.url, "UpdateEndpoint", { endpointId: d.endpointId, enabled: false }, d.apiKey)).status).toBe(200);
    const before = await jobRows();

    // Several open timeouts and probe rounds pass.
    await new Promise((r) => setTimeout(r, 4 * OPEN_MS + 1_000));
    expect(other.requests).toHaveLength(3);
    const after = await jobRows();
    expect(after).toEqual(before);
    expect(after.map((j) => [j.event_id, j.attempt, j.lease_until])).toEqual(
      [[first, 3, null], [second, 0, null]].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    );
    for (const id of [first, second]) expect((await getEvent(server.url, d.apiKey, id)).status).toBe("EVENT_STATUS_PENDING");

    healthy = true;
    expect((await rpc(server.url, "UpdateEndpoint", { endpointId: d.endpointId, enabled: true }, d.apiKey)).status).toBe(200);
    for (const id of [first, second]) {
      await until(`event ${id} to be delivered`, async () => ((await getEvent(server.url, d.apiKey, id)).status === "EVENT_STATUS_DELIVERED" ? true : undefined));
    }
    expect((await getEvent(server.url, d.apiKey, first)).attempts.map((a: any) => a.statusCode)).toEqual([500, 500, 500, 200]);
    expect((await getEvent(server.url, d.apiKey, second)).attempts.map((a: any) => a.statusCode)).toEqual([200]);
    expect((await health(d.apiKey, d.endpointId)).circuitState).toBe("CIRCUIT_STATE_CLOSED");
  });
});
