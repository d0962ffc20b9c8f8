// Crash safety and graceful shutdown with real `kapsel serve` processes on one database: kill -9
// mid-delivery loses nothing (leases expire, the work is redone: at-least-once), and SIGTERM lets
// in-flight deliveries finish and records them before exiting 0.
import { afterAll, describe, expect, it } from "vitest";
import { connect, createTestDatabase } from "../../test/support/database.ts";
import { createDestination, getEvent, ingest, until } from "../../test/support/delivery.ts";
import { spawnServer, type ServerProcess } from "../../test/support/server.ts";
import { slow, startSink, type Reply, type Sink } from "../../test/support/sink.ts";

const processes: ServerProcess[] = [];
const sinks: Sink[] = [];
afterAll(async () => {
  await Promise.all(processes.map((p) => p.stop("SIGKILL")));
  await Promise.all(sinks.map((s) => s.close()));
});

async function serve(env: Record<string, string>): Promise<ServerProcess> {
  const p = await spawnServer(env);
  processes.push(p);
  return p;
}

async function rows<T = any>(databaseUrl: string, text: string, values: unknown[] = []): Promise<T[]> {
  const db = await connect(databaseUrl);
  try {
    return (await db.query(text, values)).rows as T[];
  } finally {
    await db.end();
  }
}

function countBy<T>(items: T[], key: (t: T) => string): Map<string, number> {
  const m = new Map<string, number>();
  for (const i of items) m.set(key(i), (m.get(key(i)) ?? 0) + 1);
  return m;
}

describe("crash safety", () => {
  it("a server killed with SIGKILL mid-delivery loses nothing: after a restart every event is delivered, duplicates only where a lease expired", async () => {
    const databaseUrl = await createTestDatabase();
    const sink = await startSink(slow(400));
    sinks.push(sink);
    // The lease outlives an attempt (1 s timeout) with room to spare, so that on a loaded machine the
    // restarted process's own deliveries do not outlive theirs: a third copy is at-least-once too,
    // but not what this test is about.
    const env = { DATABASE_URL: databaseUrl, KAPSEL_DELIVERY_LEASE_MS: "3000", KAPSEL_RETRY_BASE_MS: "20" };
    const first = await serve(env);
    const d = await createDestination(first.url, sink.url, { timeoutMs: 1000 });
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) ids.push(await ingest(first.url, d.endpointId, `{"n":${i}}`));

    // Deliveries are in flight (the sink holds each for 400 ms): kill the process now.
    await sink.waitFor(1);
    first.child.kill("SIGKILL");
    expect(await first.exited).toBe("SIGKILL");
    const seenBeforeKill = new Set(sink.requests.map((r) => r.eventId));
    const recordedBeforeKill = new Set((await rows(databaseUrl, "SELECT event_id FROM delivery_attempts WHERE outcome = 'delivered'")).map((r) => r.event_id));
    const inFlight = [...seenBeforeKill].filter((id) => !recordedBeforeKill.has(id));
    expect(inFlight.length).toBeGreaterThan(0);

    const second = await serve(env);
    await until("every accepted event to be delivered", async () => {
      const events = await Promise.all(ids.map((id) => getEvent(second.url, d.apiKey, id)));
      return events.every((e) => e.status === "EVENT_STATUS_DELIVERED") ? events : undefined;
    }, 60_000);

    expect(await rows(databaseUrl, "SELECT * FROM delivery_jobs")).toEqual([]);
    const perEvent = countBy(sink.requests, (r) => r.eventId);
    for (const id of ids) expect(perEvent.get(id) ?? 0, id).toBeGreaterThanOrEqual(1);
    const duplicated = [...perEvent].filter(([, n]) => n > 1).map(([id]) => id);
    // Redone: exactly the deliveries that were in flight when the process died, once more each.
    expect(duplicated.sort()).toEqual(inFlight.sort());
    for (const id of duplicated) expect(perEvent.get(id)).toBe(2);
    // Each event has exactly one recorded successful attempt.
    const delivered = await rows(databaseUrl, "SELECT event_id, count(*)::int AS n FROM delivery_attempts WHERE outcome = 'delivered' GROUP BY event_id");
    expect(delivered).toHaveLength(ids.length);
    expect(delivered.every((r) => r.n === 1)).toBe(true);
    await second.stop();
  });
});

describe("graceful shutdown", () => {
  it("on SIGTERM in-flight deliveries finish and are recorded, unsent jobs go back to the queue, and the process exits 0", async () => {
    const databaseUrl = await createTestDatabase();
    const sink = await startSink(slow(500));
    sinks.push(sink);
    const env = { DATABASE_URL: databaseUrl, KAPSEL_RETRY_BASE_MS: "20", KAPSEL_DELIVERY_PER_ENDPOINT_CONCURRENCY: "4" };
    const first = await serve(env);
    const d = await createDestination(first.url, sink.url, { timeoutMs: 5000 });
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push(await ingest(first.url, d.endpointId, `{"n":${i}}`));
    await sink.waitFor(1);

    expect(await first.stop("SIGTERM")).toBe(0);
    // Every request the sink saw was answered and recorded as a delivered attempt.
    const seen = [...new Set(sink.requests.map((r) => r.eventId))];
    expect(seen.length).toBeGreaterThan(0);
    expect(sink.requests.every((r) => r.answeredAt !== undefined)).toBe(true);
    const attempts = await rows(databaseUrl, "SELECT event_id, outcome FROM delivery_attempts");
    expect(attempts.map((a) => a.event_id).sort()).toEqual(sink.requests.map((r) => r.eventId).sort());
    expect(attempts.every((a) => a.outcome === "delivered")).toBe(true);
    // Nothing stays leased; what was not sent waits as pending with no attempt spent.
    expect(await rows(databaseUrl, "SELECT event_id FROM delivery_jobs WHERE lease_until IS NOT NULL")).toEqual([]);
    const statuses = await rows(databaseUrl, "SELECT id, status, attempt_count FROM events");
    for (const e of statuses) {
      if (seen.includes(e.id)) expect([e.status, e.attempt_count]).toEqual(["delivered", 1]);
      else expect([e.status, e.attempt_count]).toEqual(["pending", 0]);
    }
    const unsent = await rows(databaseUrl, "SELECT attempt FROM delivery_jobs");
    expect(unsent.every((j) => j.attempt === 0)).toBe(true);

    // A new process delivers the rest, each exactly once overall.
    const second = await serve(env);
    await until("the rest to be delivered", async () => {
      const events = await Promise.all(ids.map((id) => getEvent(second.url, d.apiKey, id)));
      return events.every((e) => e.status === "EVENT_STATUS_DELIVERED") ? events : undefined;
    }, 60_000);
    const perEvent = countBy(sink.requests, (r) => r.eventId);
    expect(ids.map((id) => perEvent.get(id))).toEqual(ids.map(() => 1));
    expect(await second.stop("SIGTERM")).toBe(0);
  });

  it("a delivery still in flight at the shutdown timeout is aborted, recorded as a failed attempt, and retried by the next process", async () => {
    const databaseUrl = await createTestDatabase();
    let hanging = true;
    const sink = await startSink((): Reply => (hanging ? { hang: true } : { status: 200, body: "ok" }));
    sinks.push(sink);
    const env = { DATABASE_URL: databaseUrl, KAPSEL_RETRY_BASE_MS: "20", KAPSEL_SHUTDOWN_TIMEOUT_MS: "500" };
    const first = await serve(env);
    const d = await createDestination(first.url, sink.url, { timeoutMs: 60_000 });
    const eventId = await ingest(first.url, d.endpointId);
    await sink.waitFor(1);
    expect(await first.stop("SIGTERM")).toBe(0);
    const attempts = await rows(databaseUrl, "SELECT attempt, outcome, error FROM delivery_attempts WHERE event_id = $1", [eventId]);
    expect(attempts).toEqual([{ attempt: 1, outcome: "network_error", error: "server shutting down" }]);
    expect(await rows(databaseUrl, "SELECT attempt, lease_until FROM delivery_jobs")).toEqual([{ attempt: 1, lease_until: null }]);

    hanging = false;
    const second = await serve(env);
    const event = await until("the retry to deliver", async () => {
      const e = await getEvent(second.url, d.apiKey, eventId);
      return e.status === "EVENT_STATUS_DELIVERED" ? e : undefined;
    });
    expect(event.attempts.map((a: any) => [a.attempt, a.outcome])).toEqual([[1, "ATTEMPT_OUTCOME_NETWORK_ERROR"], [2, "ATTEMPT_OUTCOME_DELIVERED"]]);
    expect(await second.stop("SIGTERM")).toBe(0);
  });
});
