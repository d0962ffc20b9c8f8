// What an operator sees at the default level (info) when deliveries go wrong, read from a real
// `kapsel serve` process's stdout: every failed attempt with what happens next, the event that ran
// out of attempts, the circuit opening, re-opening after a failed probe and closing, the endpoint
// a 410 disabled — and never a destination URL (its query may hold a credential) or a payload.
import { createTestDatabase } from "../../test/support/database.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addEndpoint, createDestination, getEvent, until } from "../../test/support/delivery.ts";
import { spawnServer, type ServerProcess } from "../../test/support/server.ts";
import { startSink, type Reply, type Sink } from "../../test/support/sink.ts";

let server: ServerProcess;
let sink: Sink;
let mode: "fail" | "ok" = "fail";
beforeAll(async () => {
  server = await spawnServer({
    DATABASE_URL: await createTestDatabase(),
    KAPSEL_RETRY_BASE_MS: "20",
    KAPSEL_RETRY_CAP_MS: "200",
    KAPSEL_CIRCUIT_OPEN_MS: "300",
    KAPSEL_CIRCUIT_CONSECUTIVE_FAILURES: "3",
    // the default level, stated: these lines must be there without turning anything up
    KAPSEL_LOG_LEVEL: "info",
  });
  sink = await startSink((req): Reply => {
    if (req.path.includes("/gone")) return { status: 410, body: "gone" };
    return mode === "fail" ? { status: 503, body: "down for maintenance" } : { status: 200, body: "ok" };
  });
});
afterAll(async () => {
  await server?.stop();
  await sink?.close();
});

interface LogLine {
  level: string;
  msg: string;
  [field: string]: unknown;
}

function lines(): LogLine[] {
  return server.output().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as LogLine);
}

async function send(endpointId: string, body: string): Promise<string> {
  const res = await fetch(`${server.url}/ingest/${endpointId}`, { method: "POST", headers: { "content-type": "application/json" }, body });
  expect(res.status).toBe(202);
  return ((await res.json()) as { event_id: string }).event_id;
}

describe("delivery logs at info", () => {
  it("say every failed attempt and its next try, the exhausted event, and each circuit transition; no URL, no payload", async () => {
    const secretQuery = "token=sk_live_do_not_log";
    const d = await createDestination(server.url, `${sink.url}/hooks?${secretQuery}`, { maxAttempts: 3 });
    const eventId = await send(d.endpointId, '{"card":"4242-secret-payload"}');
    await until("the event to fail", async () => ((await getEvent(server.url, d.apiKey, eventId)).status === "EVENT_STATUS_FAILED" ? true : undefined));
    const failed = await until("three failed attempts in the log", async () => {
      const found = lines().filter((l) => l.msg === "delivery attempt failed" && l.event_id === eventId);
      return found.length === 3 ? found : undefined;
    });
    for (const [i, l] of failed.entries()) {
      expect(l).toMatchObject({ level: "info", tenant_id: d.tenantId, endpoint_id: d.endpointId, attempt: i + 1, outcome: "http_error", status: 503 });
    }
    expect(failed[0]!.next_attempt).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(failed[2]!.next_attempt).toBe("none (event failed)");
    await until("the exhausted event", async () => lines().find((l) => l.msg === "event failed: no attempts left" && l.event_id === eventId));
    expect(lines().find((l) => l.msg === "event failed: no attempts left" && l.event_id === eventId)).toMatchObject({ level: "info", attempts: 3, reason: "no success after 3 attempts" });
    // Three consecutive failures opened the circuit.
    const opened = await until("circuit opened", async () => lines().find((l) => l.msg === "circuit opened" && l.endpoint_id === d.endpointId));
    expect(opened).toMatchObject({ level: "info", from: "closed", consecutive_failures: 3 });
    expect(opened.retry_at).toMatch(/^\d{4}-\d\d-\d\dT/);

    // A probe that fails re-opens it; one that succeeds closes it.
    const second = await send(d.endpointId, "{}");
    await until("a failed probe", async () => lines().find((l) => l.msg === "circuit re-opened: the probe failed" && l.endpoint_id === d.endpointId));
    mode = "ok";
    await until("the event delivered", async () => ((await getEvent(server.url, d.apiKey, second)).status === "EVENT_STATUS_DELIVERED" ? true : undefined));
    const closed = await until("circuit closed", async () => lines().find((l) => l.msg === "circuit closed" && l.endpoint_id === d.endpointId));
    expect(closed).toMatchObject({ level: "info", from: "half_open" });

    const everything = server.output();
    expect(everything).not.toContain(secretQuery);
    expect(everything).not.toContain("4242-secret-payload");
  });

  it("say when a 410 disabled an endpoint, at warn", async () => {
    const d = await createDestination(server.url, `${sink.url}/ok`);
    const gone = await addEndpoint(server.url, d.apiKey, `${sink.url}/gone`);
    const eventId = await send(gone.endpointId, "{}");
    const line = await until("endpoint disabled", async () => lines().find((l) => l.msg === "endpoint disabled" && l.endpoint_id === gone.endpointId));
    expect(line).toMatchObject({ level: "warn", tenant_id: d.tenantId, reason: "destination answered 410 Gone" });
    expect(lines().find((l) => l.msg === "delivery attempt failed" && l.event_id === eventId)).toMatchObject({ status: 410, next_attempt: "endpoint disabled" });
  });
});
