import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";
import { createTenant, errorCode, rpc } from "../../test/support/rpc.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.stop();
});

describe("tenants and API keys", () => {
  it("the admin creates a tenant whose first key has every scope", async () => {
    const t = await createTenant(server.url, ADMIN_TOKEN, "first");
    expect(t.apiKey).toMatch(/^ksk_/);
    const me = await rpc(server.url, "GetTenant", {}, t.apiKey);
    expect(me.status).toBe(200);
    expect(me.body.tenant).toMatchObject({ id: t.id, name: "first" });
  });

  it("a tenant key cannot call admin-only RPCs (E1004, PermissionDenied)", async () => {
    const t = await createTenant(server.url, ADMIN_TOKEN);
    const r = await rpc(server.url, "CreateTenant", { name: "x" }, t.apiKey);
    expect(r.status).toBe(403);
    expect(r.body.code).toBe("permission_denied");
    expect(errorCode(r.body)).toBe("E1004");
  });

  it("missing, wrong and revoked keys answer E1004 Unauthenticated", async () => {
    const t = await createTenant(server.url, ADMIN_TOKEN);
    expect((await rpc(server.url, "ListEndpoints", {})).status).toBe(401);
    const wrong = await rpc(server.url, "ListEndpoints", {}, "ksk_notakey");
    expect([wrong.status, errorCode(wrong.body)]).toEqual([401, "E1004"]);
    const created = await rpc(server.url, "CreateApiKey", { name: "temp", scopes: ["SCOPE_READ"] }, t.apiKey);
    expect(created.status).toBe(200);
    const temp = created.body.secret as string;
    expect((await rpc(server.url, "ListEndpoints", {}, temp)).status).toBe(200);
    const revoked = await rpc(server.url, "RevokeApiKey", { apiKeyId: created.body.apiKey.id }, t.apiKey);
    expect(revoked.body.apiKey.revokedAt).toBeDefined();
    const after = await rpc(server.url, "ListEndpoints", {}, temp);
    expect([after.status, errorCode(after.body)]).toEqual([401, "E1004"]);
  });

  it("a key without the needed scope answers E1004 PermissionDenied", async () => {
    const t = await createTenant(server.url, ADMIN_TOKEN);
    const ingestOnly = (await rpc(server.url, "CreateApiKey", { name: "i", scopes: ["SCOPE_INGEST"] }, t.apiKey)).body.secret;
    const r = await rpc(server.url, "CreateEndpoint", { url: "https://93.184.216.34/hook" }, ingestOnly);
    expect([r.status, errorCode(r.body)]).toEqual([403, "E1004"]);
    const readOnly = (await rpc(server.url, "CreateApiKey", { name: "r", scopes: ["SCOPE_READ"] }, t.apiKey)).body.secret;
    expect((await rpc(server.url, "CreateEndpoint", { url: "https://93.184.216.34/hook" }, readOnly)).status).toBe(403);
    expect((await rpc(server.url, "ListEndpoints", {}, readOnly)).status).toBe(200);
  });
});

describe("API keys managed by the admin", () => {
  it("the admin lists a tenant's keys (naming the tenant) and revokes one; tenants cannot name another tenant", async () => {
    const t = await createTenant(server.url, ADMIN_TOKEN, "keys");
    const other = await createTenant(server.url, ADMIN_TOKEN, "other");
    const made = await rpc(server.url, "CreateApiKey", { tenantId: t.id, name: "ci", scopes: ["SCOPE_READ"] }, ADMIN_TOKEN);
    expect(made.status).toBe(200);
    const listed = await rpc(server.url, "ListApiKeys", { tenantId: t.id }, ADMIN_TOKEN);
    expect(listed.status).toBe(200);
    expect(listed.body.apiKeys.map((k: any) => k.name)).toEqual(["initial", "ci"]);
    expect((await rpc(server.url, "ListApiKeys", {}, ADMIN_TOKEN)).status).toBe(400);
    const unknown = await rpc(server.url, "ListApiKeys", { tenantId: "0190a3b4-1c2d-7e8f-9a0b-1c2d3e4f5a6b" }, ADMIN_TOKEN);
    expect([unknown.status, errorCode(unknown.body)]).toEqual([404, "E1008"]);

    const revoked = await rpc(server.url, "RevokeApiKey", { apiKeyId: made.body.apiKey.id }, ADMIN_TOKEN);
    expect(revoked.body.apiKey.revokedAt).toBeDefined();
    expect((await rpc(server.url, "ListEndpoints", {}, made.body.secret)).status).toBe(401);

    // A tenant naming another tenant learns nothing, and cannot revoke its keys.
    const peek = await rpc(server.url, "ListApiKeys", { tenantId: other.id }, t.apiKey);
    expect([peek.status, errorCode(peek.body)]).toEqual([404, "E1008"]);
    const otherKeys = (await rpc(server.url, "ListApiKeys", {}, other.apiKey)).body.apiKeys;
    const steal = await rpc(server.url, "RevokeApiKey", { apiKeyId: otherKeys[0].id }, t.apiKey);
    expect([steal.status, errorCode(steal.body)]).toEqual([404, "E1008"]);
    expect((await rpc(server.url, "ListEndpoints", {}, other.apiKey)).status).toBe(200);
  });
});

describe("endpoints", () => {
  it("creates, reads, lists with cursor pages, updates, rotates and deletes", async () => {
    const t = await createTenant(server.url, ADMIN_TOKEN);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await rpc(server.url, "CreateEndpoint", { url: `https://93.184.216.34/hook/${i}`, description: `n${i}` }, t.apiKey);
      expect(r.status).toBe(200);
      expect(r.body.signingSecret).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
      ids.push(r.body.endpoint.id);
    }
    const seen: string[] = [];
    let token = "";
    do {
      const page = await rpc(server.url, "ListEndpoints", { pageSize: 2, pageToken: token }, t.apiKey);
      expect(page.body.endpoints.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.endpoints.map((e: any) => e.id));
      token = page.body.nextPageToken ?? "";
    } while (token);
    expect(seen).toEqual(ids);

    const upd = await rpc(server.url, "UpdateEndpoint", { endpointId: ids[0], description: "changed", maxAttempts: 3 }, t.apiKey);
    expect(upd.body.endpoint).toMatchObject({ description: "changed", maxAttempts: 3, url: "https://93.184.216.34/hook/0" });
    const rot = await rpc(server.url, "RotateEndpointSecret", { endpointId: ids[0] }, t.apiKey);
    expect(rot.body.signingSecret).toMatch(/^whsec_/);
    expect((await rpc(server.url, "DeleteEndpoint", { endpointId: ids[0] }, t.apiKey)).status).toBe(200);
    const gone = await rpc(server.url, "GetEndpoint", { endpointId: ids[0] }, t.apiKey);
    expect([gone.status, errorCode(gone.body)]).toEqual([404, "E1003"]);
  });

  it("a malformed endpoint id is E1006", async () => {
    const t = await createTenant(server.url, ADMIN_TOKEN);
    const r = await rpc(server.url, "GetEndpoint", { endpointId: "not-a-uuid" }, t.apiKey);
    expect([r.status, errorCode(r.body)]).toEqual([400, "E1006"]);
  });

  it("another tenant's endpoint answers NotFound for every endpoint RPC", async () => {
    const a = await createTenant(server.url, ADMIN_TOKEN, "a");
    const b = await createTenant(server.url, ADMIN_TOKEN, "b");
    const id = (await rpc(server.url, "CreateEndpoint", { url: "https://93.184.216.34/a" }, a.apiKey)).body.endpoint.id;
    for (const [method, body] of [
      ["GetEndpoint", { endpointId: id }],
      ["UpdateEndpoint", { endpointId: id, description: "stolen" }],
      ["DeleteEndpoint", { endpointId: id }],
      ["RotateEndpointSecret", { endpointId: id }],
    ] as const) {
      const r = await rpc(server.url, method, body, b.apiKey);
      expect([method, r.status, errorCode(r.body)]).toEqual([method, 404, "E1003"]);
    }
    const list = await rpc(server.url, "ListEndpoints", {}, b.apiKey);
    expect(list.body.endpoints ?? []).toEqual([]);
    const still = await rpc(server.url, "GetEndpoint", { endpointId: id }, a.apiKey);
    expect(still.status).toBe(200);
    expect(still.body.endpoint.description ?? "").toBe("");
  });
});
