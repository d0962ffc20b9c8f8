// Runs the built CLI (verifier/dist/cli.js) under a given Node binary, the way an auditor would.
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const VERIFIER_DIR = fileURLToPath(new URL("../../", import.meta.url));
export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
export const CLI = `${VERIFIER_DIR}dist/cli.js`;

/** Node 24 from the root devDependency, and the machine's system Node 20. */
export const NODE_24 = `${REPO_ROOT}node_modules/node/bin/node`;
export const NODE_20 = "/usr/bin/node";

const BUILD_LOCK = join(tmpdir(), "kapsel-verify-build.lock");

/**
 * Compiles verifier/src to verifier/dist with the package's own build config, unless dist is
 * newer than every source file. Test files run in parallel, so builds are serialised with a
 * lock directory: a second tsc rewriting dist/ while another test runs the CLI would be a race.
 */
export async function buildVerifier(): Promise<void> {
  for (;;) {
    try {
      mkdirSync(BUILD_LOCK);
      break;
    } catch {
      // A lock older than two minutes belongs to a run that died.
      if (Date.now() - (statSync(BUILD_LOCK, { throwIfNoEntry: false })?.mtimeMs ?? Date.now()) > 120_000) {
        rmSync(BUILD_LOCK, { recursive: true, force: true });
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  try {
    if (distIsStale()) {
      execFileSync(NODE_24, [`${REPO_ROOT}node_modules/typescript/bin/tsc`, "-p", `${VERIFIER_DIR}tsconfig.build.json`], {
        stdio: "pipe",
      });
    }
  } finally {
    rmSync(BUILD_LOCK, { recursive: true, force: true });
  }
}

function distIsStale(): boolean {
  const sources = readdirSync(`${VERIFIER_DIR}src`).filter((name) => name.endsWith(".ts"));
  return sources.some((name) => {
    const output = statSync(`${VERIFIER_DIR}dist/${name.replace(/\.ts$/, ".js")}`, { throwIfNoEntry: false });
    return output === undefined || output.mtimeMs < statSync(`${VERIFIER_DIR}src/${name}`).mtimeMs;
  });
}

export interface CliRun {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function runCli(node: string, args: readonly string[], cwd = VERIFIER_DIR): CliRun {
  const result = spawnSync(node, [CLI, ...args], { cwd, encoding: "utf8", timeout: 30_000 });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Runs the CLI without blocking the test's event loop (for servers living in the test process). */
export function runCliAsync(node: string, args: readonly string[], cwd = VERIFIER_DIR): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    execFile(node, [CLI, ...args], { cwd, encoding: "utf8", timeout: 60_000 }, (error, stdout, stderr) => {
      const status = error === null ? 0 : typeof (error as { code?: unknown }).code === "number" ? (error as { code: number }).code : null;
      if (status === null) reject(error);
      else resolve({ status, stdout, stderr });
    });
  });
}

/** A long-running CLI process (the monitor's continuous mode). */
export interface CliProcess {
  readonly child: ChildProcess;
  output(): { stdout: string; stderr: string };
  /** Resolves once stdout matches `pattern`; returns the match. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  readonly exited: Promise<number | string>;
}

export function startCli(node: string, args: readonly string[], cwd = VERIFIER_DIR): CliProcess {
  const child = spawn(node, [CLI, ...args], { cwd, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | string>((resolve) => child.on("exit", (code, signal) => resolve(code ?? signal ?? -1)));
  return {
    child,
    output: () => ({ stdout, stderr }),
    async waitFor(pattern, timeoutMs = 30_000) {
      for (let waited = 0; ; waited += 25) {
        const match = pattern.exec(stdout);
        if (match !== null) return match;
        if (waited > timeoutMs || child.exitCode !== null) throw new Error(`no ${pattern} in the output:\n${stdout}\n${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    },
    exited,
  };
}
