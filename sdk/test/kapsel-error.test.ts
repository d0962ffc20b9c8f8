// Every failed SDK call throws a KapselError carrying what a caller branches on: the Connect code,
// the Kapsel code from ErrorInfo, the pause from RetryInfo and the request id — the same over
// gRPC, Connect and gRPC-Web, for unary calls and streams, and for failures with no server answer.
import { ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, createKapselClient, ErrorInfoSchema, KapselError, type KapselClient, type KapselClientOptions } from "@kapsel/sdk";
import { createEndpoint, NO_DELIVERY } from "./support/endpoints.ts";
import { createTenant } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";
import { closedPortUrl } from "./support/closed-port.ts";

/** The rejection of a call that must fail. */
async function failureOf(call: Promise<unknown> | (() => Promise<unknown>)): Promise<KapselError> {
  try {
    await (typeof call === "function" ? call() : call);
  } catch (err) {
    if (err instanceof KapselError) return err;
    throw new Error(`expected a KapselError, got ${String(err)}`);
  }
  throw new Error("expected the call to fail");
}

const TRANSPORTS: [string, Pick<KapselClientOptions, "transport" | "httpVersion">][] = [
  ["gRPC", { transport: "grpc" }],
  ["Connect over HTTP/1.1", { transport: "connect", httpVersion: "1.1" }],
  ["Connect over HTTP/2", { transport: "connect", httpVersion: "2" }],
  ["gRPC-Web over HTTP/1.1", { transport: "grpc-web", httpVersion: "1.1" }],
];

let server: TestServer;
let tenantId: string;
let apiKey: string;
let endpointId: string;
beforeAll(async () => {
  server = await startTestServer(NO_DELIVERY);
  ({ id: tenantId, apiKey } = await createTenant(server.url, ADMIN_TOKEN, "errors"));
  endpointId = await createEndpoint(server.url, apiKey);
});
afterAll(async () => {
  await server?.stop();
});

describe.each(TRANSPORTS)("over %s", (_name, transport) => {
  let client: KapselClient;
  beforeAll(() => {
    client = createKapselClient({ baseUrl: server.url, apiKey, ...transport });
  });
  afterAll(() => client?.close());

  it("a malformed id is InvalidArgument with E1006, the request id and the ConnectError as cause", async () => {
    const err = await failureOf(client.management.getEndpoint({ endpointId: "not-a-uuid" }, { headers: { "x-request-id": "req-sdk-e1006" } }));
    expect([err.name, err.code, err.kapselCode, err.requestId, err.retryAfterMs]).toEqual(["KapselError", Code.InvalidArgument, "E1006", "req-sdk-e1006", undefined]);
    expect(err.message).toMatch(/^\[invalid_argument\] E1006: /);
    expect(err.cause).toBeInstanceOf(ConnectError);
    expect(err.cause.code).toBe(Code.InvalidArgument);
    expect(err.findDetails(ErrorInfoSchema).map((d) => [d.reason, d.domain])).toEqual([["E1006", "kapsel.dev"]]);
  });

  it("an unknown endpoint is NotFound with E1003", async () => {
    const err = await failureOf(client.management.getEndpoint({ endpointId: "00000000-0000-4000-8000-000000000000" }));
    expect([err.code, err.kapselCode]).toEqual([Code.NotFound, "E1003"]);
    expect(err.requestId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("a wrong key is Unauthenticated and a tenant key on an admin call PermissionDenied, both E1004", async () => {
    const stranger = createKapselClient({ baseUrl: server.url, apiKey: "ksk_not_a_key", ...transport });
    const wrong = await failureOf(stranger.management.listEndpoints({}));
    stranger.close();
    expect([wrong.code, wrong.kapselCode]).toEqual([Code.Unauthenticated, "E1004"]);
    const forbidden = await failureOf(client.management.listTenants({}));
    expect([forbidden.code, forbidden.kapselCode]).toEqual([Code.PermissionDenied, "E1004"]);
  });

  it("an error ending a server stream arrives as a KapselError from the iteration", async () => {
    const err = await failureOf(async () => {
      for await (const _ of client.management.watchEvent({ eventId: "00000000-0000-4000-8000-000000000000" }));
    });
    expect([err.code, err.kapselCode]).toEqual([Code.NotFound, "E2002"]);
  });

  it("a refused connection is Unavailable with no Kapsel code and no request id", async () => {
    const nowhere = createKapselClient({ baseUrl: await closedPortUrl(), apiKey, ...transport });
    const err = await failureOf(nowhere.management.listEndpoints({}));
    nowhere.close();
    expect([err.code, err.kapselCode, err.requestId]).toEqual([Code.Unavailable, undefined, undefined]);
  });
});

describe("throttling", () => {
  it("a rate-limited ingest is ResourceExhausted with E1005 and the server's retry pause", async () => {
    const admin = createKapselClient({ baseUrl: server.url, apiKey: ADMIN_TOKEN, transport: "grpc" });
    const updated = await admin.management.updateTenant({ tenantId, rateLimitPerSecond: 1, rateLimitBurst: 1 });
    expect([updated.tenant?.rateLimitPerSecond, updated.tenant?.rateLimitBurst]).toEqual([1, 1]);
    admin.close();

    const client = createKapselClient({ baseUrl: server.url, apiKey, transport: "grpc" });
    const event = { endpointId, payload: new TextEncoder().encode("{}") };
    expect((await client.ingest.ingest(event)).eventId).toMatch(/^[0-9a-f-]{36}$/);
    const err = await failureOf(client.ingest.ingest(event));
    client.close();
    expect([err.code, err.kapselCode]).toEqual([Code.ResourceExhausted, "E1005"]);
    // One token a second, none left: the next one is due within a second.
    expect(err.retryAfterMs).toBeGreaterThan(0);
    expect(err.retryAfterMs).toBeLessThanOrEqual(1000);
  });
});
