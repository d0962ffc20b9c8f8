// `npm run bench -- tracing`: what OpenTelemetry tracing costs, off against on.
//
// 1. Starts its own embedded Postgres, the loopback webhook sink (bench/_delivery-sink.ts, its own
//    process) and, in this process, a local OTLP/HTTP collector stand-in that reads each export
//    request and answers 200 (it counts requests and bytes; decoding is the test's business).
// 2. For each round, tracing off then on: a fresh `kapsel serve` (delivery on) — off: no OTEL_*
//    variables; on: OTEL_EXPORTER_OTLP_ENDPOINT at the collector (parentbased_always_on, every
//    span sampled and exported) — a tenant with one endpoint at the sink, and the gateway load
//    generator (bench/_ingest-load.ts, its own process) in a closed loop for the measured seconds;
//    then it waits until the sink has every acknowledged event.
// 3. Prints, per mode: events/s acknowledged during the load, and Kapsel's CPU per event from the
//    load's start until the last delivery (ingest, group commit, delivery, sequencing: every span
//    the event causes), Postgres's too; and the ratio on/off. Writes the table into
//    bench/README.md ("## tracing") unless KAPSEL_BENCH_NO_README=1.
//
// Knobs: KAPSEL_BENCH_SECONDS (measured seconds per run, default 10), KAPSEL_BENCH_ROUNDS (off/on
// pairs, default 2), KAPSEL_BENCH_CONNECTIONS (gateway senders, default 32).
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { chmod, mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startEmbeddedPostgres } from "../server/src/db/embedded.ts";
import { createLogger } from "../server/src/logger.ts";
import { createTenant, rpc } from "../test/support/rpc.ts";
import { cpuSeconds, postgresCpuSeconds, ROOT, SinkProcess, sleep, waitQuiet, writeReadmeSection, type KapselProcess, startKapsel } from "./_delivery-support.ts";
import type { SinkStats } from "./_delivery-sink.ts";
import type { LoadJob, LoadResult } from "./_ingest-load.ts";

const env = process.env;
const SECONDS = Number(env.KAPSEL_BENCH_SECONDS ?? 10);
const ROUNDS = Number(env.KAPSEL_BENCH_ROUNDS ?? 2);
const CONNECTIONS = Number(env.KAPSEL_BENCH_CONNECTIONS ?? 32);
const WARMUP_MS = 2_000;
const ADMIN_TOKEN = `bench-admin-${randomBytes(16).toString("hex")}`;

interface Run {
  mode: "off" | "on";
  eventsPerSecond: number;
  events: number;
  kapselCpuMsPerEvent: number;
  postgresCpuMsPerEvent: number;
  p50Ms: number;
  exports: number;
  exportBytes: number;
}

function runLoader(job: LoadJob): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, "bench/_ingest-load.ts"), JSON.stringify(job)], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("exit", (code) => {
      if (code !== 0) return reject(new Error(`load generator exited with ${code}: ${err}`));
      resolve(JSON.parse(out.trim().split("\n").at(-1)!) as LoadResult);
    });
  });
}

/** Takes OTLP export requests and answers 200, counting them. */
async function startCollector(): Promise<{ url: string; requests: number; bytes: number; close(): Promise<void> }> {
  const c = { url: "", requests: 0, bytes: 0, close: async () => {} };
  const server = http.createServer((req, res) => {
    req.on("data", (d: Buffer) => (c.bytes += d.length));
    req.on("end", () => {
      c.requests++;
      res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  c.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  c.close = () => new Promise((resolve) => server.close(() => resolve()));
  return c;
}

const f0 = (n: number) => Math.round(n).toLocaleString("en-US");
const f3 = (n: number) => n.toFixed(3);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

export default async function tracingBenchmark(): Promise<void> {
  const log = createLogger("warn");
  const dir = await mkdtemp(path.join(os.tmpdir(), "kapsel-bench-tracing-"));
  await chmod(dir, 0o755);
  let pgServer: Awaited<ReturnType<typeof startEmbeddedPostgres>> | undefined;
  let sink: SinkProcess | undefined;
  let server: KapselProcess | undefined;
  const collector = await startCollector();
  try {
    const started = new Date();
    const loadAtStart = os.loadavg()[0]!.toFixed(1);
    console.log(`tracing benchmark — ${started.toISOString()}; ${ROUNDS} round(s) of off/on, ${SECONDS} s each, ${CONNECTIONS} gateway senders`);
    console.log(`machine: ${os.availableParallelism()} cores, load average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}, Node ${process.version}`);
    pgServer = await startEmbeddedPostgres({ dataDir: dir, log });
    const postmaster = Number((await readFile(path.join(dir, "pg", "postmaster.pid"), "utf8")).split("\n")[0]);
    sink = await SinkProcess.start();
    const runs: Run[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      for (const mode of ["off", "on"] as const) {
        const otel: Record<string, string> = mode === "on"
          ? { OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_BSP_SCHEDULE_DELAY: "1000", OTEL_BSP_MAX_QUEUE_SIZE: "65536", OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "2048" }
          : {};
        server = await startKapsel({
          DATABASE_URL: pgServer.url,
          KAPSEL_ADMIN_TOKEN: ADMIN_TOKEN,
          KAPSEL_ALLOW_PRIVATE_DESTINATIONS: "true",
          KAPSEL_DATA_DIR: path.join(dir, `data-${round}-${mode}`),
          KAPSEL_RATE_LIMIT_PER_SECOND: "10000000",
          KAPSEL_RATE_LIMIT_BURST: "10000000",
          ...otel,
        });
        const tenant = await createTenant(server.url, ADMIN_TOKEN, `bench-${mode}`);
        const ep = await rpc(server.url, "CreateEndpoint", { url: sink.url, allowHttp: true }, tenant.apiKey);
        if (ep.status !== 200) throw new Error(`CreateEndpoint failed: ${ep.status} ${JSON.stringify(ep.body)}`);
        await sink.ask({ type: "reset" });
        const exports0 = { requests: collector.requests, bytes: collector.bytes };
        await waitQuiet(20_000);
        process.stdout.write(`round ${round}, tracing ${mode}: `);
        const cpu0 = { kapsel: await cpuSeconds(server.child.pid!), pg: await postgresCpuSeconds(postmaster) };
        const load = await runLoader({
          mode: "gateway", url: server.url, endpointId: ep.body.endpoint.id, apiKey: tenant.apiKey, connections: CONNECTIONS,
          warmupMs: WARMUP_MS, durationMs: SECONDS * 1000, payloadBytes: 1024, keyPrefix: `${round}-${mode}-${randomBytes(4).toString("hex")}`,
        });
        for (;;) {
          const stats = await sink.ask<SinkStats>({ type: "stats" });
          if (stats.unique >= load.acked) break;
          await sleep(100);
        }
        const kapselCpu = (await cpuSeconds(server.child.pid!)) - cpu0.kapsel;
        const pgCpu = (await postgresCpuSeconds(postmaster)) - cpu0.pg;
        await server.stop();
        server = undefined;
        const run: Run = {
          mode,
          eventsPerSecond: load.eventsPerSecond,
          events: load.acked,
          kapselCpuMsPerEvent: (kapselCpu * 1000) / load.acked,
          postgresCpuMsPerEvent: (pgCpu * 1000) / load.acked,
          p50Ms: load.latencyMs.p50,
          exports: collector.requests - exports0.requests,
          exportBytes: collector.bytes - exports0.bytes,
        };
        runs.push(run);
        console.log(`${f0(run.eventsPerSecond)} events/s, ingest p50 ${run.p50Ms.toFixed(1)} ms, Kapsel ${f3(run.kapselCpuMsPerEvent)} CPU-ms/event, ` +
          `Postgres ${f3(run.postgresCpuMsPerEvent)} CPU-ms/event (${f0(run.events)} events delivered; ${run.exports} exports, ${f0(run.exportBytes / Math.max(1, run.events))} B/event)`);
      }
    }
    const of = (mode: Run["mode"]) => runs.filter((r) => r.mode === mode);
    const off = of("off");
    const on = of("on");
    const row = (label: string, pick: (r: Run) => number, fmt: (n: number) => string) =>
      `| ${label} | ${fmt(mean(off.map(pick)))} | ${fmt(mean(on.map(pick)))} | ${(mean(on.map(pick)) / mean(off.map(pick))).toFixed(2)} |`;
    const table = [
      "| per event, mean of rounds | tracing off | tracing on | on / off |",
      "|---|---|---|---|",
      row("gateway events/s (closed loop)", (r) => r.eventsPerSecond, f0),
      row("Kapsel CPU-ms per event (ingest → delivered → logged)", (r) => r.kapselCpuMsPerEvent, f3),
      row("Postgres CPU-ms per event", (r) => r.postgresCpuMsPerEvent, f3),
      row("ingest latency p50 (ms)", (r) => r.p50Ms, (n) => n.toFixed(1)),
    ].join("\n");
    console.log(`\n${table}`);
    if (env.KAPSEL_BENCH_NO_README !== "1") {
      await writeReadmeSection("tracing", [
        `\`npm run bench -- tracing\` — ${started.toISOString().slice(0, 10)}, ${ROUNDS} round(s) of off/on, ${SECONDS} s of gateway load each (${CONNECTIONS} senders, 1 KiB payloads, delivery on to a loopback sink), on a ${os.availableParallelism()}-core machine shared with other sessions (load average ${loadAtStart} at the start, ${os.loadavg()[0]!.toFixed(1)} at the end: the rounds disagree by as much as the modes do, so read the ratio as a rough figure).`,
        `Tracing on: every span sampled and exported over OTLP/HTTP protobuf to a local collector stand-in (${f0(mean(on.map((r) => r.exportBytes / r.events)))} bytes exported per event).`,
        "",
        table,
        "",
        "Per round: " + runs.map((r) => `${r.mode} ${f0(r.eventsPerSecond)}/s ${f3(r.kapselCpuMsPerEvent)} ms`).join(", ") + ".",
      ].join("\n"));
    }
  } finally {
    await server?.stop();
    sink?.stop();
    await collector.close();
    await pgServer?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
