// Helpers for bench/delivery.ts: a Kapsel server process, the sink process, CPU accounting from
// /proc, a V8 CPU profile summary, percentiles, and the README section writer.
import { fork, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../server/src/free-port.ts";
import { waitUntilReady } from "../test/support/server.ts";
import type { SinkCommand } from "./_delivery-sink.ts";

export const ROOT = fileURLToPath(new URL("../", import.meta.url));

export const now = () => performance.timeOrigin + performance.now();
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Processes.

export interface KapselProcess {
  url: string;
  child: ChildProcess;
  output(): string;
  exited: Promise<number | string>;
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

/** KAPSEL_MASTER_KEY is required with DATABASE_URL: a fresh one per run unless `env` gives one. */
const MASTER_KEY = randomBytes(32).toString("base64");

/** Runs `kapsel serve` with `env` and waits for /readyz. */
export async function startKapsel(env: Record<string, string>, nodeArgs: string[] = []): Promise<KapselProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [...nodeArgs, path.join(ROOT, "server/src/cli.ts"), "serve"], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, KAPSEL_HOST: "127.0.0.1", KAPSEL_LOG_LEVEL: "warn", KAPSEL_METRICS_LISTEN: "off", KAPSEL_MASTER_KEY: MASTER_KEY, ...env, KAPSEL_PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
  child.stderr!.on("data", (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
  const exited = new Promise<number | string>((resolve) => child.on("exit", (code, signal) => resolve(code ?? signal ?? -1)));
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitUntilReady(url, child, () => output, 120_000);
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  }
  return {
    url,
    child,
    output: () => output,
    exited,
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** The sink process (bench/_delivery-sink.ts), driven over IPC. */
export class SinkProcess {
  readonly child: ChildProcess;
  readonly port: number;

  private constructor(child: ChildProcess, port: number) {
    this.child = child;
    this.port = port;
  }

  static async start(): Promise<SinkProcess> {
    const child = fork(path.join(ROOT, "bench/_delivery-sink.ts"), [], { stdio: ["ignore", "inherit", "inherit", "ipc"], serialization: "advanced" });
    const port = await new Promise<number>((resolve, reject) => {
      child.once("message", (m: any) => (m.type === "listening" ? resolve(m.port) : reject(new Error(`sink said ${JSON.stringify(m)}`))));
      child.once("exit", (code) => reject(new Error(`sink exited with ${code}`)));
    });
    return new SinkProcess(child, port);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  ask<T = any>(cmd: SinkCommand): Promise<T> {
    return new Promise((resolve) => {
      const onMessage = (m: any) => {
        if (m.type !== cmd.type) return;
        this.child.off("message", onMessage);
        resolve(m as T);
      };
      this.child.on("message", onMessage);
      this.child.send(cmd);
    });
  }

  stop(): void {
    this.child.disconnect();
  }
}

// ---------------------------------------------------------------------------------------------
// CPU accounting from /proc: which process used the cores during a phase.

const CLK_TCK = 100;

async function statFields(pid: number | string): Promise<string[] | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

export async function cpuSeconds(pid: number): Promise<number> {
  const f = await statFields(pid);
  return f ? (Number(f[11]) + Number(f[12])) / CLK_TCK : 0;
}

/**
 * The postmaster and all its children (backends, WAL writer, checkpointer, autovacuum…). Children
 * that ended (a backend whose client went, an autovacuum worker) are counted too: once reaped,
 * their time is in the postmaster's cutime/cstime, so the sum never drops when one exits.
 */
export async function postgresCpuSeconds(postmasterPid: number): Promise<number> {
  const withChildren = (f: string[]) => (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK;
  const own = await statFields(postmasterPid);
  let total = own ? withChildren(own) : 0;
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const f = await statFields(entry);
    if (f && Number(f[1]) === postmasterPid) total += withChildren(f);
  }
  return total;
}

export async function machineCpu(): Promise<{ busy: number; total: number }> {
  const v = (await readFile("/proc/stat", "utf8")).split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0) / CLK_TCK;
  return { busy: total - (v[3]! + v[4]!) / CLK_TCK, total };
}

/** Waits (bounded) until the machine is mostly idle; other sessions share it. Returns the busy share. */
export async function waitQuiet(maxWaitMs = 60_000): Promise<number> {
  const deadline = Date.now() + maxWaitMs;
  for (;;) {
    const a = await machineCpu();
    await sleep(1_000);
    const b = await machineCpu();
    const busy = (b.busy - a.busy) / (b.total - a.total);
    if (busy < 0.15 || Date.now() > deadline) return busy;
  }
}

export interface CpuSnapshot {
  at: number;
  machine: { busy: number; total: number };
  procs: Record<string, number>;
}

export async function snapshot(pids: { server: number; sink: number; bench: number; postmaster: number }): Promise<CpuSnapshot> {
  const [machine, server, sink, bench, postgres] = await Promise.all([
    machineCpu(), cpuSeconds(pids.server), cpuSeconds(pids.sink), cpuSeconds(pids.bench), postgresCpuSeconds(pids.postmaster),
  ]);
  return { at: Date.now(), machine, procs: { kapsel: server, postgres, sink, bench } };
}

/** CPU used between two snapshots, in cores (1.0 = one core busy the whole time). */
export function cpuSplit(a: CpuSnapshot, b: CpuSnapshot): Record<string, number> {
  const wall = (b.at - a.at) / 1000;
  const out: Record<string, number> = {};
  let ours = 0;
  for (const k of Object.keys(a.procs)) {
    out[k] = (b.procs[k]! - a.procs[k]!) / wall;
    ours += out[k]!;
  }
  out.other = Math.max(0, (b.machine.busy - a.machine.busy) / wall - ours);
  out.idle = Math.max(0, (b.machine.total - b.machine.busy - (a.machine.total - a.machine.busy)) / wall);
  return out;
}

// ---------------------------------------------------------------------------------------------
// V8 CPU profile (`node --cpu-prof`) summary: self time by package or our file, and by function.

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

function bucketOf(url: string, functionName: string): string {
  const u = url.replace(/^file:\/\//, "");
  if (u === "") return functionName.startsWith("(") ? functionName : "(native)";
  if (u.startsWith("node:")) return `node:${u.slice(5).split("/")[0]}`;
  const nm = u.lastIndexOf("node_modules/");
  if (nm !== -1) {
    const rest = u.slice(nm + "node_modules/".length).split("/");
    return rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  return u.startsWith(ROOT) ? u.slice(ROOT.length) : u;
}

export async function summariseProfile(file: string, top = 12): Promise<string> {
  const profile = JSON.parse(await readFile(file, "utf8")) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const buckets = new Map<string, number>();
  const functions = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of self) {
    const f = byId.get(id)!.callFrame;
    if (f.functionName === "(idle)") {
      idle += us;
      continue;
    }
    total += us;
    const bucket = bucketOf(f.url, f.functionName);
    buckets.set(bucket, (buckets.get(bucket) ?? 0) + us);
    const fn = `${f.functionName || "(anonymous)"} ${bucket}${f.url ? `:${f.lineNumber + 1}` : ""}`;
    functions.set(fn, (functions.get(fn) ?? 0) + us);
  }
  const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)} %`;
  const lines = [`busy ${(total / 1e6).toFixed(1)} s, idle ${(idle / 1e6).toFixed(1)} s`, "self time by package / file:"];
  for (const [k, v] of [...buckets].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(v)}  ${k}`);
  lines.push("self time by function:");
  for (const [k, v] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(v)}  ${k}`);
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------
// Figures and the README.

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Replaces (or appends) the `## <name>` section of bench/README.md, leaving the others alone. A
 * hand-written `### Analysis` subsection at the end of the section is kept. */
export async function writeReadmeSection(name: string, body: string): Promise<void> {
  const file = path.join(ROOT, "bench/README.md");
  const text = await readFile(file, "utf8").catch(() => "# Benchmarks\n");
  const lines = text.split("\n");
  const start = lines.findIndex((l) => l.trim() === `## ${name}`);
  const section = [`## ${name}`, "", ...body.trimEnd().split("\n"), ""];
  if (start === -1) {
    const trimmed = text.trimEnd();
    await writeFile(file, `${trimmed}\n\n${section.join("\n")}`);
    return;
  }
  let end = lines.findIndex((l, i) => i > start && l.startsWith("## "));
  if (end === -1) end = lines.length;
  const analysis = lines.findIndex((l, i) => i > start && i < end && l.trim() === "### Analysis");
  const kept = analysis === -1 ? [] : [...lines.slice(analysis, end), ""];
  const next = lines.slice(end);
  await writeFile(file, [...lines.slice(0, start), ...section, ...kept, ...next].join("\n").replace(/\n{3,}/g, "\n\n").trimEnd() + "\n");
}
