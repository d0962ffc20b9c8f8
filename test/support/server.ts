// Real Kapsel servers for tests: in-process (fast, for most tests) or as a child process running the
// `kapsel serve` command (for restarts, signals and several processes on one database).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadConfig } from "../../server/src/config.ts";
import { createLogger } from "../../server/src/logger.ts";
import { startServer, type Server } from "../../server/src/main.ts";
import { freePort } from "../../server/src/free-port.ts";
import { createTestDatabase } from "./database.ts";
import { TEST_MASTER_KEY } from "./secrets.ts";

export const ADMIN_TOKEN = "test-admin-token-0123456789abcdef";
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

export interface TestServer extends Server {
  databaseUrl: string;
}

/** Starts a server on its own fresh database (or the given one), on a free loopback port. */
export async function startTestServer(env: Record<string, string> = {}): Promise<TestServer> {
  const databaseUrl = env.DATABASE_URL ?? (await createTestDatabase());
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "kapsel-test-data-"));
  const config = loadConfig({
    KAPSEL_PORT: "0",
    KAPSEL_HOST: "127.0.0.1",
    KAPSEL_ADMIN_TOKEN: ADMIN_TOKEN,
    KAPSEL_DATA_DIR: dataDir,
    KAPSEL_ALLOW_PRIVATE_DESTINATIONS: "true",
    KAPSEL_SHUTDOWN_TIMEOUT_MS: "2000",
    // Its own metrics port (server.metricsUrl), and database gauges fresh within a quarter second.
    KAPSEL_METRICS_LISTEN: "127.0.0.1:0",
    KAPSEL_METRICS_REFRESH_MS: "250",
    KAPSEL_MASTER_KEY: TEST_MASTER_KEY,
    ...env,
    DATABASE_URL: databaseUrl,
  });
  const server = await startServer(config, createLogger(process.env.KAPSEL_TEST_LOG_LEVEL ?? "warn"));
  return Object.assign(server, { databaseUrl });
}

export interface ServerProcess {
  url: string;
  port: number;
  child: ChildProcess;
  output(): string;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

/** Polls /readyz until it answers 200; throws (with the process output) if the process exits or
 * the time runs out. Shared by the tests and the benchmarks that run `kapsel serve`. */
export async function waitUntilReady(url: string, child: ChildProcess, output: () => string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`kapsel serve exited with ${child.exitCode}:\n${output()}`);
    try {
      // The body too: when the port was taken meanwhile, another test's receiver may answer 200.
      const res = await fetch(`${url}/readyz`);
      if (res.status === 200 && ((await res.json()) as { ready?: unknown }).ready === true) return;
    } catch {
      // not listening yet (or not Kapsel)
    }
    if (Date.now() > deadline) throw new Error(`kapsel serve not ready after ${timeoutMs / 1000} s:\n${output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Runs `kapsel serve` as a child process and waits until /readyz answers 200. */
export async function spawnServer(env: Record<string, string>, options: { waitReady?: boolean; detached?: boolean } = {}): Promise<ServerProcess> {
  const port = Number(env.KAPSEL_PORT ?? (await freePort()));
  const child = spawn(process.execPath, [path.join(ROOT, "server/src/cli.ts"), "serve"], {
    cwd: ROOT,
    // Its own process group, as a shell gives a command it runs in a terminal.
    detached: options.detached ?? false,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      KAPSEL_HOST: "127.0.0.1",
      KAPSEL_ADMIN_TOKEN: ADMIN_TOKEN,
      KAPSEL_ALLOW_PRIVATE_DESTINATIONS: "true",
      KAPSEL_LOG_LEVEL: "info",
      // Test files run in parallel: none may take the default metrics port (tests that scrape a
      // process give it a port or a token).
      KAPSEL_METRICS_LISTEN: "off",
      KAPSEL_MASTER_KEY: TEST_MASTER_KEY,
      ...env,
      KAPSEL_PORT: String(port),
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | string>((resolve) => child.on("exit", (code, signal) => resolve(code ?? signal ?? -1)));
  const url = `http://127.0.0.1:${port}`;
  const proc: ServerProcess = {
    url,
    port,
    child,
    output: () => output,
    exited,
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  if (options.waitReady !== false) {
    try {
      await waitUntilReady(url, child, proc.output, 90_000);
    } catch (err) {
      child.kill("SIGKILL");
      throw err;
    }
  }
  return proc;
}
