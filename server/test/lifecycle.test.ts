// The server as an operator runs it: `kapsel serve` on the embedded Postgres default keeps its data
// and secrets across restarts, and SIGTERM drains (not ready, no new connections, in-flight requests
// finish, bounded) and exits 0.
import { existsSync } from "node:fs";
import { chmod, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import * as grpc from "@grpc/grpc-js";
import { afterAll, describe, expect, it } from "vitest";
import { createTestDatabase } from "../../test/support/database.ts";
import { until } from "../../test/support/delivery.ts";
import { healthClient } from "../../test/support/grpc.ts";
import { runCli } from "../../test/support/kapsel-cli.ts";
import { createTenant, errorCode, rpc } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, spawnServer, startTestServer, type ServerProcess } from "../../test/support/server.ts";

const started: ServerProcess[] = [];
const dataDirs: string[] = [];
afterAll(async () => {
  for (const p of started) {
    if (p.child.exitCode === null && p.child.signalCode === null) {
      p.child.kill("SIGKILL");
      await p.exited;
    }
  }
  for (const dir of dataDirs) {
    // A server killed above leaves its embedded Postgres running; it is ours, stop it by its pid.
    const pid = await readFile(path.join(dir, "pg/postmaster.pid"), "utf8").then((t) => Number(t.split("\n")[0]), () => undefined);
    if (pid) {
      try {
        process.kill(pid, "SIGQUIT");
      } catch {
        // already gone
      }
    }
    await rm(dir, { recursive: true, force: true });
  }
});

async function spawn(env: Record<string, string>, options?: { waitReady?: boolean; detached?: boolean }): Promise<ServerProcess> {
  const p = await spawnServer(env, options);
  started.push(p);
  return p;
}

/** Waits until the process output matches; fails with the output if the process exits first. */
async function waitForOutput(p: ServerProcess, pattern: RegExp): Promise<RegExpMatchArray> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const match = pattern.exec(p.output());
    if (match) return match;
    if (p.child.exitCode !== null || Date.now() > deadline) throw new Error(`no ${pattern} in output:\n${p.output()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function freshDataDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "kapsel-lifecycle-"));
  // Postgres runs as the `postgres` system user when we are root; it must reach its folder.
  await chmod(dir, 0o755);
  dataDirs.push(dir);
  return dir;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const mode = async (file: string) => (await stat(file)).mode & 0o777;

/** True when a new TCP connection to the port is refused. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1", () => {
      socket.destroy();
      resolve(false);
    });
    socket.on("error", (err: NodeJS.ErrnoException) => resolve(err.code === "ECONNREFUSED"));
  });
}

describe("kapsel serve on the embedded Postgres", () => {
  it("keeps tenants, endpoints and the generated admin token across a restart; secrets are 0600; Postgres is loopback-only", { timeout: 240_000 }, async () => {
    const dataDir = await freshDataDir();
    // An empty KAPSEL_ADMIN_TOKEN counts as unset: the server generates one.
    const first = await spawn({ KAPSEL_DATA_DIR: dataDir, KAPSEL_ADMIN_TOKEN: "" });

    // Not a terminal: the output names the file, never the token (server/test/admin-token.test.ts).
    const tokenFile = path.join(dataDir, "admin-token");
    await waitForOutput(first, /Kapsel admin token: in /);
    const adminToken = (await readFile(tokenFile, "utf8")).trim();
    expect(adminToken).toMatch(/^kadm_/);
    expect(first.output()).not.toContain(adminToken);
    expect(await mode(tokenFile)).toBe(0o600);
    const passwordFile = path.join(dataDir, "pg-password");
    expect(await mode(passwordFile)).toBe(0o600);

    // postmaster.pid line 4 is the port; connect the way the server does and ask Postgres itself.
    const pid = (await readFile(path.join(dataDir, "pg/postmaster.pid"), "utf8")).split("\n");
    const pgPort = Number(pid[3]);
    const password = (await readFile(passwordFile, "utf8")).trim();
    const client = new pg.Client({ host: "127.0.0.1", port: pgPort, user: "kapsel", password, database: "postgres" });
    await client.connect();
    try {
      expect((await client.query("SHOW listen_addresses")).rows[0].listen_addresses).toBe("127.0.0.1");
      expect((await client.query("SHOW unix_socket_directories")).rows[0].unix_socket_directories).toBe("");
    } finally {
      await client.end();
    }
    const wrong = new pg.Client({ host: "127.0.0.1", port: pgPort, user: "kapsel", password: "not-the-password", database: "postgres" });
    await expect(wrong.connect()).rejects.toThrow(/password authentication failed/);
    const external = Object.values(os.networkInterfaces()).flat().find((i) => i && i.family === "IPv4" && !i.internal);
    if (external) {
      const reached = await new Promise<boolean>((resolve) => {
        const s = net.connect(pgPort, external.address, () => {
          s.destroy();
          resolve(true);
        });
        s.on("error", () => resolve(false));
      });
      expect(reached).toBe(false);
    }

    const tenant = await createTenant(first.url, adminToken, "durable");
    const created = await rpc(first.url, "CreateEndpoint", { url: "https://93.184.216.34/kept", description: "survives" }, tenant.apiKey);
    expect(created.status).toBe(200);
    const endpointId = created.body.endpoint.id as string;
    await rpc(first.url, "ListEndpoints", {}, tenant.apiKey, { "x-request-id": "lifecycle-req-1" });

    expect(await first.stop("SIGTERM")).toBe(0);
    expect(first.output()).toMatch(/"msg":"embedded Postgres stopped"/);
    expect(first.output()).toMatch(/"msg":"stopped"/);
    expect(first.output()).toMatch(/"request_id":"lifecycle-req-1"[^\n]*"msg":"request"/);
    expect(first.output()).not.toContain(tenant.apiKey);
    expect(existsSync(path.join(dataDir, "pg/postmaster.pid"))).toBe(false);

    const second = await spawn({ KAPSEL_DATA_DIR: dataDir, KAPSEL_ADMIN_TOKEN: "" });
    expect(second.output()).not.toContain("Kapsel admin token:");
    const read = await rpc(second.url, "GetEndpoint", { endpointId }, tenant.apiKey);
    expect(read.status).toBe(200);
    expect(read.body.endpoint).toMatchObject({ id: endpointId, url: "https://93.184.216.34/kept", description: "survives" });
    const tenants = await rpc(second.url, "ListTenants", {}, adminToken);
    expect(tenants.body.tenants.map((t: { name: string }) => t.name)).toEqual(["durable"]);
    expect(await second.stop("SIGTERM")).toBe(0);
  });
});

describe("after kapsel itself is killed", () => {
  it("a new server adopts the embedded Postgres left running on the data folder and sees the data", { timeout: 240_000 }, async () => {
    const dataDir = await freshDataDir();
    const first = await spawn({ KAPSEL_DATA_DIR: dataDir });
    const tenant = await createTenant(first.url, ADMIN_TOKEN, "crash-proof");
    expect(await first.stop("SIGKILL")).toBe("SIGKILL");
    // Postgres outlives the kill: it is a separate process that still holds the data folder.
    const postmaster = Number((await readFile(path.join(dataDir, "pg/postmaster.pid"), "utf8")).split("\n")[0]);
    expect(alive(postmaster)).toBe(true);

    const second = await spawn({ KAPSEL_DATA_DIR: dataDir });
    expect(second.output()).toMatch(/"msg":"adopting the embedded Postgres already running on this data folder"/);
    const me = await rpc(second.url, "GetTenant", {}, tenant.apiKey);
    expect(me.body.tenant).toMatchObject({ id: tenant.id, name: "crash-proof" });
    expect(await second.stop("SIGTERM")).toBe(0);
    // The adopted Postgres is stopped on shutdown like one the server started.
    expect(alive(postmaster)).toBe(false);
  });

  it("a command run beside a running server uses its embedded Postgres and leaves it running", { timeout: 240_000 }, async () => {
    const dataDir = await freshDataDir();
    const p = await spawn({ KAPSEL_DATA_DIR: dataDir });
    const keys = await runCli(["keys", "list"], { KAPSEL_DATA_DIR: dataDir });
    expect([keys.code, keys.stdout]).toEqual([0, expect.stringMatching(/^kapsel\.localhost\/log\+/)]);
    expect((await fetch(`${p.url}/readyz`)).status).toBe(200);
    expect(await p.stop("SIGTERM")).toBe(0);
  });

  it("the embedded Postgres keeps its port across restarts, so other local processes find it", { timeout: 240_000 }, async () => {
    const dataDir = await freshDataDir();
    const first = await spawn({ KAPSEL_DATA_DIR: dataDir });
    const port = Number((await readFile(path.join(dataDir, "pg-port"), "utf8")).trim());
    expect(Number((await readFile(path.join(dataDir, "pg/postmaster.pid"), "utf8")).split("\n")[3])).toBe(port);
    expect(await first.stop("SIGTERM")).toBe(0);
    const second = await spawn({ KAPSEL_DATA_DIR: dataDir });
    expect(Number((await readFile(path.join(dataDir, "pg/postmaster.pid"), "utf8")).split("\n")[3])).toBe(port);
    expect(await second.stop("SIGTERM")).toBe(0);
  });

  it("Ctrl-C in a terminal (SIGINT to the whole process group) drains first and stops Postgres after", { timeout: 240_000 }, async () => {
    const dataDir = await freshDataDir();
    const p = await spawn({ KAPSEL_DATA_DIR: dataDir, KAPSEL_LOG_LEVEL: "info" }, { detached: true });
    const tenant = await createTenant(p.url, ADMIN_TOKEN, "ctrl-c");
    expect(tenant.id).toBeTruthy();
    process.kill(-p.child.pid!, "SIGINT");
    expect(await p.exited).toBe(0);
    const out = p.output();
    // Postgres was still there while the server shut down: no step failed, and it stopped last.
    expect(out).not.toMatch(/shutdown step failed|database unavailable/);
    expect(out.indexOf('"msg":"embedded Postgres stopped"')).toBeGreaterThan(out.indexOf('"msg":"shutting down'));
  });
});

describe("when the embedded Postgres dies under a running server", () => {
  it("/readyz says so, RPCs answer E9001 Unavailable, and SIGTERM still ends the process", { timeout: 240_000 }, async () => {
    const dataDir = await freshDataDir();
    const p = await spawn({ KAPSEL_DATA_DIR: dataDir, KAPSEL_SHUTDOWN_TIMEOUT_MS: "2000" });
    const tenant = await createTenant(p.url, ADMIN_TOKEN);
    const postmaster = Number((await readFile(path.join(dataDir, "pg/postmaster.pid"), "utf8")).split("\n")[0]);
    process.kill(postmaster, "SIGQUIT"); // immediate shutdown, as after a crash
    // Until the server process has reaped its child the pid still answers signal 0 (a zombie), so
    // this also waits until the server knows Postgres exited.
    while (alive(postmaster)) await new Promise((r) => setTimeout(r, 20));

    // Readiness looks at the database at most twice a second, so the first answer may be the
    // last look from before.
    const ready = await until("/readyz to notice", async () => {
      const res = await fetch(`${p.url}/readyz`);
      return res.status === 503 ? res : undefined;
    });
    expect(await ready.json()).toMatchObject({ ready: false, database: false });
    const r = await rpc(p.url, "ListEndpoints", {}, tenant.apiKey);
    expect([r.status, r.body.code, errorCode(r.body)]).toEqual([503, "unavailable", "E9001"]);

    // The shutdown must complete (not wait forever for a Postgres that is gone) and say so.
    expect(await p.stop("SIGTERM")).toBe(0);
    expect(p.output()).toMatch(/"msg":"embedded Postgres had already exited"/);
    expect(p.output()).toMatch(/"msg":"stopped"/);
  });
});

/** An HTTP/1.1 POST whose handler has started (the server sent 100 Continue) but whose body is held back. */
async function heldRequest(port: number, path: string, body: string, headers: Record<string, string>) {
  const socket = net.connect(port, "127.0.0.1");
  let text = "";
  socket.on("data", (d) => (text += d.toString()));
  const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
  socket.on("error", () => {});
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  const head = Object.entries({ host: "x", "content-type": "application/json", "content-length": String(Buffer.byteLength(body)), expect: "100-continue", connection: "close", ...headers })
    .map(([k, v]) => `${k}: ${v}\r\n`).join("");
  socket.write(`POST ${path} HTTP/1.1\r\n${head}\r\n`);
  // Node's HTTP server answers 100 Continue right before it calls the request handler.
  while (!text.includes("100 Continue")) {
    if (socket.destroyed) throw new Error(`connection closed early: ${text}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return {
    sendBody: () => socket.write(body),
    response: async () => {
      await closed;
      return text.slice(text.indexOf("\r\n\r\n") + 4);
    },
    closed,
  };
}

describe("graceful shutdown", () => {
  it("SIGTERM: new connections are refused while an in-flight request still completes, then exit 0", async () => {
    const databaseUrl = await createTestDatabase();
    const p = await spawn({ DATABASE_URL: databaseUrl, KAPSEL_SHUTDOWN_TIMEOUT_MS: "60000" });
    expect((await fetch(`${p.url}/readyz`)).status).toBe(200);

    const held = await heldRequest(p.port, "/kapsel.v1.ManagementService/CreateTenant", JSON.stringify({ name: "in-flight" }), { authorization: `Bearer ${ADMIN_TOKEN}` });
    p.child.kill("SIGTERM");
    await waitForOutput(p, /"msg":"shutting down/);
    expect(await refused(p.port)).toBe(true);
    expect(p.child.exitCode).toBeNull();

    held.sendBody();
    const response = await held.response();
    expect(response).toContain("HTTP/1.1 200 OK");
    expect(JSON.parse(response.slice(response.indexOf("{")))).toMatchObject({ tenant: { name: "in-flight" } });

    expect(await p.exited).toBe(0);
    expect(p.output()).toMatch(/"msg":"stopped"/);
    expect(p.output()).not.toMatch(/shutdown timeout/);
    const db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    try {
      expect((await db.query("SELECT name FROM tenants")).rows).toEqual([{ name: "in-flight" }]);
    } finally {
      await db.end();
    }
  });

  it("a request that never finishes is dropped at KAPSEL_SHUTDOWN_TIMEOUT_MS and the process still exits 0", async () => {
    const p = await spawn({ DATABASE_URL: await createTestDatabase(), KAPSEL_SHUTDOWN_TIMEOUT_MS: "300" });
    const held = await heldRequest(p.port, "/kapsel.v1.ManagementService/CreateTenant", JSON.stringify({ name: "never" }), { authorization: `Bearer ${ADMIN_TOKEN}` });
    p.child.kill("SIGTERM");
    expect(await p.exited).toBe(0);
    await held.closed;
    expect(await held.response()).not.toContain("200 OK");
    expect(p.output()).toMatch(/"msg":"shutdown timeout: dropping unfinished requests"/);
    expect(p.output()).toMatch(/"msg":"stopped"/);
  });

  it("SIGINT stops the server the same way", async () => {
    const p = await spawn({ DATABASE_URL: await createTestDatabase() });
    expect(await p.stop("SIGINT")).toBe(0);
    expect(p.output()).toMatch(/"signal":"SIGINT"/);
    expect(p.output()).toMatch(/"msg":"stopped"/);
  });

  it("in-process: stop() ends Health/Watch streams, then the port refuses connections", async () => {
    const server = await startTestServer();
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    const client = healthClient(`127.0.0.1:${server.port}`);
    const call = (client as any).Watch({ service: "" }) as grpc.ClientReadableStream<{ status: string }>;
    const statuses: string[] = [];
    call.on("data", (m: { status: string }) => statuses.push(m.status));
    call.on("error", () => {});
    const ended = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
    while (statuses.length === 0) await new Promise((r) => setTimeout(r, 10));
    expect(statuses).toEqual(["SERVING"]);

    await server.stop();
    const status = await ended;
    expect(status.code).not.toBe(grpc.status.DEADLINE_EXCEEDED);
    client.close();
    expect(await refused(server.port)).toBe(true);
    // stop() is idempotent.
    await server.stop();
  });
});
