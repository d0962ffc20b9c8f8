// `npm run bench -- e2e [options]`: Kapsel end to end (ingest → delivered → attested) against what a
// Node team would build instead, on this machine, in one run.
//
// For each system (bench/_e2e-systems.ts) a fresh embedded Postgres with durable defaults (fsync on,
// synchronous_commit on), the system as its own process(es), the load generator
// (bench/_e2e-load.ts) and the loopback sink (bench/_delivery-sink.ts) as two more. 1 KiB JSON
// events go through the HTTP gateway at a constant offered rate on a clock (open loop), in steps
// of `--seconds`. A step is kept up with when ≥ 99 % of its requests were acknowledged and every
// acknowledged event was delivered within 5 s of the step's end. Rates go up by doubling from
// `--start` until a step is not kept up, then `--fine` bisection steps between the last kept-up
// rate and the first that was not; a system's sustained rate is the highest rate it kept up with.
//
// Per step: offered, acknowledged, delivered, drain time, ingest→delivered p50/p99 (sink arrival
// minus the scheduled send time carried in the payload), CPU of each process per delivered event
// (utime + stime from /proc; Postgres is the postmaster and its children), and the cores used by
// each process and by processes outside the bench (the machine may be shared). At the end: each
// system's sustained rate, Kapsel's over each peer's (or, split layout, each layout's over one
// process), a chart (bench/e2e.svg, bench/e2e-split.svg) and the section in bench/README.md. The
// whole run stays under 10 minutes (RUN_BUDGET_MS, shared out among the systems).
//
// Options:
//   --layout single|split  single (default): Kapsel, Kapsel fan-out ×5, graphile-worker relay,
//                          pg-boss relay. split: Kapsel as 1 process, 1 ingest + 1 delivering
//                          process, 2 + 2 (the load generator alternates between ingest processes)
//   --systems a,b          a subset (kapsel, fanout, graphile, pgboss, split-1+1, split-2+2)
//   --seconds N            step length (default 10)
//   --start N              first offered rate, deliveries/s (default 250)
//   --max N                highest rate tried (default 64000)
//   --fine N               bisection steps after the first step not kept up (default 2)
//   --rates a,b            fixed offered rates instead of the search (for quick checks)
//   --connections N        keep-alive connections of the load generator per system (default 256)
//   --no-readme            do not write bench/README.md and the chart even after a full run
//   --profile              where the time goes (Kapsel systems): Postgres statements from
//                          pg_stat_statements (time, calls, rows, WAL), and the server's CPU profile
// A run with --systems or --rates writes its chart to a temp folder and leaves the README alone.
import { fork, type ChildProcess } from "node:child_process";
import { writeFile, mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { cpuSeconds, machineCpu, postgresCpuSeconds, ROOT, SinkProcess, sleep, writeReadmeSection } from "./_delivery-support.ts";
import type { SinkStats, StepSummary } from "./_delivery-sink.ts";
import type { LoadCommand, StepLoad } from "./_e2e-load.ts";
import { renderChart, stepLine, stepsTable, sustained, sustainedTable, type StepResult, type SystemRun } from "./_e2e-report.ts";
import { launchSystem, NotAvailable, SYSTEM_KINDS, SYSTEM_LABELS, type RunningSystem, type SystemKind } from "./_e2e-systems.ts";

/** A step's acknowledged events must all be delivered within this long after it ends. */
const DRAIN_MS = 5_000;
/** Share of offered requests that must be acknowledged. */
const ACK_SHARE = 0.99;
/** After a step that was not kept up, how long the backlog may take to clear before the next. */
const RECOVERY_MS = 60_000;
const WARMUP_SECONDS = 3;
/** The whole run must stay under 10 minutes: each system gets an even share of what is left of
 * this budget, and its search stops (with a note) when its share is used up. */
const RUN_BUDGET_MS = 9 * 60_000;

const LAYOUTS: Record<string, SystemKind[]> = {
  single: ["kapsel", "fanout", "graphile", "pgboss"],
  split: ["kapsel", "split-1+1", "split-2+2"],
};

interface Options {
  layout: string;
  systems: SystemKind[];
  seconds: number;
  start: number;
  max: number;
  fine: number;
  rates: number[] | undefined;
  connections: number;
  /** A full run: the layout's systems, searched; it writes the README section and the chart. */
  full: boolean;
  /** Report where Kapsel's time went (pg_stat_statements, server CPU profile). */
  profile: boolean;
}

function parseOptions(args: string[]): Options {
  const { values } = parseArgs({
    args,
    options: {
      layout: { type: "string", default: "single" },
      systems: { type: "string" },
      seconds: { type: "string", default: "10" },
      start: { type: "string", default: "250" },
      max: { type: "string", default: "64000" },
      fine: { type: "string", default: "2" },
      rates: { type: "string" },
      connections: { type: "string", default: "256" },
      "no-readme": { type: "boolean", default: false },
      profile: { type: "boolean", default: false },
    },
  });
  const layout = values.layout!;
  if (!LAYOUTS[layout]) throw new Error(`--layout: expected ${Object.keys(LAYOUTS).join(" or ")}`);
  const systems = values.systems ? values.systems.split(",").map((s) => s.trim()) : LAYOUTS[layout]!;
  for (const s of systems) if (!(SYSTEM_KINDS as readonly string[]).includes(s)) throw new Error(`--systems: unknown "${s}" (${SYSTEM_KINDS.join(", ")})`);
  const positive = (name: string, v: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name}: expected a positive number, got "${v}"`);
    return n;
  };
  return {
    layout,
    systems: systems as SystemKind[],
    seconds: positive("seconds", values.seconds!),
    start: positive("start", values.start!),
    max: positive("max", values.max!),
    fine: Number.isInteger(Number(values.fine)) && Number(values.fine) >= 0 ? Number(values.fine) : positive("fine", values.fine!),
    rates: values.rates?.split(",").map((r) => positive("rates", r)),
    connections: Math.floor(positive("connections", values.connections!)),
    full: values.systems === undefined && values.rates === undefined && !values["no-readme"] && !values.profile,
    profile: values.profile!,
  };
}

// ---------------------------------------------------------------------------------------------
// The load generator process.

/** The load generator process (bench/_e2e-load.ts), driven over IPC. */
export class LoadGenerator {
  readonly child: ChildProcess;

  private constructor(child: ChildProcess) {
    this.child = child;
  }

  static async start(): Promise<LoadGenerator> {
    const child = fork(path.join(ROOT, "bench/_e2e-load.ts"), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    await new Promise<void>((resolve, reject) => {
      child.once("message", () => resolve());
      child.once("exit", (code) => reject(new Error(`load generator exited with ${code}`)));
    });
    return new LoadGenerator(child);
  }

  #ask<T>(cmd: LoadCommand): Promise<T> {
    return new Promise((resolve) => {
      const onMessage = (m: { type: string }) => {
        if (m.type !== cmd.type) return;
        this.child.off("message", onMessage);
        resolve(m as T);
      };
      this.child.on("message", onMessage);
      this.child.send(cmd);
    });
  }

  step(cmd: Extract<LoadCommand, { type: "step" }>): Promise<StepLoad> {
    return this.#ask(cmd);
  }

  /** Waits (bounded) until none of its requests is in flight; returns how many still are. */
  async idle(timeoutMs: number): Promise<number> {
    return (await this.#ask<{ inFlight: number }>({ type: "idle", timeoutMs })).inFlight;
  }

  stop(): void {
    if (this.child.connected) this.child.disconnect();
  }
}

// ---------------------------------------------------------------------------------------------
// One step.

const wallNow = () => performance.timeOrigin + performance.now();

interface Cpu {
  at: number;
  /** CPU seconds so far of each process of the system, by name. */
  processes: Record<string, number>;
  postgres: number;
  sink: number;
  load: number;
  machine: { busy: number; total: number };
}

async function cpuNow(sys: RunningSystem, sink: SinkProcess, load: LoadGenerator): Promise<Cpu> {
  const [processes, postgres, sinkCpu, loadCpu, machine] = await Promise.all([
    Promise.all(sys.processes.map(async (p) => [p.name, await cpuSeconds(p.pid)] as const)).then(Object.fromEntries),
    postgresCpuSeconds(sys.postmaster),
    cpuSeconds(sink.child.pid!),
    cpuSeconds(load.child.pid!),
    machineCpu(),
  ]);
  return { at: wallNow(), processes, postgres, sink: sinkCpu, load: loadCpu, machine };
}

/** Cores used between two readings, by process, plus Postgres, sink, load generator, other
 * processes on the machine and idle. */
function coresBetween(a: Cpu, b: Cpu): Record<string, number> {
  const wall = (b.at - a.at) / 1000;
  const cores: Record<string, number> = {};
  for (const name of Object.keys(a.processes)) cores[name] = (b.processes[name]! - a.processes[name]!) / wall;
  cores.postgres = (b.postgres - a.postgres) / wall;
  cores.sink = (b.sink - a.sink) / wall;
  cores["load gen"] = (b.load - a.load) / wall;
  const ours = Object.values(cores).reduce((x, y) => x + y, 0);
  cores.others = Math.max(0, (b.machine.busy - a.machine.busy) / wall - ours);
  cores.idle = Math.max(0, (b.machine.total - b.machine.busy - (a.machine.total - a.machine.busy)) / wall);
  return cores;
}

async function delivered(sink: SinkProcess, step: number): Promise<number> {
  const { counts } = await sink.ask<{ counts: [number, number][] }>({ type: "stepCounts" });
  return counts.find(([s]) => s === step)?.[1] ?? 0;
}

/** Waits until `expected` deliveries of `step` reached the sink or the clock passes `until`. */
async function waitDelivered(sink: SinkProcess, step: number, expected: number, until: number): Promise<boolean> {
  for (;;) {
    if ((await delivered(sink, step)) >= expected) return true;
    if (wallNow() >= until) return false;
    await sleep(25);
  }
}

let stepCounter = 0;

async function runStep(sys: RunningSystem, sink: SinkProcess, load: LoadGenerator, rate: number, seconds: number, connections: number): Promise<StepResult & { stuck: boolean }> {
  const step = ++stepCounter;
  const before = await cpuNow(sys, sink, load);
  const l = await load.step({
    type: "step", step, rate: rate / sys.fanout, seconds, targets: sys.targets,
    connectionsPerTarget: Math.ceil(connections / sys.targets.length), graceMs: DRAIN_MS,
  });
  const expected = l.acked * sys.fanout;
  const drained = await waitDelivered(sink, step, expected, l.endedAt + DRAIN_MS);
  const after = await cpuNow(sys, sink, load);
  const s = (await sink.ask<{ summary: StepSummary }>({ type: "stepSummary", step, windowFrom: l.startedAt, windowTo: l.endedAt })).summary;

  const ackedShare = l.acked / l.offered;
  const why = [
    ackedShare < ACK_SHARE ? `${(100 * ackedShare).toFixed(1)} % acknowledged` : "",
    drained ? "" : `${(s.delivered / Math.max(1, expected) * 100).toFixed(1)} % of acknowledged delivered 5 s after the end`,
  ].filter(Boolean).join("; ");
  const per = (cpu: number) => (s.delivered > 0 ? (cpu * 1e6) / s.delivered : Number.NaN);
  const systemCpu = (c: Cpu) => Object.values(c.processes).reduce((x, y) => x + y, 0);
  const cores = coresBetween(before, after);
  const result: StepResult = {
    step,
    rate,
    requestRate: rate / sys.fanout,
    seconds,
    offered: l.offered,
    sent: l.sent,
    acked: l.acked,
    failures: {
      ...l.failures,
      ...(l.offered > l.sent ? { "not sent: every connection busy": l.offered - l.sent } : {}),
      ...(l.unanswered > 0 ? { "unanswered 5 s after the end": l.unanswered } : {}),
    },
    delivered: s.delivered,
    deliveredRate: s.deliveredInWindow / seconds,
    drainMs: drained ? Math.max(0, s.lastArrival - l.endedAt) : undefined,
    latencyMs: s.latencyMs,
    ackMs: l.ackMs,
    cpuUs: {
      system: per(systemCpu(after) - systemCpu(before)),
      postgres: per(after.postgres - before.postgres),
      sink: per(after.sink - before.sink),
      load: per(after.load - before.load),
    },
    cores,
    keptUp: why === "",
    why,
  };

  // A step that was not kept up leaves a backlog (and maybe requests in flight): let it clear
  // before the next step, or give up on this system.
  let stuck = false;
  if (!result.keptUp) {
    const cleared = await waitDelivered(sink, step, expected, wallNow() + RECOVERY_MS);
    const inFlight = await load.idle(RECOVERY_MS / 2);
    stuck = !cleared || inFlight > 0;
  }
  await sleep(500);
  return { ...result, stuck };
}

// ---------------------------------------------------------------------------------------------
// The search for the sustained rate.

const roundRate = (r: number) => (r >= 100 ? Math.round(r / 10) * 10 : Math.max(1, Math.round(r)));

async function measureSystem(kind: SystemKind, sink: SinkProcess, load: LoadGenerator, opts: Options, current: { sys?: RunningSystem }, deadline: number): Promise<SystemRun> {
  const run: SystemRun = { kind, label: SYSTEM_LABELS[kind], fanout: kind === "fanout" ? 5 : 1, steps: [], notes: [] };
  await sink.ask({ type: "reset" });
  console.log(`\n${run.label}: starting (fresh embedded Postgres)…`);
  let sys: RunningSystem;
  try {
    sys = await launchSystem(kind, `http://127.0.0.1:${sink.port}`, { profile: opts.profile });
  } catch (err) {
    if (!(err instanceof NotAvailable)) throw err;
    run.unavailable = kind === "fanout" ? "fan-out: not available on this build" : "not available on this build";
    run.notes.push(`${run.unavailable} (${err.message})`);
    console.log(`  ${run.notes.at(-1)}`);
    return run;
  }
  current.sys = sys;
  try {
    // Warm-up (JIT, connections, caches), not reported.
    await runStep(sys, sink, load, roundRate(opts.start / 2), WARMUP_SECONDS, opts.connections);

    let outOfTime = false;
    const step = async (rate: number) => {
      if (performance.now() > deadline) {
        outOfTime = true;
        run.notes.push(`out of its share of the ${RUN_BUDGET_MS / 60_000}-minute budget before the ${rate}/s step; search stopped there`);
        return { keptUp: false, stuck: true };
      }
      const r = await runStep(sys, sink, load, rate, opts.seconds, opts.connections);
      run.steps.push(r);
      console.log(stepLine(run, r));
      if (r.stuck) run.notes.push(`the backlog of the ${rate}/s step had not cleared ${RECOVERY_MS / 1000} s later; no further steps`);
      return r;
    };
    if (opts.rates) {
      for (const rate of opts.rates) if ((await step(rate)).stuck) break;
    } else {
      let pass = 0;
      let fail = Number.POSITIVE_INFINITY;
      let stuck = false;
      for (let rate = opts.start; rate <= opts.max && !stuck; rate *= 2) {
        const r = await step(rate);
        stuck = r.stuck;
        if (!r.keptUp) {
          if (!outOfTime) fail = rate;
          break;
        }
        pass = rate;
      }
      // Bisect between the last rate kept up with and the first that was not; when even the
      // first step failed, halve (up to 4 times) until one is kept up with.
      let extra = pass === 0 ? 4 : 0;
      for (let i = 0; i < opts.fine + extra && fail !== Number.POSITIVE_INFINITY && !stuck; i++) {
        const rate = roundRate(pass === 0 ? fail / 2 : (pass + fail) / 2);
        if (rate <= pass || rate >= fail) break;
        const r = await step(rate);
        stuck = r.stuck;
        if (r.keptUp) {
          pass = rate;
          extra = 0;
        } else if (!outOfTime) fail = rate;
      }
    }
    const stats = await sink.ask<SinkStats>({ type: "stats" });
    const check = await sys.finalCheck(stats.requests);
    if (check) {
      run.notes.push(check);
      console.log(`  ${check}`);
    }
    if (opts.profile) console.log(await sys.statementReport());
  } finally {
    current.sys = undefined;
    await sys.stop();
    if (opts.profile) console.log(await sys.cpuProfileReport());
  }
  return run;
}

// ---------------------------------------------------------------------------------------------

function machineLine(): string {
  const cpus = os.cpus();
  return `${cpus[0]?.model.trim() ?? "unknown CPU"}, ${cpus.length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, ${os.type()} ${os.release()}, Node ${process.version}`;
}

const loadAvg = () => os.loadavg().map((l) => l.toFixed(2)).join(" ");

export default async function e2e(args: string[] = []): Promise<void> {
  const opts = parseOptions(args);
  const started = new Date();
  const t0 = performance.now();
  const loadBefore = loadAvg();
  console.log(`e2e bench — ${started.toISOString()}, layout ${opts.layout}: ${opts.systems.map((k) => SYSTEM_LABELS[k]).join(", ")}`);
  console.log(`machine: ${machineLine()}`);
  console.log(`load average before (1, 5, 15 min): ${loadBefore}`);
  console.log(`steps of ${opts.seconds} s, ${opts.rates ? `rates ${opts.rates.join(", ")}` : `doubling from ${opts.start}/s then ${opts.fine} bisection steps`}; ` +
    `kept up = ≥ ${ACK_SHARE * 100} % acknowledged and drained within ${DRAIN_MS / 1000} s`);

  const sink = await SinkProcess.start();
  const load = await LoadGenerator.start();
  const current: { sys?: RunningSystem } = {};
  const onSignal = () => {
    console.error("\ninterrupted: stopping the system under test");
    void (current.sys?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const runs: SystemRun[] = [];
  try {
    for (const [i, kind] of opts.systems.entries()) {
      const share = (t0 + RUN_BUDGET_MS - performance.now()) / (opts.systems.length - i);
      runs.push(await measureSystem(kind, sink, load, opts, current, performance.now() + share));
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    sink.stop();
    load.stop();
  }
  const loadAfter = loadAvg();
  const minutes = (performance.now() - t0) / 60_000;

  // Kapsel (one process) is the reference: peers are compared with it, layouts against it.
  const reference = "kapsel";
  const ratio = opts.layout === "split" ? "this-over-reference" : "reference-over-this";
  const steps = stepsTable(runs);
  const summary = sustainedTable(runs, reference, ratio);
  console.log(`\n${steps}\n\n${summary}\n`);
  for (const run of runs) for (const note of run.notes) console.log(`${run.label}: ${note}`);
  const ref = runs.find((r) => r.kind === reference && !r.unavailable);
  for (const run of ref ? runs : []) {
    if (run === ref || run.unavailable) continue;
    const [a, b] = [sustained(ref!), sustained(run)];
    const [num, den] = ratio === "reference-over-this" ? [ref!, run] : [run, ref!];
    const [x, y] = ratio === "reference-over-this" ? [a, b] : [b, a];
    console.log(`${num.label} ÷ ${den.label}: ${x > 0 && y > 0 ? `${(x / y).toFixed(1)}×` : "–"} (${x.toLocaleString("en-US")} vs ${y.toLocaleString("en-US")} deliveries/s sustained, same run)`);
  }
  const others = runs.flatMap((run) => run.steps.map((s) => s.cores.others ?? 0));
  console.log(`load average after (1, 5, 15 min): ${loadAfter}; processes outside the bench used ${(others.reduce((a, b) => a + b, 0) / Math.max(1, others.length)).toFixed(2)} cores on average during the steps; whole run ${minutes.toFixed(1)} min`);

  const date = started.toISOString().slice(0, 16).replace("T", " ");
  const chart = renderChart(runs, `Kapsel end to end vs. peers — ${opts.layout} layout`,
    `${date} UTC, ${os.cpus().length} cores, open loop, 1 KiB JSON via HTTP, fsync on; load average ${loadBefore} before, ${loadAfter} after`);
  const chartName = opts.layout === "split" ? "e2e-split.svg" : "e2e.svg";
  if (!opts.full) {
    const dir = await mkdtemp(path.join(os.tmpdir(), "kapsel-bench-e2e-chart-"));
    await writeFile(path.join(dir, chartName), chart);
    console.log(`chart: ${path.join(dir, chartName)} (not a full run: bench/README.md left alone)`);
    return;
  }
  await writeFile(path.join(ROOT, "bench", chartName), chart);
  await writeReadmeSection(opts.layout === "split" ? "e2e --layout split" : "e2e", readmeBody(opts, runs, {
    date, loadBefore, loadAfter, minutes, steps, summary, chartName,
  }));
  console.log(`bench/${chartName} and bench/README.md updated`);
}

function readmeBody(opts: Options, runs: SystemRun[], r: { date: string; loadBefore: string; loadAfter: string; minutes: number; steps: string; summary: string; chartName: string }): string {
  const notes = runs.flatMap((run) => run.notes.map((n) => `- ${run.label}: ${n}`));
  const intro = opts.layout === "split"
    ? [
      "`npm run bench -- e2e --layout split` (same harness as `## e2e`): Kapsel as one process, then",
      "two processes on one database (one with `KAPSEL_DELIVERY_ENABLED=false` taking all the ingest",
      "traffic, one delivering), then two of each (the load generator alternates between the two",
      "ingest processes). Every process runs the attestation sequencer; one holds its lock.",
    ]
    : [
      "`npm run bench -- e2e` (bench/e2e.ts; load generator bench/_e2e-load.ts, systems",
      "bench/_e2e-systems.ts and bench/peers/, sink bench/_delivery-sink.ts, table and chart",
      "bench/_e2e-report.ts). What a user runs, all at once on one machine: events in through the",
      "HTTP gateway, out to a destination, into the signed log.",
      "",
      "- **Systems**, each on a fresh embedded PostgreSQL with durable defaults (fsync on,",
      "  synchronous_commit on): Kapsel, one `kapsel serve` with every stage on and default settings",
      "  (`POST /ingest/{endpoint_id}`, one endpoint); Kapsel fan-out, a source",
      "  (`POST /ingest/sources/{id}`) fanned out to 5 endpoints, so each request is 5 deliveries;",
      "  a graphile-worker relay (bench/peers/graphile-relay.ts: `addJob` before the 202, 24",
      "  concurrent jobs, pool 25, local queue 500, completions batched with no delay, as in its",
      "  performance docs) and a pg-boss relay (bench/peers/pgboss-relay.ts: `send` before the 202,",
      "  LISTEN/NOTIFY on, batches of 100 delivered concurrently and settled per job, fetching",
      "  again at once while batches are full, retries polled every 2 s, 4 workers, pool 25). Both peers deliver with undici",
      "  (64 connections), sign like Kapsel and retry through their library (10 attempts).",
      "- **Processes**: the system, its Postgres, the load generator and the sink (answers 200 at",
      "  once) are separate processes on the same 2 cores.",
      `- **Load**: open loop: 1 KiB JSON events at a constant offered rate on a clock over ${opts.connections}`,
      "  keep-alive connections; a request that finds every connection busy waits, and that wait",
      "  counts. Steps of " + `${opts.seconds} s, doubling from ${opts.start}/s until a step is not kept up, then ${opts.fine}`,
      "  bisection steps. A step is kept up with when ≥ 99 % of its requests were acknowledged (2xx)",
      "  and every acknowledged event reached the sink within 5 s of the step's end. Rates are",
      "  deliveries/s (for fan-out, 5 × requests/s). Sustained = the highest rate kept up with.",
      "- **Figures per step**: delivered/s = deliveries arriving while the step's clock ran ÷ its",
      "  length; drain = step end → last delivery of its events; p50/p99 = sink arrival minus the",
      "  scheduled send time carried in the payload (first delivery of each event); CPU = utime +",
      "  stime from /proc over the step and its drain ÷ deliveries (Postgres = postmaster and all",
      "  its children); cores = the same CPU ÷ wall time, by process (several server processes are",
      "  listed ingest first, joined by +), with others = processes outside the bench and idle.",
      "- **Attestation** (Kapsel): at the end the signed checkpoint must cover at least as many",
      "  leaves as the sink saw delivery attempts.",
      "- **Time**: under 10 minutes: each system gets an even share of what is left of a 9-minute",
      "  budget; a search that runs out of it stops and says so below.",
      "- **Options** (bench/e2e.ts): `--layout split` (next section), `--systems`, `--rates`,",
      "  `--seconds`, `--start`, `--fine`, `--connections`; only a full run rewrites this section.",
    ];
  const others = runs.flatMap((run) => run.steps.map((s) => s.cores.others ?? 0));
  const meanOthers = others.reduce((a, b) => a + b, 0) / Math.max(1, others.length);
  const busy = meanOthers >= 0.1
    ? `**Other work was running**: processes outside the bench used ${meanOthers.toFixed(2)} of the ${os.cpus().length} cores on average during the steps (up to ${Math.max(...others).toFixed(2)}), so these figures are low and noisy; re-run on a quiet machine.`
    : `The machine was quiet: processes outside the bench used ${meanOthers.toFixed(2)} cores on average during the steps.`;
  return [
    ...intro,
    "",
    `Measured ${r.date} UTC on ${machineLine()}.`,
    `Load average (1, 5, 15 min): ${r.loadBefore} before the run, ${r.loadAfter} after. ${busy}`,
    `The whole run took ${r.minutes.toFixed(1)} min.`,
    "",
    `![delivered rate and p99 against offered rate](${r.chartName})`,
    "",
    r.summary,
    "",
    r.steps,
    ...(notes.length ? ["", ...notes] : []),
  ].join("\n");
}
