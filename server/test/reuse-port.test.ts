// Several `kapsel serve` processes on one host share one port with KAPSEL_HTTP_REUSE_PORT=true
// (SO_REUSEPORT): the kernel spreads new connections among them, so one host's cores can all take
// traffic without a load balancer in front. Without the setting a second process is refused with
// the one-line "port in use" error.
import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase } from "../../test/support/database.ts";
import { addEndpoint, until } from "../../test/support/delivery.ts";
import { freePort } from "../../server/src/free-port.ts";
import { createTenant } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, spawnServer, type ServerProcess } from "../../test/support/server.ts";

let databaseUrl: string;
let port: number;
const servers: ServerProcess[] = [];
const metricsPorts: number[] = [];

beforeAll(async () => {
  databaseUrl = await createTestDatabase();
  port = await freePort();
  for (let i = 0; i < 2; i++) {
    const metricsPort = await freePort();
    metricsPorts.push(metricsPort);
    servers.push(await spawnServer({
      DATABASE_URL: databaseUrl, KAPSEL_PORT: String(port), KAPSEL_HTTP_REUSE_PORT: "true",
      KAPSEL_METRICS_LISTEN: `127.0.0.1:${metricsPort}`, KAPSEL_DELIVERY_ENABLED: "false", KAPSEL_LOG_LEVEL: "warn",
    }));
  }
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});

/** One request on a connection of its own (the kernel picks a process per connection). */
function freshConnection(path: string, method = "GET", body?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path, method, agent: false, headers: { connection: "close" } }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode!));
    });
    req.on("error", reject);
    req.end(body);
  });
}

async function healthzAnswered(metricsPort: number): Promise<number> {
  // A process that is still starting has no metrics listener yet.
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`).catch(() => undefined))?.text() ?? "";
  return [...text.matchAll(/^kapsel_http_requests_total\{[^}]*route="\/healthz"[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
}

describe("KAPSEL_HTTP_REUSE_PORT", () => {
  it("two processes listen on one port and both answer new connections", async () => {
    const counts = await until("both processes answering", async () => {
      for (let i = 0; i < 20; i++) expect(await freshConnection("/healthz")).toBe(200);
      const c = await Promise.all(metricsPorts.map(healthzAnswered));
      return c.every((n) => n > 0) ? c : undefined;
    });
    expect(counts).toHaveLength(2);
  });

  it("events sent to the shared port are taken in by whichever process answers", async () => {
    const tenant = await createTenant(`http://127.0.0.1:${port}`, ADMIN_TOKEN, "reuse-port");
    const { endpointId } = await addEndpoint(`http://127.0.0.1:${port}`, tenant.apiKey, "https://93.184.216.34/");
    const statuses = await Promise.all(Array.from({ length: 20 }, (_, i) => freshConnection(`/ingest/${endpointId}`, "POST", `{"n":${i}}`)));
    expect(statuses).toEqual(Array(20).fill(202));
  });

  it("without it, a second process on the port is refused with the port-in-use error", async () => {
    const third = await spawnServer({ DATABASE_URL: databaseUrl, KAPSEL_PORT: String(port), KAPSEL_LOG_LEVEL: "warn" }, { waitReady: false });
    const code = await third.exited;
    expect(code).not.toBe(0);
    expect(third.output()).toMatch(/in use .*KAPSEL_HTTP_REUSE_PORT/i);
  });
});
