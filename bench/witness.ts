// `npm run bench -- witness`: how long until an attempt is in a *witnessed* checkpoint — signed
// by the log and cosigned by a quorum of witnesses — with two local `kapsel-witness` processes
// (quorum 2 of 2) on loopback.
//
// 1. Starts its own embedded Postgres (durable defaults: fsync on, synchronous_commit on) in a temp
//    folder, migrates it, creates a tenant with `kapsel tenant create`, builds and starts two
//    `kapsel-witness serve` processes that follow the log's key (KAPSEL_SIGNING_KEY, random).
// 2. For each witness interval (KAPSEL_BENCH_WITNESS_INTERVALS, default "20000,1000": the default
//    and a fast one), starts `kapsel serve` with KAPSEL_WITNESSES naming both witnesses, quorum 2,
//    the default 1 000 ms checkpoint interval, and feeds it a steady trickle of synthetic attempts
//    (one INSERT each, KAPSEL_BENCH_TRICKLE_RATE per second for KAPSEL_BENCH_TRICKLE_SECONDS; the
//    migration's trigger queues them for the log as it queues real ones).
// 3. For each attempt: recorded_at → signed_at of the first checkpoint containing it (signed), and
//    → the time the second cosignature of the first witnessed checkpoint containing it arrived
//    (witnessed). Plus the add-checkpoint exchange time from the server's own histogram.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { logKeyFromSeed, vkey } from "../server/src/attestation/log-key.ts";
import { startEmbeddedPostgres, type EmbeddedDatabase } from "../server/src/db/embedded.ts";
import { migrate } from "../server/src/db/migrate.ts";
import { freePort } from "../server/src/free-port.ts";
import { createLogger } from "../server/src/logger.ts";
import { waitUntilReady } from "../test/support/server.ts";
import { buildWitness, startWitness, type WitnessProcess } from "../witness/test/support/witness-process.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const ADMIN_TOKEN = `bench-admin-${randomBytes(16).toString("hex")}`;
const ORIGIN = "bench.kapsel.example/log";

const env = process.env;
const INTERVALS = (env.KAPSEL_BENCH_WITNESS_INTERVALS ?? "20000,1000").split(",").map(Number);
const TRICKLE_SECONDS = Number(env.KAPSEL_BENCH_TRICKLE_SECONDS ?? 60);
const TRICKLE_RATE = Number(env.KAPSEL_BENCH_TRICKLE_RATE ?? 20);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(sorted.length * p) - 1))]!;
}

function summary(samples: number[]): { p50: number; p99: number; max: number } {
  const s = [...samples].sort((a, b) => a - b);
  return { p50: percentile(s, 0.5), p99: percentile(s, 0.99), max: s.at(-1)! };
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** Machine-wide busy share of all cores over one second, from /proc/stat. */
async function busyShare(): Promise<number> {
  const read = async () => {
    const v = (await readFile("/proc/stat", "utf8")).split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = v.reduce((a, b) => a + b, 0);
    return { busy: total - v[3]! - v[4]!, total };
  };
  const a = await read();
  await sleep(1_000);
  const b = await read();
  return (b.busy - a.busy) / (b.total - a.total);
}

/** KAPSEL_MASTER_KEY is required with DATABASE_URL: a fresh one per run. */
const MASTER_KEY = randomBytes(32).toString("base64");

function cli(args: string[], extraEnv: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [path.join(ROOT, "server/src/cli.ts"), ...args], { cwd: ROOT, env: { PATH: env.PATH, HOME: env.HOME, KAPSEL_MASTER_KEY: MASTER_KEY, ...extraEnv } }, (err, stdout, stderr) =>
      err ? reject(new Error(`kapsel ${args.join(" ")}: ${stderr || err.message}`)) : resolve(stdout),
    );
  });
}

async function serve(extraEnv: Record<string, string>): Promise<{ url: string; child: ChildProcess; stop(): Promise<void> }> {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(ROOT, "server/src/cli.ts"), "serve"], {
    cwd: ROOT,
    env: { PATH: env.PATH, HOME: env.HOME, KAPSEL_HOST: "127.0.0.1", KAPSEL_PORT: String(port), KAPSEL_ADMIN_TOKEN: ADMIN_TOKEN, KAPSEL_LOG_LEVEL: "warn", KAPSEL_MASTER_KEY: MASTER_KEY, ...extraEnv },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  await waitUntilReady(url, child, () => output, 120_000);
  return {
    url,
    child,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

const SYNTHETIC = `
  INSERT INTO delivery_attempts (id, event_id, tenant_id, endpoint_id, url, attempt, payload_sha256, started_at,
    duration_ms, outcome, status_code, response_sha256)
  SELECT uuidv7(), uuidv7(), $1::uuid, '00000000-0000-4000-8000-0000000000e1', 'https://hooks.example.com/webhooks/kapsel',
    1, encode(sha256(random()::text::bytea), 'hex'), clock_timestamp(), 42, 'delivered', 200, NULL`;

export default async function run(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "kapsel-bench-witness-"));
  await chmod(dir, 0o755);
  const seed = randomBytes(32);
  const logVkey = vkey(ORIGIN, logKeyFromSeed(ORIGIN, seed).publicKey);
  let embedded: EmbeddedDatabase | undefined;
  let db: pg.Client | undefined;
  const witnesses: WitnessProcess[] = [];
  try {
    embedded = await startEmbeddedPostgres({ dataDir: path.join(dir, "db"), log: createLogger("warn") });
    const admin = new pg.Client({ connectionString: embedded.url });
    await admin.connect();
    await admin.query("CREATE DATABASE kapsel_bench");
    const pgVersion = (await admin.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]!.v;
    await admin.end();
    const url = new URL(embedded.url);
    url.pathname = "/kapsel_bench";
    const databaseUrl = url.toString();
    await migrate(databaseUrl);
    db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    const created = await cli(["tenant", "create", "bench"], { DATABASE_URL: databaseUrl, KAPSEL_LOG_LEVEL: "warn" });
    const tenantId = /^tenant (\S+)/m.exec(created)![1]!;

    await buildWitness();
    for (const i of [0, 1]) {
      witnesses.push(await startWitness({
        keyFile: path.join(dir, `witness-${i}.key`),
        stateDir: path.join(dir, `witness-${i}`),
        logs: [logVkey],
        name: `witness-${i}.bench.example`,
      }));
    }

    const cpu = os.cpus();
    console.log(`witness benchmark, ${new Date().toISOString()}`);
    console.log(`node ${process.version}, PostgreSQL ${pgVersion} (embedded, fsync on, synchronous_commit on), ${cpu[0]?.model ?? "unknown CPU"} × ${cpu.length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB`);
    console.log(`two kapsel-witness processes on loopback, quorum 2 of 2; checkpoint interval 1 000 ms; ${TRICKLE_RATE} attempts/s for ${TRICKLE_SECONDS} s per run\n`);

    const rows: string[] = [];
    for (const interval of INTERVALS) {
      const server = await serve({
        DATABASE_URL: databaseUrl,
        KAPSEL_DATA_DIR: path.join(dir, "data"),
        KAPSEL_LOG_ORIGIN: ORIGIN,
        KAPSEL_SIGNING_KEY: seed.toString("base64"),
        KAPSEL_DELIVERY_ENABLED: "false",
        KAPSEL_WITNESSES: witnesses.map((w) => `${w.url} ${w.vkey}`).join(","),
        KAPSEL_WITNESS_QUORUM: "2",
        KAPSEL_WITNESS_INTERVAL_MS: String(interval),
      });
      try {
        const busy = await busyShare();
        const fromSeq = Number((await db.query<{ s: string }>("SELECT coalesce(max(seq), 0) AS s FROM delivery_attempts")).rows[0]!.s);
        const start = performance.now();
        const total = TRICKLE_SECONDS * TRICKLE_RATE;
        for (let i = 0; i < total; i++) {
          const wait = start + (i * 1000) / TRICKLE_RATE - performance.now();
          if (wait > 0) await sleep(wait);
          await db.query(SYNTHETIC, [tenantId]);
        }
        const last = Number((await db.query<{ s: string }>("SELECT max(seq) AS s FROM delivery_attempts")).rows[0]!.s);
        // Every attempt of the run in a witnessed checkpoint (at most two intervals and a margin).
        for (const deadline = Date.now() + 2 * interval + 30_000; ; ) {
          const done = await db.query(`
            SELECT 1 FROM log_leaves l JOIN delivery_attempts a ON a.id = l.attempt_id
            WHERE a.seq = $1 AND EXISTS (
              SELECT 1 FROM checkpoint_cosignatures c WHERE c.tree_size > l.idx GROUP BY c.tree_size HAVING count(*) >= 2)`, [last]);
          if (done.rowCount) break;
          if (Date.now() > deadline) throw new Error(`attempts not witnessed within ${2 * interval + 30_000} ms`);
          await sleep(200);
        }
        const delays = (await db.query<{ signed: number; witnessed: number }>(`
          WITH w AS (SELECT tree_size, max(received_at) AS at FROM checkpoint_cosignatures GROUP BY tree_size HAVING count(*) >= 2)
          SELECT extract(epoch FROM s.signed_at - a.recorded_at)::float8 * 1000 AS signed,
                 extract(epoch FROM w.at - a.recorded_at)::float8 * 1000 AS witnessed
          FROM delivery_attempts a
          JOIN log_leaves l ON l.attempt_id = a.id
          CROSS JOIN LATERAL (SELECT signed_at FROM checkpoints WHERE tree_size > l.idx ORDER BY tree_size LIMIT 1) s
          CROSS JOIN LATERAL (SELECT at FROM w WHERE w.tree_size > l.idx ORDER BY w.tree_size LIMIT 1) w
          WHERE a.seq > $1 AND a.seq <= $2`, [fromSeq, last])).rows;
        const signed = summary(delays.map((d) => d.signed));
        const witnessed = summary(delays.map((d) => d.witnessed));
        const metrics = await (await fetch(`${server.url}/metrics`)).text();
        const exchange = witnesses.map((_, i) => {
          const value = (suffix: string) => Number(new RegExp(`^kapsel_witness_exchange_duration_seconds_${suffix}\\{witness="witness-${i}\\.bench\\.example"\\} (\\S+)$`, "m").exec(metrics)![1]);
          return { count: value("count"), mean: (value("sum") / value("count")) * 1000 };
        });
        const rounds = Number((await db.query("SELECT count(DISTINCT tree_size) AS c FROM checkpoint_cosignatures WHERE received_at > now() - make_interval(secs => $1)", [(performance.now() - start) / 1000])).rows[0].c);
        console.log(`witness interval ${interval} ms: ${delays.length} attempts, ${rounds} checkpoints cosigned, machine busy ${(busy * 100).toFixed(0)}% before`);
        console.log(`  attempt → signed checkpoint     p50 ${seconds(signed.p50)}  p99 ${seconds(signed.p99)}  max ${seconds(signed.max)}`);
        console.log(`  attempt → witnessed checkpoint  p50 ${seconds(witnessed.p50)}  p99 ${seconds(witnessed.p99)}  max ${seconds(witnessed.max)}`);
        console.log(`  add-checkpoint exchange, mean: ${exchange.map((e, i) => `witness-${i} ${e.mean.toFixed(1)} ms (${e.count})`).join(", ")}`);
        rows.push(`| ${interval.toLocaleString("en")} ms | p50 ${seconds(signed.p50)}, p99 ${seconds(signed.p99)} | p50 ${seconds(witnessed.p50)}, p99 ${seconds(witnessed.p99)}, max ${seconds(witnessed.max)} | ${exchange.map((e) => `${e.mean.toFixed(1)} ms`).join(" / ")} |`);
      } finally {
        await server.stop();
      }
    }
    console.log("\n| witness interval | attempt → signed checkpoint | attempt → witnessed checkpoint | exchange mean (witness 0 / 1) |");
    console.log("|---|---|---|---|");
    for (const row of rows) console.log(row);
  } finally {
    await Promise.all(witnesses.map((w) => w.stop()));
    await db?.end().catch(() => {});
    await embedded?.stop().catch(() => {});
    await rm(dir, { recursive: true, force: true }).catch(() => {});
  }
}
