// Every client a Kapsel user brings, against one real server, over every protocol it speaks:
// a stock @grpc/grpc-js client over h2c, the SDK with gRPC, Connect over HTTP/1.1 and HTTP/2 and
// gRPC-Web over HTTP/1.1, and plain fetch speaking Connect JSON. Each does the same five things:
// a unary call, a server stream read to its end, an error with details, a deadline and a
// cancellation. (The Connect conformance runner cannot be fetched here; this is our own.)
import * as grpc from "@grpc/grpc-js";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKapselClient, EventStatusSchema, KapselError, type KapselClientOptions } from "@kapsel/sdk";
import { errorInfos } from "../../test/support/grpc.ts";
import { addEndpoint, ingest } from "../../test/support/delivery.ts";
import { createTenant, rpc } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";
import { hang, startSink, type Sink } from "../../test/support/sink.ts";
import { connectJsonStream, parseError } from "./support/connect-json.ts";
import { grpcJsClients, readAll } from "./support/grpc-js.ts";

/** How a failed call ended, whatever the client: Connect codes equal gRPC status numbers. */
interface Failure {
  code: Code;
  kapselCode?: string | undefined;
  /** Messages received on a stream before it failed. */
  messages?: number;
}

/** The five operations, implemented once per client. */
interface Driver {
  listEndpointIds(): Promise<string[]>;
  /** WatchEvent read until the server ends the stream; the statuses seen, as enum names. */
  watchEventToEnd(eventId: string): Promise<string[]>;
  getEndpointFailure(endpointId: string): Promise<Failure>;
  /** WatchCheckpoints (which stays open) with a deadline of `timeoutMs`. */
  watchPastDeadline(timeoutMs: number): Promise<Failure>;
  /** WatchCheckpoints, aborted by the client after its first message. */
  watchThenCancel(): Promise<Failure>;
  close(): void;
}

type DriverFactory = (server: TestServer, apiKey: string) => Driver;

function grpcJsDriver(server: TestServer, apiKey: string): Driver {
  const clients = grpcJsClients(`127.0.0.1:${server.port}`);
  const auth = () => {
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${apiKey}`);
    return md;
  };
  const fail = (err: grpc.ServiceError, messages?: number): Failure => ({
    code: err.code as number as Code,
    kapselCode: errorInfos(err)[0]?.reason,
    messages,
  });
  return {
    listEndpointIds: () =>
      new Promise((resolve, reject) => {
        (clients.management as any).ListEndpoints({}, auth(), (err: grpc.ServiceError | null, res: any) =>
          err ? reject(err) : resolve(res.endpoints.map((e: { id: string }) => e.id)),
        );
      }),
    async watchEventToEnd(eventId) {
      const messages = await readAll<any>((clients.management as any).WatchEvent({ eventId }, auth()));
      return messages.map((m) => m.event.status);
    },
    getEndpointFailure: (endpointId) =>
      new Promise((resolve, reject) => {
        (clients.management as any).GetEndpoint({ endpointId }, auth(), (err: grpc.ServiceError | null) =>
          err ? resolve(fail(err)) : reject(new Error("GetEndpoint succeeded")),
        );
      }),
    async watchPastDeadline(timeoutMs) {
      let messages = 0;
      const call = (clients.attestation as any).WatchCheckpoints({}, auth(), { deadline: Date.now() + timeoutMs });
      return readAll(call, () => messages++).then(
        () => Promise.reject(new Error("the stream ended without an error")),
        (err: grpc.ServiceError) => fail(err, messages),
      );
    },
    async watchThenCancel() {
      let messages = 0;
      const call = (clients.attestation as any).WatchCheckpoints({}, auth()) as grpc.ClientReadableStream<unknown>;
      return readAll(call, () => {
        messages++;
        call.cancel();
      }).then(
        () => Promise.reject(new Error("the stream ended without an error")),
        (err: grpc.ServiceError) => fail(err, messages),
      );
    },
    close: () => clients.close(),
  };
}

function sdkDriver(options: Pick<KapselClientOptions, "transport" | "httpVersion">): DriverFactory {
  return (server, apiKey) => {
    const client = createKapselClient({ baseUrl: server.url, apiKey, ...options });
    const fail = (err: unknown, messages?: number): Failure => {
      // Every failure, including client-side deadlines and cancellations, is a KapselError.
      if (!(err instanceof KapselError)) throw err;
      return { code: err.code, kapselCode: err.kapselCode, messages };
    };
    return {
      listEndpointIds: async () => (await client.management.listEndpoints({})).endpoints.map((e) => e.id),
      async watchEventToEnd(eventId) {
        const statuses: string[] = [];
        for await (const m of client.management.watchEvent({ eventId })) statuses.push(EventStatusSchema.value[m.event!.status]!.name);
        return statuses;
      },
      getEndpointFailure: (endpointId) =>
        client.management.getEndpoint({ endpointId }).then(() => Promise.reject(new Error("GetEndpoint succeeded")), (e) => fail(e)),
      async watchPastDeadline(timeoutMs) {
        let messages = 0;
        try {
          for await (const _ of client.attestation.watchCheckpoints({}, { timeoutMs })) messages++;
        } catch (err) {
          return fail(err, messages);
        }
        throw new Error("the stream ended without an error");
      },
      async watchThenCancel() {
        let messages = 0;
        const abort = new AbortController();
        try {
          for await (const _ of client.attestation.watchCheckpoints({}, { signal: abort.signal })) {
            messages++;
            abort.abort();
          }
        } catch (err) {
          return fail(err, messages);
        }
        throw new Error("the stream ended without an error");
      },
      close: () => client.close(),
    };
  };
}

function fetchDriver(server: TestServer, apiKey: string): Driver {
  const auth = { authorization: `Bearer ${apiKey}` };
  const stream = (method: string, request: unknown, headers: Record<string, string> = {}, signal?: AbortSignal) =>
    connectJsonStream(`${server.url}/kapsel.v1.${method}`, request, { ...auth, ...headers }, signal);
  return {
    async listEndpointIds() {
      const r = await rpc(server.url, "ListEndpoints", {}, apiKey);
      if (r.status !== 200) throw new Error(`ListEndpoints answered ${r.status}`);
      return (r.body.endpoints ?? []).map((e: { id: string }) => e.id);
    },
    async watchEventToEnd(eventId) {
      const statuses: string[] = [];
      for await (const item of stream("ManagementService/WatchEvent", { eventId })) {
        if ("message" in item) statuses.push(item.message.event.status);
        else if (item.end.error) throw new Error(`stream failed: ${JSON.stringify(item.end.error)}`);
      }
      return statuses;
    },
    async getEndpointFailure(endpointId) {
      const r = await rpc(server.url, "GetEndpoint", { endpointId }, apiKey);
      if (r.status === 200) throw new Error("GetEndpoint succeeded");
      return parseError(r.body);
    },
    async watchPastDeadline(timeoutMs) {
      // No client-side timer here: the deadline travels in connect-timeout-ms and the server
      // ends the stream with deadline_exceeded in the end-stream frame.
      let messages = 0;
      for await (const item of stream("AttestationService/WatchCheckpoints", {}, { "connect-timeout-ms": String(timeoutMs) })) {
        if ("message" in item) messages++;
        else if (item.end.error) return { ...parseError(item.end.error), messages };
      }
      throw new Error("the stream ended without an error");
    },
    async watchThenCancel() {
      let messages = 0;
      const abort = new AbortController();
      try {
        for await (const item of stream("AttestationService/WatchCheckpoints", {}, {}, abort.signal)) {
          if ("message" in item) messages++;
          abort.abort();
        }
      } catch (err) {
        // fetch reports its own abort as an AbortError; Connect calls that Canceled.
        if ((err as Error).name === "AbortError") return { code: Code.Canceled, messages };
        throw err;
      }
      throw new Error("the stream ended without an error");
    },
    close: () => {},
  };
}

const CLIENTS: [string, DriverFactory][] = [
  ["@grpc/grpc-js over h2c", grpcJsDriver],
  ["SDK gRPC over HTTP/2", sdkDriver({ transport: "grpc" })],
  ["SDK Connect over HTTP/1.1", sdkDriver({ transport: "connect", httpVersion: "1.1" })],
  ["SDK Connect over HTTP/2", sdkDriver({ transport: "connect", httpVersion: "2" })],
  ["SDK gRPC-Web over HTTP/1.1", sdkDriver({ transport: "grpc-web", httpVersion: "1.1" })],
  ["fetch with Connect JSON over HTTP/1.1", fetchDriver],
];

let server: TestServer;
let sink: Sink;
let apiKey: string;
let endpointId: string;
beforeAll(async () => {
  server = await startTestServer({ KAPSEL_CHECKPOINT_INTERVAL_MS: "200" });
  sink = await startSink();
  apiKey = (await createTenant(server.url, ADMIN_TOKEN, "interop")).apiKey;
  endpointId = (await addEndpoint(server.url, apiKey, sink.url)).endpointId;
  // WatchCheckpoints sends the latest checkpoint first; wait for the one signed after start.
  for (;;) {
    if ((await rpc(server.url, "GetCheckpoint", {}, apiKey)).status === 200) break;
    await new Promise((r) => setTimeout(r, 50));
  }
});
afterAll(async () => {
  await server?.stop();
  await sink?.close();
});

describe.each(CLIENTS)("%s", (_name, factory) => {
  let driver: Driver;
  beforeAll(() => {
    driver = factory(server, apiKey);
  });
  afterAll(() => driver?.close());

  it("unary: ListEndpoints returns the tenant's endpoint", async () => {
    expect(await driver.listEndpointIds()).toEqual([endpointId]);
  });

  it("server streaming: WatchEvent follows a delivery until the server ends the stream", async () => {
    const eventId = await ingest(server.url, endpointId);
    const statuses = await driver.watchEventToEnd(eventId);
    expect(statuses.at(-1)).toBe("EVENT_STATUS_DELIVERED");
    expect(statuses.every((s) => ["EVENT_STATUS_PENDING", "EVENT_STATUS_DELIVERING", "EVENT_STATUS_DELIVERED"].includes(s))).toBe(true);
    expect(sink.forEvent(eventId)).toHaveLength(1);
  });

  it("error with details: a malformed endpoint id is InvalidArgument with E1006", async () => {
    expect(await driver.getEndpointFailure("not-a-uuid")).toEqual({ code: Code.InvalidArgument, kapselCode: "E1006", messages: undefined });
  });

  it("deadline: a stream that outlives its timeout ends with DeadlineExceeded", async () => {
    const failure = await driver.watchPastDeadline(400);
    expect(failure.code).toBe(Code.DeadlineExceeded);
    expect(failure.kapselCode).toBeUndefined();
  });

  it("cancellation: aborting a stream is Canceled on the client and the server keeps serving", async () => {
    const failure = await driver.watchThenCancel();
    expect([failure.code, failure.messages]).toEqual([Code.Canceled, 1]);
    expect(await driver.listEndpointIds()).toEqual([endpointId]);
  });
});

// The server must end a stream whose deadline (connect-timeout-ms / grpc-timeout) passes with
// deadline_exceeded. Clients that run their own timer (grpc-js, connect-es) never notice when it
// does not; a plain HTTP client relying on the header does, so this asks without a client timer.
describe("server-enforced deadlines on streams (Connect JSON, no client-side timer)", () => {
  let stuck: Sink;
  let stuckEventId: string;
  let stuckKey: string;
  beforeAll(async () => {
    // An event whose delivery hangs stays DELIVERING, so WatchEvent has no reason to end. Its own
    // tenant keeps the matrix's endpoint list as it was.
    stuck = await startSink(hang);
    stuckKey = (await createTenant(server.url, ADMIN_TOKEN, "stuck")).apiKey;
    const { endpointId: hanging } = await addEndpoint(server.url, stuckKey, stuck.url);
    stuckEventId = await ingest(server.url, hanging);
    await stuck.waitFor(1);
  });
  afterAll(async () => {
    await stuck?.close();
  });

  it.each([
    ["kapsel.v1.AttestationService/WatchCheckpoints", () => ({})],
    ["kapsel.v1.ManagementService/WatchEvent", () => ({ eventId: stuckEventId })],
    ["grpc.health.v1.Health/Watch", () => ({ service: "" })],
  ])("%s ends with deadline_exceeded", async (method, request) => {
    let end: { error?: { code?: string } } | undefined;
    for await (const item of connectJsonStream(`${server.url}/${method}`, request(), { authorization: `Bearer ${stuckKey}`, "connect-timeout-ms": "400" })) {
      if ("end" in item) end = item.end;
    }
    expect(end?.error?.code).toBe("deadline_exceeded");
  });
});
