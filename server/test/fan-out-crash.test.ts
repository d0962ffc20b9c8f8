// A `kapsel serve` process killed with SIGKILL while fanning messages out loses no acknowledged
// delivery: after a restart, every event of every acknowledged message reaches its endpoint.
import { afterAll, describe, expect, it } from "vitest";
import { createTestDatabase } from "../../test/support/database.ts";
import { addEndpoint, until } from "../../test/support/delivery.ts";
import { createTenant, rpc } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, spawnServer, type ServerProcess } from "../../test/support/server.ts";
import { startSink, type Sink } from "../../test/support/sink.ts";

const processes: ServerProcess[] = [];
let sink: Sink | undefined;
afterAll(async () => {
  await Promise.all(processes.map((p) => p.stop("SIGKILL")));
  await sink?.close();
});

describe("fan-out crash safety", () => {
  it("SIGKILL mid-load: every event of every acknowledged message is delivered after a restart", async () => {
    const databaseUrl = await createTestDatabase();
    sink = await startSink();
    const env = { DATABASE_URL: databaseUrl, KAPSEL_DELIVERY_LEASE_MS: "1000" };
    const first = await spawnServer(env);
    processes.push(first);
    const tenant = await createTenant(first.url, ADMIN_TOKEN, "crash");
    const endpoints: string[] = [];
    for (let i = 0; i < 3; i++) endpoints.push((await addEndpoint(first.url, tenant.apiKey, `${sink.url}?e=${i}`, { eventTypes: ["load.*"] })).endpointId);

    const acknowledged: { messageId: string; eventIds: string[] }[] = [];
    let stop = false;
    const worker = async (w: number) => {
      for (let n = 0; !stop; n++) {
        try {
          const r = await rpc(first.url, "Ingest", { eventType: "load.tick", payload: Buffer.from(`{"w":${w},"n":${n}}`).toString("base64") }, tenant.apiKey);
          if (r.status === 200) acknowledged.push({ messageId: r.body.messageId, eventIds: r.body.eventIds });
        } catch {
          return; // the server is gone
        }
      }
    };
    const workers = [0, 1, 2, 3].map(worker);
    await until("some acknowledged messages and some deliveries", () => (acknowledged.length >= 100 && sink!.requests.length >= 30 ? true : undefined));
    first.child.kill("SIGKILL");
    expect(await first.exited).toBe("SIGKILL");
    stop = true;
    await Promise.all(workers);

    const second = await spawnServer(env);
    processes.push(second);
    const expected = acknowledged.flatMap((m) => m.eventIds);
    expect(acknowledged.every((m) => m.eventIds.length === 3)).toBe(true);
    await until("every acknowledged event delivered", () => {
      const seen = new Set(sink!.requests.map((r) => r.eventId));
      return expected.every((id) => seen.has(id)) ? true : undefined;
    }, 60_000);
    // Each event went to its own endpoint, and a message's three events to three endpoints.
    const byEvent = new Map(sink!.requests.map((r) => [r.eventId, new URL(r.path, "http://x").searchParams.get("e")]));
    for (const m of acknowledged) expect(new Set(m.eventIds.map((id) => byEvent.get(id))).size).toBe(3);
    await second.stop();
  });
});
