// Runs the built CLI (verifier/dist/cli.js) under a given Node binary, the way an auditor would.
import { execFileSync, spawnSync } from "node:child_process";
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
