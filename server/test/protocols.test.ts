// One port serves every client a user brings: Connect JSON over plain HTTP/1.1 fetch, a stock
// @grpc/grpc-js client over h2c, gRPC-Web over HTTP/1.1 and Connect over HTTP/2.
import net from "node:net";
import * as grpc from "@grpc/grpc-js";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "@kapsel/contracts/error-details";
import { Health, HealthCheckResponse_ServingStatus } from "@kapsel/contracts/health";
import { ManagementService } from "@kapsel/contracts/management";
import { bearer, errorInfos, failure, healthClient, managementClient, unary } from "../../test/support/grpc.ts";
import { createTenant, errorCode, rpc } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";

let server: TestServer;
let target: string;
beforeAll(async () => {
  server = await startTestServer();
  target = `127.0.0.1:${server.port}`;
});
afterAll(async () => {
  await server?.stop();
});

const auth = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

describe("Connect JSON over HTTP/1.1", () => {
  it("a plain fetch creates a tenant and lists its endpoints", async () => {
    const created = await rpc(server.url, "CreateTenant", { name: "fetcher" }, ADMIN_TOKEN);
    expect(created.status).toBe(200);
    expect(created.headers.get("content-type")).toBe("application/json");
    expect(created.body.tenant.name).toBe("fetcher");
    const list = await rpc(server.url, "ListEndpoints", {}, created.body.apiKey);
    expect(list.status).toBe(200);
    expect(list.body).toEqual({});
  });

  it("an HTTP/1.1 request whose first TCP segment is only 'P' (like the HTTP/2 preface) is still HTTP/1.1", async () => {
    const body = JSON.stringify({ service: "" });
    const request =
      `POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`;
    const response = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(server.port, "127.0.0.1", () => {
        socket.setNoDelay(true);
        socket.write(request.slice(0, 1));
        setTimeout(() => socket.write(request.slice(1)), 50);
      });
      let text = "";
      socket.on("data", (d) => (text += d.toString()));
      socket.on("end", () => resolve(text));
      socket.on("error", reject);
    });
    expect(response).toMatch(/^HTTP\/1\.1 200 /);
    expect(response).toContain('{"status":"SERVING"}');
  });

  it("a client that resets its connection before sending a byte does not take the server down", async () => {
    await new Promise<void>((resolve) => {
      const socket = net.connect(server.port, "127.0.0.1", () => {
        socket.resetAndDestroy();
        resolve();
      });
      socket.on("error", () => {});
    });
    // Give the server's read of the reset a moment to happen before checking it is still up.
    await new Promise((r) => setTimeout(r, 100));
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });
});

describe("@grpc/grpc-js over h2c", () => {
  let health: grpc.Client;
  let management: grpc.Client;
  beforeAll(() => {
    health = healthClient(target);
    management = managementClient(target);
  });
  afterAll(() => {
    health?.close();
    management?.close();
  });

  it("Health/Check answers SERVING for the server and each Kapsel service", async () => {
    for (const service of ["", "kapsel.v1.IngestService", "kapsel.v1.ManagementService", "kapsel.v1.AttestationService"]) {
      expect(await unary(health, "Check", { service })).toEqual({ status: "SERVING" });
    }
  });

  it("Health/Check for an unknown service is NOT_FOUND", async () => {
    const err = await failure(unary(health, "Check", { service: "no.such.Service" }));
    expect(err.code).toBe(grpc.status.NOT_FOUND);
  });

  it("Health/Watch streams SERVING first", async () => {
    const call = (health as any).Watch({ service: "" }) as grpc.ClientReadableStream<{ status: string }>;
    const first = await new Promise<{ status: string }>((resolve, reject) => {
      call.once("data", resolve);
      call.once("error", reject);
    });
    call.cancel();
    expect(first).toEqual({ status: "SERVING" });
  });

  it("Health/Watch for an unknown service reports SERVICE_UNKNOWN on the stream", async () => {
    const call = (health as any).Watch({ service: "no.such.Service" }) as grpc.ClientReadableStream<{ status: string }>;
    const first = await new Promise<{ status: string }>((resolve, reject) => {
      call.once("data", resolve);
      call.once("error", reject);
    });
    call.cancel();
    expect(first).toEqual({ status: "SERVICE_UNKNOWN" });
  });

  it("creates a tenant with the admin token and lists endpoints with the tenant key", async () => {
    const created = await unary(management, "CreateTenant", { name: "grpc-team" }, bearer(ADMIN_TOKEN));
    expect(created.tenant.name).toBe("grpc-team");
    expect(created.apiKey).toMatch(/^ksk_/);
    const endpoint = await unary(management, "CreateEndpoint", { url: "https://93.184.216.34/hook" }, bearer(created.apiKey));
    const list = await unary(management, "ListEndpoints", {}, bearer(created.apiKey));
    expect(list.endpoints.map((e: { id: string }) => e.id)).toEqual([endpoint.endpoint.id]);
    expect(list.nextPageToken).toBe("");
  });

  it("an auth failure arrives as UNAUTHENTICATED with ErrorInfo reason E1004 in grpc-status-details-bin", async () => {
    const err = await failure(unary(management, "ListEndpoints", {}, bearer("ksk_wrong")));
    expect(err.code).toBe(grpc.status.UNAUTHENTICATED);
    // connect-es percent-encodes the whole grpc-message; grpc-js undoes it with decodeURI, which leaves
    // "%3A" alone, so decode it the way the gRPC spec says.
    expect(decodeURIComponent(err.details)).toMatch(/^E1004: /);
    expect(errorInfos(err).map((i) => [i.reason, i.domain])).toEqual([["E1004", "kapsel.dev"]]);
  });

  it("a tenant key on an admin RPC is PERMISSION_DENIED with reason E1004", async () => {
    const t = await createTenant(server.url, ADMIN_TOKEN);
    const err = await failure(unary(management, "ListTenants", {}, bearer(t.apiKey)));
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(errorInfos(err).map((i) => i.reason)).toEqual(["E1004"]);
  });

  it("an unknown endpoint is NOT_FOUND with reason E1003", async () => {
    const t = await createTenant(server.url, ADMIN_TOKEN);
    const err = await failure(unary(management, "GetEndpoint", { endpointId: "00000000-0000-4000-8000-000000000000" }, bearer(t.apiKey)));
    expect(err.code).toBe(grpc.status.NOT_FOUND);
    expect(errorInfos(err).map((i) => i.reason)).toEqual(["E1003"]);
  });
});

describe("connect-node clients", () => {
  it("gRPC-Web over HTTP/1.1 checks health, creates a tenant and gets typed error details", async () => {
    const transport = createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" });
    const health = createClient(Health, transport);
    expect((await health.check({})).status).toBe(HealthCheckResponse_ServingStatus.SERVING);

    const management = createClient(ManagementService, transport);
    const created = await management.createTenant({ name: "web-team" }, auth(ADMIN_TOKEN));
    expect(created.tenant?.name).toBe("web-team");
    const me = await management.getTenant({}, auth(created.apiKey));
    expect(me.tenant?.id).toBe(created.tenant?.id);

    const err = await management.listEndpoints({}).catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Unauthenticated);
    expect((err as ConnectError).findDetails(ErrorInfoSchema).map((d) => d.reason)).toEqual(["E1004"]);
  });

  it("Connect over HTTP/2 (h2c) creates a tenant and an endpoint and reads it back", async () => {
    const transport = createConnectTransport({ baseUrl: server.url, httpVersion: "2" });
    const management = createClient(ManagementService, transport);
    const created = await management.createTenant({ name: "h2-team" }, auth(ADMIN_TOKEN));
    const endpoint = await management.createEndpoint({ url: "https://93.184.216.34/h2" }, auth(created.apiKey));
    const read = await management.getEndpoint({ endpointId: endpoint.endpoint!.id }, auth(created.apiKey));
    expect(read.endpoint?.url).toBe("https://93.184.216.34/h2");
  });

  it("gRPC via connect-node over h2c streams Health/Watch", async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: server.url }));
    const abort = new AbortController();
    const stream = health.watch({ service: "kapsel.v1.ManagementService" }, { signal: abort.signal });
    for await (const message of stream) {
      expect(message.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
      break;
    }
    abort.abort();
  });

  it("the Connect JSON error body and the gRPC error carry the same code", async () => {
    const viaFetch = await rpc(server.url, "GetEndpoint", { endpointId: "bad" }, ADMIN_TOKEN);
    expect([viaFetch.status, errorCode(viaFetch.body)]).toEqual([403, "E1004"]);
    const t = await createTenant(server.url, ADMIN_TOKEN);
    const bad = await rpc(server.url, "GetEndpoint", { endpointId: "bad" }, t.apiKey);
    expect([bad.status, bad.body.code, errorCode(bad.body)]).toEqual([400, "invalid_argument", "E1006"]);
    const management = createClient(ManagementService, createGrpcTransport({ baseUrl: server.url }));
    const err = ConnectError.from(await management.getEndpoint({ endpointId: "bad" }, auth(t.apiKey)).catch((e: unknown) => e));
    expect([err.code, err.findDetails(ErrorInfoSchema)[0]?.reason]).toEqual([Code.InvalidArgument, "E1006"]);
  });
});
