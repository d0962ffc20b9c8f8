// Opt-in retries: a throttled call waits as long as the server's RetryInfo says and then
// succeeds; refused connections back off and give up after maxAttempts; nothing else is retried,
// streams never are, and a call's deadline or abort signal bounds all its attempts.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, createKapselClient, KapselError, type KapselClientOptions, type RetryEvent } from "@kapsel/sdk";
import { DEFAULT_RETRY_OPTIONS, resolveRetryOptions, retryDelayMs } from "../src/retry-policy.ts";
import { createEndpoint, NO_DELIVERY } from "./support/endpoints.ts";
import { createTenant } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";
import { closedPortUrl } from "./support/closed-port.ts";

async function failureOf(call: Promise<unknown> | (() => Promise<unknown>)): Promise<KapselError> {
  try {
    await (typeof call === "function" ? call() : call);
  } catch (err) {
    if (err instanceof KapselError) return err;
    throw new Error(`expected a KapselError, got ${String(err)}`);
  }
  throw new Error("expected the call to fail");
}

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer(NO_DELIVERY);
});
afterAll(async () => {
  await server?.stop();
});

/** A tenant allowed one event a second (burst 1) and one of its endpoints. */
async function throttledTenant(): Promise<{ apiKey: string; endpointId: string }> {
  const { id, apiKey } = await createTenant(server.url, ADMIN_TOKEN, "throttled");
  const admin = createKapselClient({ baseUrl: server.url, apiKey: ADMIN_TOKEN });
  await admin.management.updateTenant({ tenantId: id, rateLimitPerSecond: 1, rateLimitBurst: 1 });
  return { apiKey, endpointId: await createEndpoint(server.url, apiKey) };
}

const payload = new TextEncoder().encode('{"n":1}');

describe.each<[string, Pick<KapselClientOptions, "transport" | "httpVersion">]>([
  ["gRPC", { transport: "grpc" }],
  ["Connect over HTTP/1.1", { transport: "connect", httpVersion: "1.1" }],
])("against a throttling server over %s", (_name, transport) => {
  it("without retry options, the throttled call fails with E1005", async () => {
    const { apiKey, endpointId } = await throttledTenant();
    const client = createKapselClient({ baseUrl: server.url, apiKey, ...transport });
    await client.ingest.ingest({ endpointId, payload });
    const err = await failureOf(client.ingest.ingest({ endpointId, payload }));
    client.close();
    expect([err.code, err.kapselCode]).toEqual([Code.ResourceExhausted, "E1005"]);
  });

  it("with retries, the call waits at least the server's RetryInfo pause and then succeeds", async () => {
    const { apiKey, endpointId } = await throttledTenant();
    const retries: RetryEvent[] = [];
    const client = createKapselClient({ baseUrl: server.url, apiKey, ...transport, retry: { onRetry: (e) => retries.push(e) } });
    const first = await client.ingest.ingest({ endpointId, payload });
    const second = await client.ingest.ingest({ endpointId, payload, idempotencyKey: "retry-safe-1" });
    client.close();
    expect(second.eventId).not.toBe(first.eventId);
    expect(second.duplicate).toBe(false);
    expect(retries).toHaveLength(1);
    const [retry] = retries;
    expect([retry!.attempt, retry!.error.code, retry!.error.kapselCode]).toEqual([1, Code.ResourceExhausted, "E1005"]);
    expect(retry!.error.retryAfterMs).toBeGreaterThan(0);
    expect(retry!.delayMs).toBeGreaterThanOrEqual(retry!.error.retryAfterMs!);
  });

  it("a pause longer than maxRetryAfterMs is not waited for: the error is thrown", async () => {
    const { apiKey, endpointId } = await throttledTenant();
    const retries: RetryEvent[] = [];
    const client = createKapselClient({ baseUrl: server.url, apiKey, ...transport, retry: { maxRetryAfterMs: 1, onRetry: (e) => retries.push(e) } });
    await client.ingest.ingest({ endpointId, payload });
    const err = await failureOf(client.ingest.ingest({ endpointId, payload }));
    client.close();
    expect([err.kapselCode, retries.length]).toEqual(["E1005", 0]);
  });
});

describe("network failures and limits", () => {
  it("a refused connection (Unavailable) is retried with backoff until maxAttempts, then thrown", async () => {
    const retries: RetryEvent[] = [];
    const client = createKapselClient({ baseUrl: await closedPortUrl(), apiKey: "ksk_x", retry: { maxAttempts: 3, initialDelayMs: 20, onRetry: (e) => retries.push(e) } });
    const err = await failureOf(client.management.listEndpoints({}));
    expect(err.code).toBe(Code.Unavailable);
    expect(retries.map((r) => [r.attempt, r.error.code])).toEqual([[1, Code.Unavailable], [2, Code.Unavailable]]);
    // Full jitter below a ceiling that doubles: 20 ms, then 40 ms.
    expect(retries[0]!.delayMs).toBeLessThan(20);
    expect(retries[1]!.delayMs).toBeLessThan(40);
  });

  it("errors other than Unavailable and ResourceExhausted are not retried", async () => {
    const { apiKey } = await createTenant(server.url, ADMIN_TOKEN);
    const retries: RetryEvent[] = [];
    const client = createKapselClient({ baseUrl: server.url, apiKey, retry: { onRetry: (e) => retries.push(e) } });
    const err = await failureOf(client.management.getEndpoint({ endpointId: "bad" }));
    expect([err.kapselCode, retries.length]).toEqual(["E1006", 0]);
  });

  it("server streams are never retried", async () => {
    const retries: RetryEvent[] = [];
    const client = createKapselClient({ baseUrl: await closedPortUrl(), apiKey: "ksk_x", retry: { onRetry: (e) => retries.push(e) } });
    const err = await failureOf(async () => {
      for await (const _ of client.attestation.watchCheckpoints({}));
    });
    expect([err.code, retries.length]).toEqual([Code.Unavailable, 0]);
  });

  it("the call's deadline covers every attempt and pause: it ends DeadlineExceeded, not after maxAttempts", async () => {
    const retries: RetryEvent[] = [];
    const client = createKapselClient({ baseUrl: await closedPortUrl(), apiKey: "ksk_x", retry: { maxAttempts: 1000, initialDelayMs: 50, maxDelayMs: 50, onRetry: (e) => retries.push(e) } });
    const err = await failureOf(client.management.listEndpoints({}, { timeoutMs: 300 }));
    expect(err.code).toBe(Code.DeadlineExceeded);
    expect(retries.length).toBeGreaterThan(0);
    expect(retries.length).toBeLessThan(999);
  });

  it("aborting the call during a pause ends it at once with Canceled", async () => {
    const abort = new AbortController();
    const client = createKapselClient({
      baseUrl: await closedPortUrl(),
      apiKey: "ksk_x",
      retry: { maxAttempts: 5, initialDelayMs: 60_000, maxDelayMs: 60_000, onRetry: () => abort.abort() },
    });
    const err = await failureOf(client.management.listEndpoints({}, { signal: abort.signal }));
    expect(err.code).toBe(Code.Canceled);
  });
});

describe("the backoff policy", () => {
  const options = { ...DEFAULT_RETRY_OPTIONS, maxAttempts: 10, initialDelayMs: 100, maxDelayMs: 1000, maxRetryAfterMs: 5000 };
  const top = () => 0.999999;

  it("draws full jitter below a ceiling that doubles per attempt up to maxDelayMs", () => {
    expect([1, 2, 3, 4, 5, 6].map((a) => retryDelayMs(a, options, undefined, top))).toEqual([99, 199, 399, 799, 999, 999]);
    expect([1, 2, 3].map((a) => retryDelayMs(a, options, undefined, () => 0))).toEqual([0, 0, 0]);
  });

  it("never goes below the server's pause, adding jitter on top", () => {
    expect(retryDelayMs(1, options, 1500, () => 0)).toBe(1500);
    expect(retryDelayMs(2, options, 1500, top)).toBe(1699);
  });

  it("stops after maxAttempts and when the server asks for more than maxRetryAfterMs", () => {
    expect(retryDelayMs(9, options, undefined, top)).toBe(999);
    expect(retryDelayMs(10, options, undefined, top)).toBeUndefined();
    expect(retryDelayMs(1, options, 5000, () => 0)).toBe(5000);
    expect(retryDelayMs(1, options, 5001, () => 0)).toBeUndefined();
  });

  it("is off unless asked for; true means the defaults; nonsense is refused", () => {
    expect(resolveRetryOptions(undefined)).toBeUndefined();
    expect(resolveRetryOptions(false)).toBeUndefined();
    expect(resolveRetryOptions(true)).toEqual(DEFAULT_RETRY_OPTIONS);
    expect(resolveRetryOptions({ maxAttempts: 2 })).toEqual({ ...DEFAULT_RETRY_OPTIONS, maxAttempts: 2 });
    expect(() => resolveRetryOptions({ maxAttempts: 0 })).toThrow(RangeError);
    expect(() => resolveRetryOptions({ initialDelayMs: -1 })).toThrow(RangeError);
    expect(() => resolveRetryOptions({ maxDelayMs: Number.NaN })).toThrow(RangeError);
  });
});
