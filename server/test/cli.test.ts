// `kapsel tenant create NAME` is how an operator bootstraps a tenant without an RPC client: the key
// it prints must work against a server on the same database.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase } from "../../test/support/database.ts";
import { runCli } from "../../test/support/kapsel-cli.ts";
import { rpc } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";

let databaseUrl: string;
let server: TestServer;
beforeAll(async () => {
  databaseUrl = await createTestDatabase();
  server = await startTestServer({ DATABASE_URL: databaseUrl });
});
afterAll(async () => {
  await server?.stop();
});

describe("kapsel tenant create", () => {
  it("prints the tenant and an API key that works against a running server on the same database", async () => {
    const r = await runCli(["tenant", "create", "ops-team"], { DATABASE_URL: databaseUrl });
    expect(r.code).toBe(0);
    const match = /^tenant ([0-9a-f-]{36}) \(ops-team\)\napi key \(shown once\): (ksk_[A-Za-z0-9_-]{43})\n$/.exec(r.stdout);
    expect(match, r.stdout + r.stderr).not.toBeNull();
    const [, tenantId, apiKey] = match!;

    const me = await rpc(server.url, "GetTenant", {}, apiKey);
    expect(me.status).toBe(200);
    expect(me.body.tenant).toMatchObject({ id: tenantId, name: "ops-team" });
    // The first key has every scope: it can manage endpoints, not just read.
    const created = await rpc(server.url, "CreateEndpoint", { url: "https://93.184.216.34/cli" }, apiKey);
    expect(created.status).toBe(200);
    const listed = await rpc(server.url, "ListTenants", {}, ADMIN_TOKEN);
    expect(listed.body.tenants.map((t: { id: string }) => t.id)).toContain(tenantId);
  });

  it("a name with spaces is one argument", async () => {
    const r = await runCli(["tenant", "create", "Acme Corp"], { DATABASE_URL: databaseUrl });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^tenant [0-9a-f-]{36} \(Acme Corp\)\n/);
  });

  it("without a name, or with another subcommand, prints the usage and exits 2", async () => {
    for (const args of [["tenant", "create"], ["tenant"], ["tenant", "delete", "x"]]) {
      const r = await runCli(args, { DATABASE_URL: databaseUrl });
      expect([args.join(" "), r.code, r.stderr]).toEqual([args.join(" "), 2, "usage: kapsel tenant create NAME\n"]);
    }
  });

  it("an unreachable database is a clean failure, not a hang", async () => {
    const r = await runCli(["tenant", "create", "x"], { DATABASE_URL: "postgres://kapsel:x@127.0.0.1:1/none" });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/ECONNREFUSED/);
  });
});
