// Request ids tie a caller's request to our logs; /metrics feeds Prometheus with request counts per
// route and result, plus the process metrics every Node service exposes.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ManagementService } from "@kapsel/contracts/management";
import { createTenant, rpc } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.stop();
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** The metrics listener's text (the main port serves no metrics without a token). */
async function metricsText(): Promise<string> {
  const res = await fetch(`${server.metricsUrl}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
  return res.text();
}

/** The value of one sample, or undefined when the series does not exist. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue;
    const inside = line.slice(name.length + 1, line.lastIndexOf("}"));
    const have = inside.split(",");
    if (want.every((w) => have.includes(w)) && have.length === want.length) return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return undefined;
}

describe("request ids", () => {
  it("a valid x-request-id is echoed on plain routes and RPCs", async () => {
    const health = await fetch(`${server.url}/healthz`, { headers: { "x-request-id": "trace-abc-123" } });
    expect(health.headers.get("x-request-id")).toBe("trace-abc-123");
    const r = await rpc(server.url, "ListTenants", {}, ADMIN_TOKEN, { "x-request-id": "rpc-req-42" });
    expect(r.status).toBe(200);
    expect(r.headers.get("x-request-id")).toBe("rpc-req-42");
  });

  it("without one, each response gets a fresh UUID", async () => {
    const a = (await fetch(`${server.url}/healthz`)).headers.get("x-request-id");
    const b = (await fetch(`${server.url}/healthz`)).headers.get("x-request-id");
    expect(a).toMatch(UUID);
    expect(b).toMatch(UUID);
    expect(a).not.toBe(b);
  });

  it("an unusable x-request-id (too long, or with spaces) is replaced, not echoed", async () => {
    for (const given of ["x".repeat(200), "has space"]) {
      const res = await fetch(`${server.url}/healthz`, { headers: { "x-request-id": given } });
      expect(res.headers.get("x-request-id")).toMatch(UUID);
    }
  });

  it("gRPC responses carry the request id in their headers", async () => {
    const client = createClient(ManagementService, createGrpcTransport({ baseUrl: server.url }));
    let header: string | null = null;
    await client.listTenants({}, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "x-request-id": "grpc-req-7" },
      onHeader: (h) => (header = h.get("x-request-id")),
    });
    expect(header).toBe("grpc-req-7");
  });
});

describe("/metrics", () => {
  it("counts RPCs by method route and result: ok, or the E-code of the refusal", async () => {
    const route = "/kapsel.v1.ManagementService/ListEndpoints";
    const t = await createTenant(server.url, ADMIN_TOKEN, "metered");
    const before = await metricsText();
    const okBefore = sample(before, "kapsel_http_requests_total", { route, result: "ok" }) ?? 0;
    const deniedBefore = sample(before, "kapsel_http_requests_total", { route, result: "E1004" }) ?? 0;

    for (let i = 0; i < 3; i++) expect((await rpc(server.url, "ListEndpoints", {}, t.apiKey)).status).toBe(200);
    expect((await rpc(server.url, "ListEndpoints", {}, "ksk_wrong")).status).toBe(401);

    const after = await metricsText();
    expect(sample(after, "kapsel_http_requests_total", { route, result: "ok" })).toBe(okBefore + 3);
    expect(sample(after, "kapsel_http_requests_total", { route, result: "E1004" })).toBe(deniedBefore + 1);
    expect(sample(after, "kapsel_http_request_duration_seconds_count", { route })).toBeGreaterThanOrEqual(4);
  });

  it("labels plain routes by path pattern, with the same result vocabulary", async () => {
    await fetch(`${server.url}/healthz`);
    await fetch(`${server.url}/ingest/not-a-uuid`, { method: "POST", body: "{}" });
    const text = await metricsText();
    expect(sample(text, "kapsel_http_requests_total", { route: "/healthz", result: "ok" })).toBeGreaterThanOrEqual(1);
    expect(sample(text, "kapsel_http_requests_total", { route: "/ingest/{endpoint_id}", result: "E1006" })).toBeGreaterThanOrEqual(1);
  });

  it("unknown paths share one label, so random URLs cannot grow the series without bound", async () => {
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${server.url}/probe${i}.Service/Method${i}`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
      expect(res.status).toBe(404);
    }
    await fetch(`${server.url}/no/such/path`);
    const text = await metricsText();
    expect(text).not.toMatch(/route="\/probe\d/);
    expect(text).not.toContain('route="/no/such/path"');
    expect(sample(text, "kapsel_http_requests_total", { route: "unmatched", result: "404" })).toBeGreaterThanOrEqual(6);
  });

  it("includes the standard process and Node.js metrics under their usual, unprefixed names", async () => {
    const text = await metricsText();
    for (const name of ["process_cpu_user_seconds_total", "process_resident_memory_bytes", "nodejs_eventloop_lag_seconds", "nodejs_heap_size_used_bytes"]) {
      expect(text).toMatch(new RegExp(`^${name}(\\{[^}]*\\})? \\d`, "m"));
    }
    expect(text).not.toMatch(/^kapsel_process_|^kapsel_nodejs_/m);
  });

  it("Kapsel's own metrics follow the Prometheus naming rules: _total only on counters, every counter ends in _total", async () => {
    const text = await metricsText();
    const types = [...text.matchAll(/^# TYPE (kapsel_\S+) (\S+)$/gm)].map(([, name, type]) => ({ name: name!, type: type! }));
    expect(types.length).toBeGreaterThan(10);
    for (const { name, type } of types) {
      if (type === "counter") expect(name, name).toMatch(/_total$/);
      else expect(name, name).not.toMatch(/_total$/);
    }
  });
});

describe("log lines", () => {
  it("are JSON with an ISO time and the level's name when not on a terminal, and readable lines on one", async () => {
    const { createLogger } = await import("../src/logger.ts");
    const { PassThrough } = await import("node:stream");
    const capture = () => {
      const stream = new PassThrough();
      let text = "";
      stream.on("data", (d: Buffer) => (text += d.toString()));
      return { stream, text: () => text };
    };
    const json = capture();
    const pretty = capture();
    createLogger("info", { pretty: false, destination: json.stream }).warn({ event_id: "e1" }, "attempt failed");
    createLogger("info", { pretty: true, destination: pretty.stream }).warn({ event_id: "e1" }, "attempt failed");
    await new Promise((r) => setImmediate(r));
    const line = JSON.parse(json.text());
    expect(line).toMatchObject({ level: "warn", msg: "attempt failed", event_id: "e1" });
    expect(new Date(line.time).toISOString()).toBe(line.time);
    expect(pretty.text()).toMatch(/WARN.*attempt failed/);
    expect(pretty.text()).not.toMatch(/^\{/);
  });
});
