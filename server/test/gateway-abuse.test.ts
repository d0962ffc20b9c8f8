// Strangers who know an endpoint or source id cannot starve its tenant: failed signatures never
// spend the tenant's rate, they are limited on their own (per sender address, and per sender
// address and target), and past that limit the sender is refused before its body is read.
import { createHmac } from "node:crypto";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addEndpoint } from "../../test/support/delivery.ts";
import { createTenant, rpc } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ KAPSEL_DELIVERY_ENABLED: "false",
    // One failed signature per 100 s after the burst: no token comes back while a slow machine runs a test.
    KAPSEL_FAILED_SIGNATURES_PER_SECOND: "0.01", KAPSEL_FAILED_SIGNATURES_BURST: "5" });
});
afterAll(async () => {
  await server?.stop();
});

const SECRET = "shared-with-github";
const sign = (body: string) => `sha256=${createHmac("sha256", SECRET).update(body).digest("hex")}`;

async function post(path: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number; code?: string }> {
  const res = await fetch(`${server.url}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
  const json = (await res.json().catch(() => ({}))) as { code?: string };
  return { status: res.status, code: json.code };
}

/** A tenant allowed 3 events a second (burst 3), with a GitHub-verified endpoint. */
async function smallTenant() {
  const tenant = await createTenant(server.url, ADMIN_TOKEN, "small");
  await rpc(server.url, "UpdateTenant", { tenantId: tenant.id, rateLimitPerSecond: 0.01, rateLimitBurst: 3 }, ADMIN_TOKEN);
  const { endpointId } = await addEndpoint(server.url, tenant.apiKey, "https://93.184.216.34/", { sourceScheme: "SOURCE_SCHEME_GITHUB", sourceSecret: SECRET });
  return { ...tenant, endpointId };
}

/** A POST from another loopback address (the whole 127/8 is this machine). */
function postFrom(localAddress: string, path: string, body: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port: server.port, host: "127.0.0.1", localAddress }, () => {
      const head = Object.entries({ Host: "x", "Content-Type": "application/json", "Content-Length": String(Buffer.byteLength(body)), Connection: "close", ...headers })
        .map(([k, v]) => `${k}: ${v}\r\n`).join("");
      socket.write(`POST ${path} HTTP/1.1\r\n${head}\r\n${body}`);
    });
    let got = "";
    socket.on("data", (d) => (got += d.toString()));
    socket.on("end", () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(got)?.[1])));
    socket.on("error", reject);
  });
}

describe("failed signatures", () => {
  it("never spend the tenant's rate: after 50 forged requests the tenant's own signed request and RPC still go through", async () => {
    const t = await smallTenant();
    const answers = [];
    for (let i = 0; i < 50; i++) answers.push(await post(`/ingest/${t.endpointId}`, `{"n":${i}}`, { "x-hub-signature-256": "sha256=00" }));
    // The first five fail their signature; the rest are refused before their body is read.
    expect(answers.slice(0, 5).every((a) => a.status === 401 && a.code === "E1002")).toBe(true);
    expect(answers.slice(5).every((a) => a.status === 429 && a.code === "E1005")).toBe(true);
    // The tenant's budget (3) is untouched: its sender (another address) and its backend get in.
    const body = '{"signed":true}';
    expect(await postFrom("127.0.0.2", `/ingest/${t.endpointId}`, body, { "x-hub-signature-256": sign(body) })).toBe(202);
    const viaRpc = await rpc(server.url, "Ingest", { endpointId: t.endpointId, payload: Buffer.from("{}").toString("base64") }, t.apiKey);
    expect(viaRpc.status).toBe(200);
  });

  it("a sender past its failure limit is refused without its body being read", async () => {
    const t = await smallTenant();
    for (let i = 0; i < 6; i++) await post(`/ingest/${t.endpointId}`, "{}", { "x-hub-signature-256": "sha256=00" });
    // Headers announcing a large body, and only a little of it: the answer comes anyway.
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(server.port, "127.0.0.1", () => {
        socket.write(`POST /ingest/${t.endpointId} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000000\r\nX-Hub-Signature-256: sha256=00\r\n\r\n{"partial":`);
      });
      let got = "";
      socket.on("data", (d) => {
        got += d.toString();
        if (got.includes("\r\n\r\n")) {
          socket.destroy();
          resolve(got);
        }
      });
      socket.on("error", reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 429/);
    expect(answer.toLowerCase()).toContain("retry-after:");
  });
});

describe("the tenant's rate", () => {
  it("is charged for verified requests only, once the signature passed", async () => {
    const t = await smallTenant();
    const results = [];
    for (let i = 0; i < 4; i++) {
      const body = `{"n":${i}}`;
      results.push(await postFrom("127.0.0.3", `/ingest/${t.endpointId}`, body, { "x-hub-signature-256": sign(body) }));
    }
    expect(results).toEqual([202, 202, 202, 429]);
  });
});
