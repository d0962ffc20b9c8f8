// Hand-off (delivery/job-handoff.ts): events ingested by a delivering process are inserted leased
// to it and sent from memory without a claim. They are delivered once; when the process dies with
// them in flight, another process delivers them after their lease runs out; an endpoint's open
// circuit and its concurrency limit hold for them as for claimed jobs.
import { afterAll, describe, expect, it } from "vitest";
import { connect, createTestDatabase } from "../../test/support/database.ts";
import { createDestination, eventReaching, getEvent, ingest, until } from "../../test/support/delivery.ts";
import { sample, scrape } from "../../test/support/metrics.ts";
import { spawnServer, startTestServer, type ServerProcess, type TestServer } from "../../test/support/server.ts";
import { startSink, type Reply, type Sink } from "../../test/support/sink.ts";

const METRICS_TOKEN = "metrics-token-0123456789";
const processes: ServerProcess[] = [];
const servers: TestServer[] = [];
const sinks: Sink[] = [];
afterAll(async () => {
  await Promise.all(processes.map((p) => p.stop("SIGKILL")));
  await Promise.all(servers.map((s) => s.stop()));
  await Promise.all(sinks.map((s) => s.close()));
});

async function rows<T = any>(databaseUrl: string, text: string, values: unknown[] = []): Promise<T[]> {
  const db = await connect(databaseUrl);
  try {
    return (await db.query(text, values)).rows as T[];
  } finally {
    await db.end();
  }
}

async function server(env: Record<string, string> = {}): Promise<TestServer> {
  const s = await startTestServer(env);
  servers.push(s);
  return s;
}

async function sink(reply: () => Reply = () => ({ status: 200, body: "ok" })): Promise<Sink> {
  const s = await startSink(reply);
  sinks.push(s);
  return s;
}

async function handedOver(s: TestServer): Promise<number> {
  return sample(await scrape(s), "kapsel_delivery_handed_over_total") ?? 0;
}

describe("jobs handed from ingest to the local dispatcher", () => {
  it("are sent without a claim, each exactly once, as attempt 1", async () => {
    const s = await server();
    const out = await sink();
    const d = await createDestination(s.url, out.url);
    const before = await handedOver(s);
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push(await ingest(s.url, d.endpointId, `{"n":${i}}`));
    for (const id of ids) await eventReaching(s.url, d.apiKey, id, "EVENT_STATUS_DELIVERED");

    expect(await handedOver(s) - before).toBe(10);
    expect(ids.map((id) => out.forEvent(id).length)).toEqual(ids.map(() => 1));
    expect(out.forEvent(ids[3]!)[0]!.body.toString()).toBe('{"n":3}');
    const attempts = await rows(s.databaseUrl, "SELECT attempt, outcome FROM delivery_attempts WHERE event_id = ANY($1)", [ids]);
    expect(attempts).toHaveLength(10);
    expect(attempts.every((a) => a.attempt === 1 && a.outcome === "delivered")).toBe(true);
    expect(await rows(s.databaseUrl, "SELECT * FROM delivery_jobs WHERE event_id = ANY($1)", [ids])).toEqual([]);
  });

  it("are not taken for an endpoint whose circuit is open: the job waits unleased for the circuit's probe", async () => {
    const s = await server();
    const out = await sink();
    const d = await createDestination(s.url, out.url);
    await rows(s.databaseUrl, `INSERT INTO circuit_breakers (endpoint_id, state, consecutive_failures, opened_at, retry_at, probes, updated_at)
      VALUES ($1, 'open', 5, now(), now() + interval '1 hour', 0, now())`, [d.endpointId]);
    const before = await handedOver(s);
    const id = await ingest(s.url, d.endpointId);

    // Acknowledged, so its statement has run: it left the job unleased, with no attempt spent.
    expect(await rows(s.databaseUrl, "SELECT lease_id, attempt FROM delivery_jobs WHERE event_id = $1", [id])).toEqual([{ lease_id: null, attempt: 0 }]);
    expect(await handedOver(s)).toBe(before);
    expect(out.requests).toEqual([]);

    // Once the circuit may be probed, the ordinary path delivers it.
    await rows(s.databaseUrl, "UPDATE circuit_breakers SET retry_at = now() WHERE endpoint_id = $1", [d.endpointId]);
    await eventReaching(s.url, d.apiKey, id, "EVENT_STATUS_DELIVERED");
    expect(out.forEvent(id)).toHaveLength(1);
    expect(await handedOver(s)).toBe(before);
  });

  it("never send more at once to an endpoint than its concurrency limit", async () => {
    const s = await server({ KAPSEL_DELIVERY_PER_ENDPOINT_CONCURRENCY: "2" });
    let open = 0;
    let most = 0;
    let release!: () => void;
    let gate = new Promise<void>((r) => (release = r));
    const out = await sink(() => {
      open++;
      most = Math.max(most, open);
      return { status: 200, body: "ok", after: gate.finally(() => open--) };
    });
    const d = await createDestination(s.url, out.url);
    const before = await handedOver(s);
    const ids: string[] = [];
    for (let round = 0; round < 3; round++) {
      // A burst, ingested at once: the group commit writes it as one or a few statements.
      ids.push(...(await Promise.all(Array.from({ length: 6 }, (_, i) => ingest(s.url, d.endpointId, `{"round":${round},"i":${i}}`)))));
    }
    // Two are held at the destination; the rest wait their turn in the dispatcher.
    await out.waitFor(2);
    expect(await handedOver(s) - before).toBe(ids.length);
    // Let requests through, two at a time, until every event is delivered.
    await until("every event to be delivered", async () => {
      release();
      gate = new Promise<void>((r) => (release = r));
      const events = await Promise.all(ids.map((id) => getEvent(s.url, d.apiKey, id)));
      return events.every((e) => e.status === "EVENT_STATUS_DELIVERED") ? events : undefined;
    });
    release();
    expect(most).toBe(2);
    expect(ids.map((id) => out.forEvent(id).length)).toEqual(ids.map(() => 1));
  });
});

describe("a process killed with handed-over jobs in flight", () => {
  it("loses none: another process delivers them once their lease has run out", async () => {
    const databaseUrl = await createTestDatabase();
    let hanging = true;
    const out = await sink((): Reply => (hanging ? { hang: true } : { status: 200, body: "ok" }));
    const env = { DATABASE_URL: databaseUrl, KAPSEL_DELIVERY_LEASE_MS: "1500", KAPSEL_METRICS_TOKEN: METRICS_TOKEN, KAPSEL_LOG_LEVEL: "warn" };
    const [ingesting, other] = [await spawnServer(env), await spawnServer(env)];
    processes.push(ingesting, other);
    const d = await createDestination(ingesting.url, out.url, { timeoutMs: 1000 });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await ingest(ingesting.url, d.endpointId, `{"n":${i}}`));
    // All five are in flight from the ingesting process, handed over (the other one claimed none).
    await out.waitFor(5);
    const metrics = await (await fetch(`${ingesting.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
    expect(sample(metrics, "kapsel_delivery_handed_over_total")).toBe(5);

    ingesting.child.kill("SIGKILL");
    expect(await ingesting.exited).toBe("SIGKILL");
    hanging = false;
    await until("the other process to deliver every event", async () => {
      const events = await Promise.all(ids.map((id) => getEvent(other.url, d.apiKey, id)));
      return events.every((e) => e.status === "EVENT_STATUS_DELIVERED") ? events : undefined;
    }, 60_000);

    // Each was sent twice (the lost attempt, then the redelivery) and recorded once, as attempt 2:
    // the first attempt was spent by the lease that died with the process.
    expect(ids.map((id) => out.forEvent(id).length)).toEqual(ids.map(() => 2));
    const attempts = await rows(databaseUrl, "SELECT event_id, attempt, outcome FROM delivery_attempts ORDER BY event_id");
    expect(attempts.map((a) => [a.attempt, a.outcome])).toEqual(ids.map(() => [2, "delivered"]));
    // The redelivery waited for the lease: 1.5 s beyond the endpoint's 1 s timeout.
    for (const id of ids) {
      const [first, second] = out.forEvent(id);
      expect(second!.at - first!.at).toBeGreaterThanOrEqual(2000);
    }
    expect(await rows(databaseUrl, "SELECT * FROM delivery_jobs")).toEqual([]);
  });
});
