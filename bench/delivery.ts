// `npm run bench -- delivery`: how fast Kapsel delivers, against what this machine can do at all.
//
// 1. Starts its own embedded Postgres (durable defaults: fsync on, synchronous_commit on) in a temp
//    folder, and a fast loopback sink as a separate process (bench/_delivery-sink.ts).
// 2. Raw limit: undici in this process POSTs 1 KiB bodies to that sink over 64 keep-alive
//    connections (what Kapsel uses per endpoint) in a closed loop → requests/s.
// 3. Backlog: a `kapsel serve` process with delivery off takes 100 000 events through IngestBatch
//    and stops; a second one with delivery on drains them → sustained deliveries/s (sink arrivals
//    between the 10th and 90th percentile, and the whole drain until the last job row is gone),
//    its ratio to the raw rate, and the dead tuples left on delivery_jobs (pg_stat_user_tables
//    after a short wait).
// 4. Latency: events POSTed to the gateway at a paced 200/s; latency is from just before the ingest
//    request to the sink's receipt (both wall-clock, sub-millisecond) → p50/p99.
// 5. Prints the figures against the targets and writes them into bench/README.md ("## delivery").
//
// Knobs (optional): KAPSEL_BENCH_BACKLOG (default 100000), KAPSEL_BENCH_RAW_SECONDS (10),
// KAPSEL_BENCH_PACED_SECONDS (20), KAPSEL_BENCH_ENDPOINTS (endpoints sharing the backlog, 1),
// KAPSEL_BENCH_PROFILE=1 (delivering server under `node --cpu-prof`; prints where its time went),
// KAPSEL_BENCH_PG_SETTINGS (JSON of extra Postgres settings, for experiments),
// KAPSEL_BENCH_NO_README=1. Other KAPSEL_* variables are passed to the server processes.
import { randomBytes } from "node:crypto";
import { chmod, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { Agent } from "undici";
import { startEmbeddedPostgres } from "../server/src/db/embedded.ts";
import { createLogger } from "../server/src/logger.ts";
import { createTenant, rpc } from "../test/support/rpc.ts";
import {
  cpuSplit, now, percentile, SinkProcess, sleep, snapshot, startKapsel, summariseProfile, waitQuiet, writeReadmeSection,
  type CpuSnapshot, type KapselProcess,
} from "./_delivery-support.ts";
import type { SinkStats } from "./_delivery-sink.ts";

const env = process.env;
const BACKLOG = Number(env.KAPSEL_BENCH_BACKLOG ?? 100_000);
const RAW_SECONDS = Number(env.KAPSEL_BENCH_RAW_SECONDS ?? 10);
const PACED_SECONDS = Number(env.KAPSEL_BENCH_PACED_SECONDS ?? 20);
const ENDPOINTS = Number(env.KAPSEL_BENCH_ENDPOINTS ?? 1);
const PROFILE = env.KAPSEL_BENCH_PROFILE === "1";
const PACED_RATE = 200;
const RAW_CONNECTIONS = 64;
const INGEST_BATCH = 1_000;
const TARGET_RATE = 5_000;
const TARGET_P50_MS = 20;
const ADMIN_TOKEN = `bench-admin-${randomBytes(16).toString("hex")}`;
/** KAPSEL_MASTER_KEY is required with DATABASE_URL: a fresh one per run. */
const MASTER_KEY = randomBytes(32).toString("base64");
const PAYLOAD = Buffer.from(JSON.stringify({ type: "invoice.paid", data: { id: "in_".padEnd(40, "x"), note: "".padEnd(900, "lorem ipsum ") } }).slice(0, 1024));

function passThroughEnv(): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter(([k, v]) => k.startsWith("KAPSEL_") && !k.startsWith("KAPSEL_BENCH_") && v !== undefined)) as Record<string, string>;
}

const fmt = (n: number, digits = 0) => n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
const cores = (split: Record<string, number>) => Object.entries(split).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", ");

// ---------------------------------------------------------------------------------------------

/** Closed-loop POSTs with undici, 64 connections: the request rate this sink and machine allow. */
async function rawRate(sinkUrl: string, seconds: number): Promise<{ rate: number; errors: number }> {
  const url = new URL(sinkUrl);
  const agent = new Agent({ connections: RAW_CONNECTIONS, pipelining: 1, keepAliveTimeout: 60_000 });
  let done = 0;
  let errors = 0;
  let running = true;
  let seq = 0;
  const worker = async () => {
    while (running) {
      try {
        const res = await agent.request({
          origin: url.origin,
          path: url.pathname,
          method: "POST",
          headers: {
            "content-type": "application/json",
            "user-agent": "raw-undici",
            "webhook-id": `raw-${seq++}`,
            "webhook-timestamp": String(Math.floor(Date.now() / 1000)),
            "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
          },
          body: PAYLOAD,
        });
        for await (const _ of res.body) {
          // read it all, as Kapsel does
        }
        done++;
      } catch {
        errors++;
      }
    }
  };
  const workers = Array.from({ length: RAW_CONNECTIONS }, worker);
  await sleep(1_000);
  const d0 = done;
  const t0 = now();
  await sleep(seconds * 1_000);
  const rate = ((done - d0) * 1000) / (now() - t0);
  running = false;
  await Promise.all(workers);
  await agent.close();
  return { rate, errors };
}

async function ingestBacklog(url: string, apiKey: string, endpointIds: string[], total: number): Promise<void> {
  const payload = PAYLOAD.toString("base64");
  let next = 0;
  const worker = async () => {
    while (next < total) {
      const n = Math.min(INGEST_BATCH, total - next);
      const first = next;
      next += n;
      const events = Array.from({ length: n }, (_, i) => ({ endpointId: endpointIds[(first + i) % endpointIds.length], payload, contentType: "application/json" }));
      const r = await rpc(url, "IngestBatch", { events }, apiKey);
      if (r.status !== 200) throw new Error(`IngestBatch: ${r.status} ${JSON.stringify(r.body).slice(0, 500)}`);
      const bad = (r.body.results as any[]).filter((x) => x.status !== "INGEST_RESULT_STATUS_ACCEPTED");
      if (bad.length > 0) throw new Error(`IngestBatch refused ${bad.length} items: ${JSON.stringify(bad[0])}`);
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
}

interface DrainResult {
  midRate: number;
  drainRate: number;
  drainSeconds: number;
  requests: number;
  unique: number;
  deliveredRows: number;
  attemptRows: number;
  cpu: Record<string, number>;
}

async function drain(sink: SinkProcess, db: pg.Client, server: KapselProcess, cpuStart: CpuSnapshot, pids: Parameters<typeof snapshot>[0]): Promise<DrainResult> {
  let stats: SinkStats;
  let cpuEnd: CpuSnapshot;
  for (;;) {
    await sleep(250);
    stats = await sink.ask<SinkStats>({ type: "stats" });
    if (stats.unique < BACKLOG) continue;
    const { rows } = await db.query("SELECT 1 FROM delivery_jobs LIMIT 1");
    if (rows.length === 0) {
      cpuEnd = await snapshot(pids);
      break;
    }
    if (server.child.exitCode !== null) throw new Error(`kapsel exited during the drain:\n${server.output()}`);
  }
  const tEnd = now();
  const arrivals = ((await sink.ask<{ arrivals: number[] }>({ type: "arrivals" })).arrivals).sort((a, b) => a - b);
  const lo = Math.floor(arrivals.length * 0.1);
  const hi = Math.floor(arrivals.length * 0.9);
  const midRate = ((hi - lo) * 1000) / (arrivals[hi]! - arrivals[lo]!);
  const drainSeconds = (tEnd - arrivals[0]!) / 1000;
  const counts = await db.query(`SELECT (SELECT count(*)::int FROM events WHERE status = 'delivered') AS delivered,
    (SELECT count(*)::int FROM delivery_attempts) AS attempts`);
  return {
    midRate,
    drainRate: BACKLOG / drainSeconds,
    drainSeconds,
    requests: stats.requests,
    unique: stats.unique,
    deliveredRows: counts.rows[0].delivered,
    attemptRows: counts.rows[0].attempts,
    cpu: cpuSplit(cpuStart, cpuEnd),
  };
}

interface DeadTuples {
  n_live_tup: number;
  n_dead_tup: number;
  n_tup_ins: number;
  n_tup_upd: number;
  n_tup_hot_upd: number;
  n_tup_del: number;
  autovacuum_count: number;
  size: string;
}

async function deadTuples(db: pg.Client): Promise<DeadTuples> {
  const { rows } = await db.query(`SELECT n_live_tup::int, n_dead_tup::int, n_tup_ins::int, n_tup_upd::int, n_tup_hot_upd::int,
      n_tup_del::int, autovacuum_count::int, pg_size_pretty(pg_total_relation_size(relid)) AS size
    FROM pg_stat_user_tables WHERE relname = 'delivery_jobs'`);
  return rows[0];
}

/** The statements Postgres spent the most time on (PROFILE only), with a one-line shape of each. */
async function topStatements(db: pg.Client): Promise<string> {
  const { rows } = await db.query(`SELECT calls::int, total_exec_time AS total, mean_exec_time AS mean, rows::int,
      regexp_replace(query, '\\s+', ' ', 'g') AS query
    FROM pg_stat_statements WHERE query NOT ILIKE '%pg_stat_statements%' ORDER BY total_exec_time DESC LIMIT 10`);
  const sum = rows.reduce((a, r) => a + r.total, 0);
  return rows.map((r) => `  ${(r.total / 1000).toFixed(2).padStart(6)} s ${((100 * r.total) / sum).toFixed(0).padStart(3)} %  ${String(r.calls).padStart(6)} calls  ${r.mean.toFixed(2).padStart(7)} ms  ${String(r.rows).padStart(7)} rows  ${r.query.slice(0, 110)}`).join("\n");
}

async function pacedLatency(sink: SinkProcess, server: KapselProcess, endpointId: string): Promise<{ p50: number; p99: number; max: number; ackP50: number; n: number }> {
  const agent = new Agent({ connections: 16, keepAliveTimeout: 60_000 });
  const origin = new URL(server.url).origin;
  const total = PACED_RATE * PACED_SECONDS;
  const started = new Map<string, number>();
  const acks: number[] = [];
  const inflight: Promise<void>[] = [];
  const t0 = now();
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / PACED_RATE;
    const wait = due - now();
    if (wait > 1) await sleep(wait);
    inflight.push((async () => {
      const start = now();
      const res = await agent.request({ origin, path: `/ingest/${endpointId}`, method: "POST", headers: { "content-type": "application/json" }, body: PAYLOAD });
      const text = await res.body.text();
      if (res.statusCode !== 202) throw new Error(`ingest answered ${res.statusCode}: ${text}`);
      acks.push(now() - start);
      started.set((JSON.parse(text) as { event_id: string }).event_id, start);
    })());
  }
  await Promise.all(inflight);
  await agent.close();
  for (;;) {
    const stats = await sink.ask<SinkStats>({ type: "stats" });
    if (stats.unique >= total) break;
    await sleep(100);
  }
  const firsts = new Map((await sink.ask<{ firsts: [string, number][] }>({ type: "firsts" })).firsts);
  const latencies = [...started].map(([id, start]) => firsts.get(id)! - start).sort((a, b) => a - b);
  acks.sort((a, b) => a - b);
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1)!, ackP50: percentile(acks, 50), n: latencies.length };
}

// ---------------------------------------------------------------------------------------------

export default async function delivery(): Promise<void> {
  const log = createLogger("warn");
  const dir = await mkdtemp(path.join(os.tmpdir(), "kapsel-bench-delivery-"));
  await chmod(dir, 0o755);
  const profileDir = path.join(dir, "profile");
  let pgServer: Awaited<ReturnType<typeof startEmbeddedPostgres>> | undefined;
  let sink: SinkProcess | undefined;
  let server: KapselProcess | undefined;
  let db: pg.Client | undefined;
  try {
    console.log(`delivery bench: backlog ${fmt(BACKLOG)}, raw ${RAW_SECONDS} s, paced ${PACED_RATE}/s for ${PACED_SECONDS} s, ${ENDPOINTS} endpoint(s)`);
    const pgSettings = {
      ...(PROFILE ? { shared_preload_libraries: "pg_stat_statements", "pg_stat_statements.track": "all" } : {}),
      ...(JSON.parse(env.KAPSEL_BENCH_PG_SETTINGS ?? "{}") as Record<string, string>),
    };
    pgServer = await startEmbeddedPostgres({ dataDir: dir, log, settings: pgSettings });
    const postmaster = Number((await readFile(path.join(dir, "pg", "postmaster.pid"), "utf8")).split("\n")[0]);
    sink = await SinkProcess.start();
    const serverEnv = {
      ...passThroughEnv(),
      DATABASE_URL: pgServer.url,
      KAPSEL_MASTER_KEY: MASTER_KEY,
      KAPSEL_ADMIN_TOKEN: ADMIN_TOKEN,
      KAPSEL_ALLOW_PRIVATE_DESTINATIONS: "true",
      KAPSEL_DATA_DIR: path.join(dir, "data"),
      KAPSEL_RATE_LIMIT_PER_SECOND: "10000000",
      KAPSEL_RATE_LIMIT_BURST: "10000000",
    };

    // 1. Raw limit.
    const quietRaw = await waitQuiet();
    const raw = await rawRate(sink.url, RAW_SECONDS);
    console.log(`raw undici: ${fmt(raw.rate)} req/s (${raw.errors} errors; machine busy ${(quietRaw * 100).toFixed(0)} % before)`);
    await sink.ask({ type: "reset" });

    // 2. Backlog, taken in with delivery off.
    server = await startKapsel({ ...serverEnv, KAPSEL_DELIVERY_ENABLED: "false" });
    const tenant = await createTenant(server.url, ADMIN_TOKEN, "bench");
    const endpointIds: string[] = [];
    for (let i = 0; i < ENDPOINTS; i++) {
      const r = await rpc(server.url, "CreateEndpoint", { url: sink.url, allowHttp: true }, tenant.apiKey);
      if (r.status !== 200) throw new Error(`CreateEndpoint: ${JSON.stringify(r.body)}`);
      endpointIds.push(r.body.endpoint.id);
    }
    const tIngest = now();
    await ingestBacklog(server.url, tenant.apiKey, endpointIds, BACKLOG);
    console.log(`backlog of ${fmt(BACKLOG)} ingested in ${((now() - tIngest) / 1000).toFixed(1)} s`);
    await server.stop();
    server = undefined;

    db = new pg.Client({ connectionString: pgServer.url });
    await db.connect();
    await db.query("VACUUM ANALYZE delivery_jobs");
    await db.query("SELECT pg_stat_reset_single_table_counters('delivery_jobs'::regclass)");
    if (PROFILE) {
      await db.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
      await db.query("SELECT pg_stat_statements_reset()");
    }

    // 3. Drain it with delivery on.
    const quietDrain = await waitQuiet();
    const nodeArgs = PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [];
    const drainStartCpu = { server: 0, sink: sink.child.pid!, bench: process.pid, postmaster };
    server = await startKapsel({ ...serverEnv, KAPSEL_DELIVERY_ENABLED: "true" }, nodeArgs);
    drainStartCpu.server = server.child.pid!;
    const cpuStart = await snapshot(drainStartCpu);
    const drained = await drain(sink, db, server, cpuStart, drainStartCpu);
    console.log(`drain: ${fmt(drained.midRate)} deliveries/s (middle 80 %), ${fmt(drained.drainRate)}/s over the whole drain (${drained.drainSeconds.toFixed(1)} s); ` +
      `sink saw ${fmt(drained.requests)} requests for ${fmt(drained.unique)} events; CPU cores: ${cores(drained.cpu)}`);

    let statements = "";
    if (PROFILE) statements = await topStatements(db);
    if (statements) console.log(`\nPostgres time during the drain, by statement (pg_stat_statements):\n${statements}`);

    // 4. Dead tuples after those deliveries.
    await sleep(2_000);
    const dead = await deadTuples(db);
    console.log(`delivery_jobs after ${fmt(BACKLOG)} deliveries: ${JSON.stringify(dead)}`);

    // And once autovacuum has been round (its naptime is a minute), bounded.
    const vacuumDeadline = Date.now() + 90_000;
    let vacuumed = await deadTuples(db);
    while (vacuumed.autovacuum_count === dead.autovacuum_count && Date.now() < vacuumDeadline) {
      await sleep(2_000);
      vacuumed = await deadTuples(db);
    }
    console.log(`delivery_jobs after the next autovacuum: ${JSON.stringify(vacuumed)}`);

    // 5. Paced latency.
    await sink.ask({ type: "reset" });
    const quietPaced = await waitQuiet();
    const latency = await pacedLatency(sink, server, endpointIds[0]!);
    console.log(`paced ${PACED_RATE}/s: ingest→delivered p50 ${latency.p50.toFixed(1)} ms, p99 ${latency.p99.toFixed(1)} ms, max ${latency.max.toFixed(1)} ms (ingest ack p50 ${latency.ackP50.toFixed(1)} ms, ${latency.n} events)`);

    const exit = await server.stop();
    server = undefined;
    let profileText = "";
    if (PROFILE) {
      const files = (await readdir(profileDir)).filter((f) => f.endsWith(".cpuprofile"));
      if (files[0]) profileText = await summariseProfile(path.join(profileDir, files[0]));
      console.log(`\nwhere the delivering server's CPU went (whole run: drain + paced phase):\n${profileText}`);
    }
    const version = (await db.query("SHOW server_version")).rows[0].server_version as string;

    // Report.
    const ratio = drained.midRate / raw.rate;
    const rows: [string, string, string, string][] = [
      ["raw undici request rate, same sink (64 connections)", `${fmt(raw.rate)} req/s`, "—", "—"],
      [`sustained deliveries/s, ${fmt(BACKLOG)} backlog (middle 80 %)`, `${fmt(drained.midRate)} /s`, `≥ ${fmt(TARGET_RATE)} /s`, drained.midRate >= TARGET_RATE ? "met" : "not met"],
      ["  whole drain, first request to last job row gone", `${fmt(drained.drainRate)} /s`, "", ""],
      ["  ratio to the raw undici rate", `${(ratio * 100).toFixed(0)} %`, "—", "—"],
      [`ingest→delivered p50 at a paced ${PACED_RATE} events/s`, `${latency.p50.toFixed(1)} ms`, `≤ ${TARGET_P50_MS} ms`, latency.p50 <= TARGET_P50_MS ? "met" : "not met"],
      ["ingest→delivered p99", `${latency.p99.toFixed(1)} ms`, "—", "—"],
      [`dead tuples on delivery_jobs after ${fmt(BACKLOG)} deliveries (2 s later)`, fmt(dead.n_dead_tup), "—", "—"],
      ["  after the next autovacuum", vacuumed.autovacuum_count > dead.autovacuum_count ? fmt(vacuumed.n_dead_tup) : "(none ran within 90 s)", "—", "—"],
    ];
    const table = ["| measure | figure | target | |", "|---|---|---|---|", ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
    console.log(`\n${table}\n`);
    const correctness = `The sink saw ${fmt(drained.requests)} requests for ${fmt(drained.unique)} distinct events in the drain ` +
      `(${fmt(drained.requests - drained.unique)} duplicates); ${fmt(drained.deliveredRows)} events ended delivered with ` +
      `${fmt(drained.attemptRows)} attempt rows. Delivering server exit code after SIGTERM: ${exit}.`;
    console.log(correctness);

    if (env.KAPSEL_BENCH_NO_README !== "1") {
      const cpu = os.cpus();
      const machine = `${cpu[0]?.model.trim() ?? "unknown CPU"}, ${cpu.length} cores, ${fmt(os.totalmem() / 2 ** 30)} GiB RAM, ${os.type()} ${os.release()}; Node ${process.version}; PostgreSQL ${version} (embedded, fsync on, synchronous_commit on)`;
      await writeReadmeSection("delivery", [
        "`npm run bench -- delivery` (bench/delivery.ts): its own embedded Postgres, a `kapsel serve`",
        "process, and a loopback sink in a separate process that answers 200 at once. Phases: raw undici",
        `POSTs to the sink (64 keep-alive connections, 1 KiB bodies, closed loop, ${RAW_SECONDS} s); a backlog of`,
        `${fmt(BACKLOG)} events taken in through IngestBatch by a process with delivery off, then drained by a`,
        "fresh process with delivery on (rate over the middle 80 % of sink arrivals, and over the whole",
        "drain until the last delivery_jobs row is gone); dead tuples on delivery_jobs from",
        "pg_stat_user_tables 2 s after the drain; then gateway POSTs paced at 200/s, latency from just",
        "before each ingest request to the sink's receipt (wall clock, sub-millisecond, same machine).",
        "",
        `Measured ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC on ${machine}. Machine busy before the phases`,
        `(other sessions share it): raw ${(quietRaw * 100).toFixed(0)} %, drain ${(quietDrain * 100).toFixed(0)} %, paced ${(quietPaced * 100).toFixed(0)} %.`,
        "",
        table,
        "",
        correctness,
        "",
        `CPU during the drain, in cores: ${cores(drained.cpu)}.`,
        "",
        `delivery_jobs counters for the drain (reset after the backlog was taken in): ${fmt(dead.n_tup_upd)} updated ` +
          `(${fmt(dead.n_tup_hot_upd)} HOT), ${fmt(dead.n_tup_del)} deleted, ${fmt(dead.n_live_tup)} live, ${fmt(dead.n_dead_tup)} dead, ` +
          `${dead.autovacuum_count} autovacuum runs, ${dead.size} on disk.`,
        ...(statements ? ["", "Postgres execution time during the drain (pg_stat_statements, top 10; `KAPSEL_BENCH_PROFILE=1`):", "", "```", statements, "```"] : []),
        ...(profileText ? ["", "Delivering server CPU profile (`KAPSEL_BENCH_PROFILE=1`, drain and paced phase):", "", "```", profileText, "```"] : []),
      ].join("\n"));
      console.log("bench/README.md: ## delivery updated");
    }
  } finally {
    await server?.stop("SIGKILL");
    await db?.end().catch(() => {});
    sink?.stop();
    await pgServer?.stop().catch(() => {});
    if (env.KAPSEL_BENCH_KEEP !== "1") await rm(dir, { recursive: true, force: true }).catch(() => {});
    else console.log(`kept ${dir}`);
  }
}


