// Several `kapsel serve` processes on one database: they share the delivery work without
// delivering any event twice, and each checks destinations against its own policy at delivery time.
import { afterAll, describe, expect, it } from "vitest";
import { connect, createTestDatabase } from "../../test/support/database.ts";
import { createDestination, eventReaching, getEvent, ingest, until } from "../../test/support/delivery.ts";
import { startTestServer, spawnServer, type ServerProcess, type TestServer } from "../../test/support/server.ts";
import { startSink, type Sink } from "../../test/support/sink.ts";

const METRICS_TOKEN = "metrics-token-0123456789";
const processes: ServerProcess[] = [];
const sinks: Sink[] = [];
let inProcess: TestServer | undefined;
afterAll(async () => {
  await Promise.all(processes.map((p) => p.stop("SIGKILL")));
  await inProcess?.stop();
  await Promise.all(sinks.map((s) => s.close()));
});

async function serve(env: Record<string, string>): Promise<ServerProcess> {
  const p = await spawnServer(env);
  processes.push(p);
  return p;
}

function deliveredBy(metrics: string): number {
  const line = metrics.split("\n").find((l) => l.startsWith('kapsel_delivery_attempts_total{outcome="delivered"} '));
  return line === undefined ? 0 : Number(line.split(" ").at(-1));
}

describe("two server processes on one database", () => {
  it("deliver every event, and no event twice", async () => {
    const databaseUrl = await createTestDatabase();
    const sink = await startSink();
    sinks.push(sink);
    // Scraped through the main port with a metrics token (each process's own metrics port is off).
    const env = { DATABASE_URL: databaseUrl, KAPSEL_LOG_LEVEL: "warn", KAPSEL_METRICS_TOKEN: METRICS_TOKEN };
    const [a, b] = await Promise.all([serve(env), serve(env)]);
    const d = await createDestination(a.url, sink.url);

    // Ingest through both processes at once, so each is woken in-process by its own commits and
    // by NOTIFY from the other.
    const ids = (await Promise.all(Array.from({ length: 20 }, (_, worker) => (async () => {
      const mine: string[] = [];
      for (let i = 0; i < 15; i++) mine.push(await ingest(worker % 2 === 0 ? a.url : b.url, d.endpointId, `{"w":${worker},"i":${i}}`));
      return mine;
    })()))).flat();
    expect(new Set(ids).size).toBe(300);

    await until("all 300 deliveries at the sink", () => (new Set(sink.requests.map((r) => r.eventId)).size === 300 ? true : undefined), 60_000);
    await until("every event to be marked delivered", async () => {
      const db = await connect(databaseUrl);
      try {
        const { rows } = await db.query("SELECT count(*)::int AS n FROM events WHERE status = 'delivered'");
        return rows[0].n === 300 ? true : undefined;
      } finally {
        await db.end();
      }
    });
    const perEvent = new Map<string, number>();
    for (const r of sink.requests) perEvent.set(r.eventId, (perEvent.get(r.eventId) ?? 0) + 1);
    expect([...perEvent.values()].filter((n) => n > 1)).toEqual([]);
    expect(sink.requests).toHaveLength(300);
    expect(ids.every((id) => perEvent.get(id) === 1)).toBe(true);

    // Both processes took part, and between them made exactly one attempt per event.
    const scrape = async (p: ServerProcess) => {
      const res = await fetch(`${p.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
      expect(res.status).toBe(200);
      return res.text();
    };
    const [ma, mb] = await Promise.all([a, b].map(async (p) => deliveredBy(await scrape(p))));
    expect(ma + mb).toBe(300);
    expect(ma).toBeGreaterThan(0);
    expect(mb).toBeGreaterThan(0);
    const db = await connect(databaseUrl);
    try {
      expect((await db.query("SELECT count(*)::int AS n FROM delivery_attempts")).rows[0].n).toBe(300);
      expect((await db.query("SELECT count(*)::int AS n FROM delivery_jobs")).rows[0].n).toBe(0);
    } finally {
      await db.end();
    }
  });
});

describe("destination policy at delivery time", () => {
  it("a process that forbids private destinations refuses an endpoint another process accepted: network_error naming the address, nothing sent", async () => {
    const sink = await startSink();
    sinks.push(sink);
    // This one allows private destinations (so CreateEndpoint accepts the loopback sink) and does
    // not deliver; the child process delivers, with private destinations forbidden.
    inProcess = await startTestServer({ KAPSEL_DELIVERY_ENABLED: "false" });
    const strict = await serve({ DATABASE_URL: inProcess.databaseUrl, KAPSEL_ALLOW_PRIVATE_DESTINATIONS: "false", KAPSEL_LOG_LEVEL: "warn" });
    const d = await createDestination(inProcess.url, sink.url, { maxAttempts: 1 });
    const eventId = await ingest(inProcess.url, d.endpointId);
    const event = await eventReaching(inProcess.url, d.apiKey, eventId, "EVENT_STATUS_FAILED");
    expect(event.attempts).toHaveLength(1);
    expect(event.attempts[0]).toMatchObject({ attempt: 1, outcome: "ATTEMPT_OUTCOME_NETWORK_ERROR" });
    expect(event.attempts[0].error).toBe("destination 127.0.0.1 resolves to 127.0.0.1, which is not a public address");
    expect(sink.requests).toHaveLength(0);
    expect((await getEvent(strict.url, d.apiKey, eventId)).status).toBe("EVENT_STATUS_FAILED");
  });
});
