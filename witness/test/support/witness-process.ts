// Real kapsel-witness processes for tests: the package is compiled the way `npm ci` builds it,
// then run through its bin under a given Node, exactly as an operator would start it.
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { NODE_24, buildVerifier } from "../../../verifier/test/support/cli.ts";

export { NODE_20, NODE_24 } from "../../../verifier/test/support/cli.ts";

export const WITNESS_DIR = fileURLToPath(new URL("../../", import.meta.url));
export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
export const BIN = `${WITNESS_DIR}bin/kapsel-witness.js`;

const BUILD_LOCK = join(tmpdir(), "kapsel-witness-build.lock");

/** Builds @kapsel/verify and then witness/dist, unless dist is newer than every source file. */
export async function buildWitness(): Promise<void> {
  await buildVerifier();
  for (;;) {
    try {
      mkdirSync(BUILD_LOCK);
      break;
    } catch {
      if (Date.now() - (statSync(BUILD_LOCK, { throwIfNoEntry: false })?.mtimeMs ?? Date.now()) > 120_000) {
        rmSync(BUILD_LOCK, { recursive: true, force: true });
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  try {
    const stale = readdirSync(`${WITNESS_DIR}src`).some((name) => {
      const output = statSync(`${WITNESS_DIR}dist/${name.replace(/\.ts$/, ".js")}`, { throwIfNoEntry: false });
      return output === undefined || output.mtimeMs < statSync(`${WITNESS_DIR}src/${name}`).mtimeMs;
    });
    if (stale) {
      execFileSync(NODE_24, [`${REPO_ROOT}node_modules/typescript/bin/tsc`, "-p", `${WITNESS_DIR}tsconfig.build.json`], { stdio: "pipe" });
    }
  } finally {
    rmSync(BUILD_LOCK, { recursive: true, force: true });
  }
}

export interface CommandRun {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a kapsel-witness command to completion. */
export function runWitness(args: readonly string[], node = NODE_24): CommandRun {
  const result = spawnSync(node, [BIN, ...args], { encoding: "utf8", timeout: 30_000 });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

export interface WitnessProcess {
  /** Base URL, e.g. http://127.0.0.1:41234 */
  readonly url: string;
  /** The witness vkey it printed. */
  readonly vkey: string;
  readonly child: ChildProcess;
  output(): string;
  /** Resolves once the process has printed `text` (its stderr may trail its HTTP answers). */
  printed(text: string): Promise<void>;
  readonly exited: Promise<number | string>;
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

/** Starts `kapsel-witness serve` (on a free loopback port unless `listen` says where) and waits until it listens. */
export async function startWitness(options: { keyFile: string; stateDir: string; logs: readonly string[]; name?: string; node?: string; listen?: string }): Promise<WitnessProcess> {
  const args = ["serve", "--listen", options.listen ?? "127.0.0.1:0", "--key-file", options.keyFile, "--state-dir", options.stateDir];
  for (const log of options.logs) args.push("--log", log);
  if (options.name !== undefined) args.push("--name", options.name);
  const child = spawn(options.node ?? NODE_24, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | string>((resolve) => child.on("exit", (code, signal) => resolve(code ?? signal ?? -1)));
  const listening = await new Promise<RegExpExecArray>((resolve, reject) => {
    const check = () => {
      const match = /^listening on (http:\/\/\S+) /m.exec(output);
      if (match !== null) resolve(match);
    };
    child.stdout!.on("data", check);
    void exited.then((code) => reject(new Error(`kapsel-witness exited with ${code} before listening:\n${output}`)));
  });
  const vkey = /^witness (\S+)$/m.exec(output)![1]!;
  return {
    url: listening[1]!,
    vkey,
    child,
    output: () => output,
    async printed(text) {
      for (let waited = 0; !output.includes(text); waited += 20) {
        if (waited > 10_000) throw new Error(`kapsel-witness did not print ${JSON.stringify(text)}:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    exited,
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** An add-checkpoint body: `old N`, the proof lines, an empty line, the checkpoint. */
export function addCheckpointBody(oldSize: number | bigint, proof: readonly Uint8Array[], checkpoint: string): string {
  return `old ${oldSize}\n${proof.map((h) => `${Buffer.from(h).toString("base64")}\n`).join("")}\n${checkpoint}`;
}

export interface Answer {
  readonly status: number;
  readonly contentType: string | null;
  readonly body: string;
}

/** POSTs to /add-checkpoint. */
export async function addCheckpoint(url: string, body: string | Uint8Array<ArrayBuffer>): Promise<Answer> {
  const response = await fetch(`${url}/add-checkpoint`, { method: "POST", body });
  return { status: response.status, contentType: response.headers.get("content-type"), body: await response.text() };
}
