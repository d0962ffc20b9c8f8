// Browser dashboards call the Connect API cross-origin with a bearer token: the preflight must
// allow Authorization and the Connect headers, and responses must expose what clients read.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.stop();
});

const ORIGIN = "https://dashboard.example.com";
const listOf = (header: string | null) => (header ?? "").split(",").map((s) => s.trim().toLowerCase());

describe("CORS", () => {
  it("a preflight for a Connect call with Authorization answers 204 and allows the requested headers", async () => {
    const res = await fetch(`${server.url}/kapsel.v1.ManagementService/ListEndpoints`, {
      method: "OPTIONS",
      headers: {
        origin: ORIGIN,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type,connect-protocol-version",
      },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    expect(listOf(res.headers.get("access-control-allow-methods"))).toContain("post");
    expect(listOf(res.headers.get("access-control-allow-headers"))).toEqual(
      expect.arrayContaining(["authorization", "content-type", "connect-protocol-version"]),
    );
    expect(await res.text()).toBe("");
  });

  it("a preflight for gRPC-Web allows its headers too", async () => {
    const res = await fetch(`${server.url}/kapsel.v1.ManagementService/ListEndpoints`, {
      method: "OPTIONS",
      headers: { origin: ORIGIN, "access-control-request-method": "POST", "access-control-request-headers": "x-grpc-web,x-user-agent,content-type,authorization" },
    });
    expect(res.status).toBe(204);
    expect(listOf(res.headers.get("access-control-allow-headers"))).toEqual(
      expect.arrayContaining(["x-grpc-web", "x-user-agent", "content-type", "authorization"]),
    );
  });

  it("a cross-origin POST carries allow-origin and exposes x-request-id and the gRPC status headers", async () => {
    const res = await fetch(`${server.url}/kapsel.v1.ManagementService/CreateTenant`, {
      method: "POST",
      headers: { origin: ORIGIN, "content-type": "application/json", authorization: `Bearer ${ADMIN_TOKEN}` },
      body: JSON.stringify({ name: "browser" }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    expect(listOf(res.headers.get("access-control-expose-headers"))).toEqual(
      expect.arrayContaining(["x-request-id", "grpc-status", "grpc-message", "grpc-status-details-bin"]),
    );
    expect(res.headers.get("x-request-id")).toBeTruthy();
  });

  it("a cross-origin error response still carries the CORS headers, so the browser can read the error", async () => {
    const res = await fetch(`${server.url}/kapsel.v1.ManagementService/ListEndpoints`, {
      method: "POST",
      headers: { origin: ORIGIN, "content-type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(401);
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
  });

  it("a same-origin request (no Origin header) gets no CORS headers, and OPTIONS without Origin is not a preflight", async () => {
    const plain = await fetch(`${server.url}/healthz`);
    expect(plain.headers.get("access-control-allow-origin")).toBeNull();
    const options = await fetch(`${server.url}/healthz`, { method: "OPTIONS" });
    expect(options.status).not.toBe(204);
    expect(options.headers.get("access-control-allow-origin")).toBeNull();
  });
});
