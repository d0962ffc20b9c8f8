// What an outsider on the public port can learn, tried as an attacker would. Metrics used to be
// public there and named every endpoint whose circuit had moved, and an endpoint id is the only
// credential of /ingest/{endpoint_id} (scheme none): a scrape was enough to inject events that
// Kapsel then delivered with a valid signature. Now metrics live on their own listener (loopback
// by default) or behind a token, count circuits by state, and no answer an unauthenticated caller
// can read (metrics, errors, health, readiness, request logs at info) names an endpoint, a URL, a
// tenant, a key or a secret. A scrape also keeps answering when Postgres is down or hangs.
import http2 from "node:http2";
import os from "node:os";
import net from "node:net";
import { Writable } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.ts";
import { startServer, type Server } from "../src/main.ts";
import { createTestDatabase } from "../../test/support/database.ts";
import { createDestination, ingest, until } from "../../test/support/delivery.ts";
import { sample, scrape } from "../../test/support/metrics.ts";
import { errorCode, rpc } from "../../test/support/rpc.ts";
import { TEST_MASTER_KEY } from "../../test/support/secrets.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";
import { alwaysFail, startSink, type Sink } from "../../test/support/sink.ts";
import { startTcpProxy, type TcpProxy } from "../../test/support/tcp-proxy.ts";

const METRICS_TOKEN = "scrape-token-0123456789abcdef";

describe("metrics on the public port", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("without a metrics token, /metrics on the main port does not exist: the same 404 as any unknown path, over HTTP/1.1 and HTTP/2", async () => {
    for (const method of ["GET", "HEAD", "POST"]) {
      const res = await fetch(`${server.url}/metrics`, { method });
      expect(res.status).toBe(404);
      expect(await res.text()).not.toContain("kapsel_");
    }
    const unknown = await fetch(`${server.url}/metricz`);
    expect(unknown.status).toBe(404);
    const session = http2.connect(server.url);
    try {
      const h2 = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const stream = session.request({ ":path": "/metrics", ":method": "GET" });
        let body = "";
        let status = 0;
        stream.on("response", (h) => (status = Number(h[":status"])));
        stream.on("data", (d: Buffer) => (body += d.toString()));
        stream.on("end", () => resolve({ status, body }));
        stream.on("error", reject);
      });
      expect(h2.status).toBe(404);
      expect(h2.body).not.toContain("kapsel_");
    } finally {
      session.close();
    }
    // The metrics listener has them.
    expect(await scrape(server)).toContain("kapsel_http_requests_total");
  });

  it("the metrics listener binds loopback by default, so another host cannot reach it", async () => {
    expect(loadConfig({}).metrics.listen).toEqual({ host: "127.0.0.1", port: 9464 });
    const port = Number(new URL(server.metricsUrl!).port);
    const external = Object.values(os.networkInterfaces()).flat().find((a) => a && a.family === "IPv4" && !a.internal);
    if (!external) return; // no non-loopback address on this machine: nothing else to try
    const outcome = await new Promise<string>((resolve) => {
      const socket = net.connect(port, external.address);
      socket.once("connect", () => {
        socket.destroy();
        resolve("connected");
      });
      socket.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? "error"));
    });
    expect(outcome).toBe("ECONNREFUSED");
  });

  it("nothing an outsider can read names an endpoint, URL, tenant, key or secret, even with circuits open", async () => {
    const sink = await startSink(alwaysFail(500));
    try {
      const d = await createDestination(server.url, sink.url, { maxAttempts: 3 });
      const secrets = [d.endpointId, d.tenantId, d.apiKey, d.signingSecret, sink.url, new URL(sink.url).host];
      for (let i = 0; i < 3; i++) await ingest(server.url, d.endpointId);
      // The failures open the endpoint's circuit (5 consecutive by default; 3 events × retries).
      const text = await until("the open circuit to be counted", async () => {
        const t = await scrape(server);
        return (sample(t, "kapsel_delivery_circuits", { state: "open" }) ?? 0) >= 1 ? t : undefined;
      }, 60_000);
      const answers = [
        text,
        await (await fetch(`${server.url}/healthz`)).text(),
        await (await fetch(`${server.url}/readyz`)).text(),
        await (await fetch(`${server.url}/ingest/${d.endpointId}x`, { method: "POST", body: "{}" })).text(),
        await (await fetch(`${server.url}/ingest/00000000-0000-4000-8000-000000000000`, { method: "POST", body: "{}" })).text(),
        JSON.stringify((await rpc(server.url, "GetEndpoint", { endpointId: d.endpointId }, "ksk_guess")).body),
        JSON.stringify((await rpc(server.url, "GetEndpoint", { endpointId: d.endpointId })).body),
        JSON.stringify((await rpc(server.url, "grpc.health.v1.Health/Check", {})).body),
      ];
      for (const answer of answers) for (const s of secrets) expect(answer).not.toContain(s);
    } finally {
      await sink.close();
    }
  });
});

describe("with KAPSEL_METRICS_TOKEN", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ KAPSEL_METRICS_TOKEN: METRICS_TOKEN });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("the main port serves /metrics to that token only: none or another answers 401 E1004 and no metrics", async () => {
    for (const authorization of [undefined, "Bearer wrong-token-0123456789abcdef", `Basic ${METRICS_TOKEN}`, `Bearer ${ADMIN_TOKEN}`]) {
      const res = await fetch(`${server.url}/metrics`, { headers: authorization ? { authorization } : {} });
      expect(res.status).toBe(401);
      const body = await res.json();
      expect(body.code).toBe("E1004");
      expect(JSON.stringify(body)).not.toContain("kapsel_");
    }
    const res = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain("kapsel_http_requests_total");
  });

  it("the metrics listener asks for the token too", async () => {
    expect((await fetch(`${server.metricsUrl}/metrics`)).status).toBe(401);
    const res = await fetch(`${server.metricsUrl}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(res.status).toBe(200);
    expect((await fetch(`${server.metricsUrl}/other`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).status).toBe(404);
  });
});

describe("request logs at info", () => {
  let server: Server;
  const lines: string[] = [];
  beforeAll(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(...chunk.toString().split("\n").filter((l) => l !== ""));
        done();
      },
    });
    const config = loadConfig({
      DATABASE_URL: await createTestDatabase(),
      KAPSEL_PORT: "0",
      KAPSEL_HOST: "127.0.0.1",
      KAPSEL_ADMIN_TOKEN: ADMIN_TOKEN,
      KAPSEL_DATA_DIR: await import("node:fs/promises").then((fs) => fs.mkdtemp(`${os.tmpdir()}/kapsel-logs-`)),
      KAPSEL_METRICS_LISTEN: "off",
      KAPSEL_DELIVERY_ENABLED: "false",
      KAPSEL_ALLOW_PRIVATE_DESTINATIONS: "true",
      KAPSEL_MASTER_KEY: TEST_MASTER_KEY,
    });
    server = await startServer(config, pino({ level: "info" }, sink));
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("name the route's pattern, never the id in the path or the credential sent", async () => {
    const d = await createDestination(server.url, "http://127.0.0.1:9/hook");
    expect((await fetch(`${server.url}/ingest/${d.endpointId}`, { method: "POST", body: "{}" })).status).toBe(202);
    const bad = await rpc(server.url, "GetEndpoint", { endpointId: d.endpointId }, `${d.apiKey}x`);
    expect(errorCode(bad.body)).toBe("E1004");
    // Another id of the same shape (its last character changed; "0" when it was not "0" already).
    const unknown = d.endpointId.slice(0, -1) + (d.endpointId.endsWith("0") ? "1" : "0");
    expect((await fetch(`${server.url}/ingest/${unknown}`, { method: "POST", body: "{}" })).status).toBe(404);
    await until("the request lines", () => (lines.filter((l) => l.includes('"msg":"request"')).length >= 4 ? true : undefined));
    const info = lines.filter((l) => JSON.parse(l).level >= 30).join("\n");
    expect(info).toContain('"path":"/ingest/{endpoint_id}"');
    for (const s of [d.endpointId, unknown, d.apiKey, d.signingSecret]) expect(info).not.toContain(s);
  });
});

describe("a scrape while Postgres is away", () => {
  let proxy: TcpProxy;
  let server: TestServer;
  beforeAll(async () => {
    const real = new URL(await createTestDatabase());
    proxy = await startTcpProxy({ host: real.hostname, port: Number(real.port) });
    server = await startTestServer({ DATABASE_URL: proxy.urlFor(real.toString()), KAPSEL_METRICS_REFRESH_MS: "100" });
  });
  afterAll(async () => {
    proxy?.setMode("pass");
    await server?.stop();
    await proxy?.close();
  });

  const age = (text: string, module: string) => sample(text, "kapsel_metrics_refresh_age_seconds", { module }) ?? Number.NaN;
  /** Scrapes until both modules' ages pass `ok`; a timeout says what the last scrape showed. */
  const ages = async (what: string, ok: (delivery: number, attestation: number) => boolean, timeoutMs: number) => {
    let last = "no scrape answered";
    try {
      return await until(what, async () => {
        const started = Date.now();
        const t = await scrape(server);
        last = `delivery ${age(t, "delivery")} s, attestation ${age(t, "attestation")} s (scrape took ${Date.now() - started} ms)`;
        return ok(age(t, "delivery"), age(t, "attestation")) ? t : undefined;
      }, timeoutMs);
    } catch (err) {
      throw new Error(`${(err as Error).message}; the last scrape: ${last}`);
    }
  };

  it.each(["refuse", "blackhole"] as const)("answers with process metrics and the last database gauges, and says how old they are (database %s)", { timeout: 120_000 }, async (mode) => {
    const fresh = await ages("fresh gauges", (d, a) => d >= 0 && d < 1 && a < 1, 30_000);
    const jobs = sample(fresh, "kapsel_delivery_queue_jobs");
    expect(jobs).toBeDefined();
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);

    proxy.setMode(mode);
    try {
      const stale = await ages("the gauges to turn stale", (d, a) => d > 1.5 && a > 1.5, 40_000);
      // Several scrapes while the database is away: each answers in full.
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${server.metricsUrl}/metrics`);
        expect(res.status).toBe(200);
        const text = await res.text();
        expect(text).toMatch(/^process_resident_memory_bytes \d/m);
        expect(text).toMatch(/^kapsel_http_requests_total\{/m);
        expect(sample(text, "kapsel_delivery_queue_jobs")).toBe(jobs);
        expect(sample(text, "kapsel_log_leaves")).toBe(sample(stale, "kapsel_log_leaves"));
      }
    } finally {
      proxy.setMode("pass");
    }
    await ages("the gauges to be fresh again", (d, a) => d < 1 && a < 1, 40_000);
  });
});
