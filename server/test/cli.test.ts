// `kapsel tenant create NAME` is how an operator bootstraps a tenant without an RPC client: the key
// it prints must work against a server on the same database.
import { mkdtemp, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
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

  it("without a name prints its usage, and an unknown subcommand the whole usage; both exit 2", async () => {
    const noName = await runCli(["tenant", "create"], { DATABASE_URL: databaseUrl });
    expect([noName.code, noName.stderr.split("\n")[0]]).toEqual([2, "Usage: kapsel tenant create NAME [--json]"]);
    for (const args of [["tenant"], ["tenant", "delete", "x"]]) {
      const r = await runCli(args, { DATABASE_URL: databaseUrl });
      expect([args.join(" "), r.code, r.stderr.split("\n")[0]]).toEqual([args.join(" "), 2, `kapsel: unknown command ${args.slice(0, 2).join(" ")}`]);
    }
  });

  it("an unreachable database is one clear line, not a stack trace or a hang", async () => {
    const r = await runCli(["tenant", "create", "x"], { DATABASE_URL: "postgres://kapsel:secret-pw@127.0.0.1:1/none" });
    expect([r.code, r.stdout]).toEqual([1, ""]);
    expect(r.stderr).toBe("kapsel: cannot reach the database (127.0.0.1:1/none): ECONNREFUSED; is it running? Check DATABASE_URL\n");
  });
});

describe("the kapsel command", () => {
  it("--version prints the package version; COMMAND --help prints help and starts nothing", async () => {
    const version = await runCli(["--version"]);
    expect([version.code, version.stdout]).toEqual([0, `${(await import("../package.json", { with: { type: "json" } })).default.version}\n`]);
    const help = await runCli(["serve", "--help"], { KAPSEL_PORT: "1" });
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: kapsel serve\n/);
    expect(help.stderr).toBe(""); // nothing started: no log line, no console URL
    for (const c of [["migrate"], ["tenant", "list"], ["event", "recover"], ["log", "status"]]) {
      const r = await runCli([...c, "--help"]);
      expect([c.join(" "), r.code, r.stdout.startsWith(`Usage: kapsel ${c.join(" ")}`)]).toEqual([c.join(" "), 0, true]);
    }
  });

  it("a taken port and an unusable data folder are one clear line each", async () => {
    const busy = await runCli(["serve"], { DATABASE_URL: databaseUrl, KAPSEL_ADMIN_TOKEN: ADMIN_TOKEN, KAPSEL_HOST: "127.0.0.1", KAPSEL_PORT: String(server.port) });
    expect([busy.code, busy.stderr.trim().split("\n").at(-1)]).toEqual([1, `kapsel: port ${server.port} on 127.0.0.1 is in use by another program; choose another with KAPSEL_PORT (several kapsel processes share one port when each sets KAPSEL_HTTP_REUSE_PORT=true)`]);
    // A data folder inside a file cannot be made.
    const file = path.join(await mkdtemp(path.join(os.tmpdir(), "kapsel-cli-")), "a-file");
    await writeFile(file, "");
    const folder = await runCli(["migrate"], { KAPSEL_DATA_DIR: path.join(file, "data") });
    expect(folder.code).toBe(1);
    expect(folder.stderr).toBe(`kapsel: cannot use ${path.join(file, "data")} (ENOTDIR): check KAPSEL_DATA_DIR (now ${path.join(file, "data")}) and its permissions\n`);
  });

  it("migrate says what it applied", async () => {
    const fresh = await createTestDatabase({ migrated: false });
    const first = await runCli(["migrate"], { DATABASE_URL: fresh });
    expect([first.code, first.stdout]).toEqual([0, expect.stringMatching(/^applied 0001_tenancy.sql, 0002_events.sql, .*\n$/)]);
    const again = await runCli(["migrate", "--json"], { DATABASE_URL: fresh });
    expect(JSON.parse(again.stdout)).toEqual({ applied: [], current: expect.any(Number) });
  });

  /** Ends the event as failed with its job gone, in one statement: the server keeps delivering it
   * meanwhile, and a claim between two statements would leave it `delivering`. The job's delete
   * waits for any claim holding it, so the status written last is ours. */
  async function failNow(db: { query(text: string, values: unknown[]): Promise<unknown> }, eventId: string): Promise<void> {
    await db.query("WITH gone AS (DELETE FROM delivery_jobs WHERE event_id = $1) UPDATE events SET status = 'failed' WHERE id = $1", [eventId]);
  }

  it("operator commands list tenants, endpoints, events and the log, and retry and recover failed events, with --json", async () => {
    const created = JSON.parse((await runCli(["tenant", "create", "ops", "--json"], { DATABASE_URL: databaseUrl })).stdout);
    const tenantId = created.tenant.id as string;
    const apiKey = created.apiKey as string;
    const endpoint = await rpc(server.url, "CreateEndpoint", { url: "https://93.184.216.34/ops" }, apiKey);
    const endpointId = endpoint.body.endpoint.id as string;
    const ingested = await rpc(server.url, "Ingest", { endpointId, payload: Buffer.from("{}").toString("base64") }, apiKey);
    const eventId = ingested.body.eventId as string;

    const tenants = JSON.parse((await runCli(["tenant", "list", "--json"], { DATABASE_URL: databaseUrl })).stdout);
    expect(tenants.tenants.map((t: { id: string }) => t.id)).toContain(tenantId);
    const endpoints = JSON.parse((await runCli(["endpoint", "list", "--tenant", tenantId, "--json"], { DATABASE_URL: databaseUrl })).stdout);
    expect(endpoints.endpoints.map((e: { id: string }) => e.id)).toEqual([endpointId]);
    const text = await runCli(["endpoint", "list", "--tenant", tenantId], { DATABASE_URL: databaseUrl });
    expect(text.stdout).toBe(`${endpointId}  enabled   https://93.184.216.34/ops\n`);

    // Not failed yet: retry is refused with the API's code.
    const early = await runCli(["event", "retry", eventId, "--tenant", tenantId], { DATABASE_URL: databaseUrl });
    expect([early.code, early.stderr]).toEqual([1, expect.stringMatching(/^kapsel: E2003: event is (pending|delivering); only failed events can be retried\n$/)]);
    const db = new (await import("pg")).default.Client({ connectionString: databaseUrl });
    await db.connect();
    await failNow(db, eventId);
    const failed = JSON.parse((await runCli(["event", "list", "--tenant", tenantId, "--status", "failed", "--json"], { DATABASE_URL: databaseUrl })).stdout);
    expect(failed.events.map((e: { id: string }) => e.id)).toEqual([eventId]);
    const retried = await runCli(["event", "retry", eventId, "--tenant", tenantId], { DATABASE_URL: databaseUrl });
    expect(retried.stdout).toMatch(/^event [0-9a-f-]{36} is (pending|delivering)\n$/);
    await failNow(db, eventId);
    await db.end();
    const recovered = JSON.parse((await runCli(["event", "recover", "--tenant", tenantId, "--endpoint", endpointId, "--since", "2000-01-01T00:00:00Z", "--json"], { DATABASE_URL: databaseUrl })).stdout);
    expect(recovered).toEqual({ count: 1 });

    const status = JSON.parse((await runCli(["log", "status", "--json"], { DATABASE_URL: databaseUrl })).stdout);
    expect(status).toMatchObject({ treeSize: expect.any(Number), queued: expect.any(Number), keys: [expect.stringMatching(/^kapsel\.localhost\/log\+/)] });
    const missing = await runCli(["endpoint", "list"], { DATABASE_URL: databaseUrl });
    expect([missing.code, missing.stderr]).toEqual([2, "kapsel: configuration error: --tenant ID is required (kapsel tenant list shows the ids)\n"]);
  }, 180_000); // a dozen CLI processes, each starting Node and a pool: slow on a busy machine
});
