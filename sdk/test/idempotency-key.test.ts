// Idempotency keys: random ones are unique, derived ones are stable and collision-resistant
// across part boundaries, both fit the server's rules — and the server really deduplicates them.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKapselClient, idempotencyKey, idempotencyKeyFrom } from "@kapsel/sdk";
import { createEndpoint, NO_DELIVERY } from "./support/endpoints.ts";
import { createTenant } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";

describe("idempotencyKey", () => {
  it("is 32 lowercase hex characters, different every time", () => {
    const keys = Array.from({ length: 1000 }, () => idempotencyKey());
    expect(keys.every((k) => /^[0-9a-f]{32}$/.test(k))).toBe(true);
    expect(new Set(keys).size).toBe(1000);
  });
});

describe("idempotencyKeyFrom", () => {
  it("gives the same 64-hex key for the same parts, in any process", () => {
    expect(idempotencyKeyFrom("order-paid", "A-1")).toBe(idempotencyKeyFrom("order-paid", "A-1"));
    expect(idempotencyKeyFrom("order-paid", "A-1")).toMatch(/^[0-9a-f]{64}$/);
    // Pinned, so a change of derivation (which would re-send events) cannot slip through.
    expect(idempotencyKeyFrom("order-paid", "A-1")).toBe("b03a2ee1c9783536f9609184357ae21ee3dfb9364a4c8396e23b57260b6423a6");
  });

  it("keeps part boundaries and order, and compares parts as strings", () => {
    expect(idempotencyKeyFrom("ab", "c")).not.toBe(idempotencyKeyFrom("a", "bc"));
    expect(idempotencyKeyFrom("a", "b")).not.toBe(idempotencyKeyFrom("b", "a"));
    expect(idempotencyKeyFrom("a,b")).not.toBe(idempotencyKeyFrom("a", "b"));
    expect(idempotencyKeyFrom("order", 7)).toBe(idempotencyKeyFrom("order", "7"));
    expect(idempotencyKeyFrom("order", 7n)).toBe(idempotencyKeyFrom("order", "7"));
  });

  it("needs at least one part", () => {
    expect(() => idempotencyKeyFrom()).toThrow(TypeError);
  });
});

describe("against a real server", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(NO_DELIVERY);
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("a repeated derived key returns the first event as a duplicate; another key a new event", async () => {
    const { apiKey } = await createTenant(server.url, ADMIN_TOKEN, "dedupe");
    const endpointId = await createEndpoint(server.url, apiKey);
    const client = createKapselClient({ baseUrl: server.url, apiKey });
    const payload = new TextEncoder().encode('{"order":"A-1"}');
    const key = idempotencyKeyFrom("order-paid", "A-1");
    const first = await client.ingest.ingest({ endpointId, payload, idempotencyKey: key });
    const again = await client.ingest.ingest({ endpointId, payload, idempotencyKey: key });
    const other = await client.ingest.ingest({ endpointId, payload, idempotencyKey: idempotencyKey() });
    expect([first.duplicate, again.duplicate, again.eventId]).toEqual([false, true, first.eventId]);
    expect([other.duplicate, other.eventId === first.eventId]).toEqual([false, false]);
  });
});
