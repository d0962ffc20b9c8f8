// With KAPSEL_TLS_CERT/KEY the one port speaks TLS and picks HTTP/1.1 or HTTP/2 by ALPN: browsers and
// webhook senders on HTTPS/1.1, gRPC clients on h2, all verified against our certificate.
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import http2 from "node:http2";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ManagementService } from "@kapsel/contracts/management";
import { bearer, healthClient, managementClient, unary } from "../../test/support/grpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";

let dir: string;
let ca: Buffer;
let server: TestServer;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "kapsel-tls-"));
  const key = path.join(dir, "k.pem");
  const cert = path.join(dir, "c.pem");
  await promisify(execFile)("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=localhost",
    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-days", "1", "-keyout", key, "-out", cert,
  ]);
  ca = await readFile(cert);
  server = await startTestServer({ KAPSEL_TLS_CERT: cert, KAPSEL_TLS_KEY: key });
});
afterAll(async () => {
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function httpsGet(pathname: string, options: https.RequestOptions & tls.ConnectionOptions): Promise<{ status: number; version: string; alpn: string | false | null; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: "127.0.0.1", port: server.port, path: pathname, servername: "localhost", agent: false, ...options }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode!, version: res.httpVersion, alpn: (res.socket as tls.TLSSocket).alpnProtocol, body }));
    });
    req.on("error", reject);
  });
}

describe("TLS with ALPN on the one port", () => {
  it("the server advertises an https URL", () => {
    expect(server.url).toBe(`https://127.0.0.1:${server.port}`);
  });

  it("HTTPS/1.1 without ALPN: /healthz answers over HTTP/1.1, verified against our CA", async () => {
    const r = await httpsGet("/healthz", { ca });
    expect([r.status, r.version, JSON.parse(r.body)]).toEqual([200, "1.1", { status: "ok" }]);
  });

  it("HTTPS/1.1 chosen by ALPN", async () => {
    const r = await httpsGet("/readyz", { ca, ALPNProtocols: ["http/1.1"] });
    expect([r.status, r.version, r.alpn]).toEqual([200, "1.1", "http/1.1"]);
  });

  it("a client that does not trust the certificate is refused by the client's own check", async () => {
    await expect(httpsGet("/healthz", {})).rejects.toThrow(/self-signed certificate/);
  });

  it("HTTP/2 negotiated by ALPN h2", async () => {
    const session = http2.connect(`https://localhost:${server.port}`, { ca, host: "127.0.0.1" } as http2.SecureClientSessionOptions);
    try {
      const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = session.request({ ":path": "/healthz" });
        let status = 0;
        let body = "";
        req.on("response", (h) => (status = Number(h[":status"])));
        req.on("data", (d) => (body += d));
        req.on("end", () => resolve({ status, body }));
        req.on("error", reject);
      });
      expect([status, body]).toEqual([200, '{"status":"ok"}']);
      expect(session.alpnProtocol).toBe("h2");
    } finally {
      session.close();
    }
  });

  it("@grpc/grpc-js with createSsl(ca): Health/Check and Management RPCs", async () => {
    const credentials = grpc.credentials.createSsl(ca);
    const health = healthClient(`localhost:${server.port}`, credentials);
    const management = managementClient(`localhost:${server.port}`, credentials);
    try {
      expect(await unary(health, "Check", { service: "" })).toEqual({ status: "SERVING" });
      const created = await unary(management, "CreateTenant", { name: "tls-team" }, bearer(ADMIN_TOKEN));
      const list = await unary(management, "ListEndpoints", {}, bearer(created.apiKey));
      expect(list.endpoints).toEqual([]);
    } finally {
      health.close();
      management.close();
    }
  });

  it("connect-node over HTTPS/2 and gRPC-Web over HTTPS/1.1", async () => {
    const baseUrl = `https://localhost:${server.port}`;
    const h2 = createClient(ManagementService, createConnectTransport({ baseUrl, httpVersion: "2", nodeOptions: { ca } }));
    const created = await h2.createTenant({ name: "tls-connect" }, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    const web = createClient(ManagementService, createGrpcWebTransport({ baseUrl, httpVersion: "1.1", nodeOptions: { ca } }));
    const me = await web.getTenant({}, { headers: { authorization: `Bearer ${created.apiKey}` } });
    expect(me.tenant?.name).toBe("tls-connect");
  });

  it("cleartext HTTP on the TLS port does not get an answer", async () => {
    const outcome = await fetch(`http://127.0.0.1:${server.port}/healthz`).then((r) => r.status, () => "failed");
    expect(outcome).not.toBe(200);
  });
});
