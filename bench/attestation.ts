// `npm run bench -- attestation`: the attestation log's cost at a million leaves.
//
// 1. Starts its own embedded Postgres (durable defaults: fsync on, synchronous_commit on) in a temp
//    folder, migrates it, and creates a tenant with the `kapsel tenant create` command.
// 2. Inserts KAPSEL_BENCH_LEAVES (default 1 000 000) synthetic delivery_attempts rows with
//    INSERT … SELECT generate_series, 100 000 per statement; the migration's trigger queues them
//    for the log exactly as it queues real attempts. Ids are UUIDv7, as the dispatcher makes them
//    (time-ordered: index inserts land at the right edge, not on random pages).
// 3. Sequencing throughput: starts `kapsel serve` (debug log) on that database; its sequencer
//    takes the backlog in 10 000-leaf batches (one transaction and one signed checkpoint each).
//    Figures come from the server's own "checkpoint signed" lines (batch duration and leaves), and
//    log_state.tree_size is polled to show progress. Target ≥ 20 000 leaves/s.
// 4. Inclusion-proof latency through the RPC at that size: a fresh `kapsel serve` process, the
//    generated Connect client (binary protobuf over HTTP/1.1 keep-alive), one request at a time,
//    GetInclusionProof and GetProofBundle for attempts chosen at random over the whole log; then
//    the same attempts again (tiles cached), and again from a client that does not accept gzip.
//    GetCheckpoint (one indexed row) over the same path is the floor. Each figure is shown as the
//    client sees it and as the server's request log timed it. Target p99 ≤ 5 ms.
// 5. Attempt → signed checkpoint delay with the default 1 000 ms interval: a steady trickle of
//    attempts (one INSERT per attempt, KAPSEL_BENCH_TRICKLE_RATE per second for
//    KAPSEL_BENCH_TRICKLE_SECONDS), then for each the delay from its recorded_at to the signed_at
//    of the first checkpoint that contains it. Target p99 ≤ 1.5 s.
// 6. Stored bytes per leaf: pg_total_relation_size of log_leaves, log_tiles and checkpoints (after
//    VACUUM) over the leaves.
//
// KAPSEL_BENCH_PROFILE=1 runs the sequencing server under `node --cpu-prof` and prints where its
// CPU time went.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { verifyProofBundle } from "@kapsel/verify";
import pg from "pg";
import { startEmbeddedPostgres, type EmbeddedDatabase } from "../server/src/db/embedded.ts";
import { freePort } from "../server/src/free-port.ts";
import { migrate } from "../server/src/db/migrate.ts";
import { AttestationService } from "@kapsel/contracts/attestation";
import { createLogger } from "../server/src/logger.ts";
import { waitUntilReady } from "../test/support/server.ts";
import { inclusiveTime, topSelfTime } from "./_attestation-profile.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const ADMIN_TOKEN = `bench-admin-${randomBytes(16).toString("hex")}`;
/** KAPSEL_MASTER_KEY is required with DATABASE_URL: a fresh one per run. */
const MASTER_KEY = randomBytes(32).toString("base64");

const env = process.env;
const LEAVES = Number(env.KAPSEL_BENCH_LEAVES ?? 1_000_000);
const PROOFS = Number(env.KAPSEL_BENCH_PROOFS ?? 5_000);
const WARMUP_PROOFS = 500;
const TRICKLE_SECONDS = Number(env.KAPSEL_BENCH_TRICKLE_SECONDS ?? 30);
const TRICKLE_RATE = Number(env.KAPSEL_BENCH_TRICKLE_RATE ?? 50);
const PROFILE = env.KAPSEL_BENCH_PROFILE === "1";

const TARGET_LEAVES_PER_SECOND = 20_000;
const TARGET_PROOF_P99_MS = 5;
const TARGET_DELAY_P99_MS = 1_500;

// ---------------------------------------------------------------------------------------------
// Small helpers.

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(sorted.length * p) - 1))]!;
}

interface Summary {
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

function summary(samples: number[]): Summary {
  const s = [...samples].sort((a, b) => a - b);
  return { p50: percentile(s, 0.5), p99: percentile(s, 0.99), max: s.at(-1)!, mean: s.reduce((a, b) => a + b, 0) / s.length };
}

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

/** Other sessions share this machine: wait (at most three minutes) for the cores to calm down. */
async function waitQuiet(): Promise<number> {
  const deadline = Date.now() + 180_000;
  for (;;) {
    const busy = await busyShare();
    if (busy < 0.15 || Date.now() > deadline) return busy;
  }
}

function cli(args: string[], extraEnv: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [path.join(ROOT, "server/src/cli.ts"), ...args], { cwd: ROOT, env: { PATH: env.PATH, HOME: env.HOME, ...extraEnv } }, (err, stdout, stderr) =>
      err ? reject(new Error(`kapsel ${args.join(" ")}: ${stderr || err.message}`)) : resolve(stdout),
    );
  });
}

interface ServerProcess {
  url: string;
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

async function serve(databaseUrl: string, dataDir: string, extraEnv: Record<string, string>, nodeArgs: string[] = []): Promise<ServerProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [...nodeArgs, path.join(ROOT, "server/src/cli.ts"), "serve"], {
    cwd: ROOT,
    env: {
      PATH: env.PATH,
      HOME: env.HOME,
      DATABASE_URL: databaseUrl,
      KAPSEL_MASTER_KEY: MASTER_KEY,
      KAPSEL_HOST: "127.0.0.1",
      KAPSEL_PORT: String(port),
      KAPSEL_ADMIN_TOKEN: ADMIN_TOKEN,
      KAPSEL_DATA_DIR: dataDir,
      KAPSEL_LOG_LEVEL: "info",
      KAPSEL_METRICS_LISTEN: "off",
      ...extraEnv,
    },
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
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

const SYNTHETIC = `
  INSERT INTO delivery_attempts (id, event_id, tenant_id, endpoint_id, url, attempt, payload_sha256, started_at,
    duration_ms, outcome, status_code, response_sha256)
  SELECT uuidv7(), uuidv7(), $2::uuid, '00000000-0000-4000-8000-0000000000e1',
    'https://hooks.example.com/webhooks/kapsel?n=' || g, 1 + g % 5, encode(sha256(g::text::bytea), 'hex'),
    clock_timestamp(), 20 + g % 400, CASE WHEN g % 10 = 0 THEN 'http_error' ELSE 'delivered' END,
    CASE WHEN g % 10 = 0 THEN 503 ELSE 200 END, encode(sha256(('response ' || g)::bytea), 'hex')
  FROM generate_series(1, $1::int) g`;

async function treeSize(db: pg.Client): Promise<number> {
  return Number((await db.query<{ s: string }>("SELECT tree_size AS s FROM log_state")).rows[0]!.s);
}

const ms = (x: number) => `${x.toFixed(2)} ms`;
const verdict = (ok: boolean) => (ok ? "met" : "NOT met");

// ---------------------------------------------------------------------------------------------

export default async function run(): Promise<void> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "kapsel-bench-att-"));
  await chmod(dataDir, 0o755);
  const profileDir = PROFILE ? await mkdtemp(path.join(os.tmpdir(), "kapsel-bench-att-prof-")) : undefined;
  /** Prints and removes the profile the last server process wrote. */
  const printProfile = async (phase: string): Promise<void> => {
    if (!profileDir) return;
    for (const file of (await readdir(profileDir)).filter((f) => f.endsWith(".cpuprofile"))) {
      const { busyMs, lines } = await topSelfTime(path.join(profileDir, file), 25);
      console.log(`  server CPU during ${phase}: ${(busyMs / 1000).toFixed(1)} s; top self time:`);
      for (const l of lines) console.log(`    ${(l.share * 100).toFixed(1).padStart(5)}%  ${l.name}`);
      console.log("  inclusive time in server/src/attestation:");
      for (const l of await inclusiveTime(path.join(profileDir, file), /server\/src\/attestation\//)) {
        console.log(`    ${(l.share * 100).toFixed(1).padStart(5)}%  ${l.name}`);
      }
      await rm(path.join(profileDir, file));
    }
  };
  let embedded: EmbeddedDatabase | undefined;
  let server: ServerProcess | undefined;
  let db: pg.Client | undefined;
  try {
    embedded = await startEmbeddedPostgres({ dataDir: path.join(dataDir, "db"), log: createLogger("warn") });
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

    const cpu = os.cpus();
    console.log(`attestation benchmark, ${new Date().toISOString()}`);
    console.log(`node ${process.version}, PostgreSQL ${pgVersion} (embedded, fsync on, synchronous_commit on), ${cpu[0]?.model ?? "unknown CPU"} × ${cpu.length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB`);

    const created = await cli(["tenant", "create", "bench"], { DATABASE_URL: databaseUrl, KAPSEL_MASTER_KEY: MASTER_KEY, KAPSEL_LOG_LEVEL: "warn" });
    const tenantId = /^tenant (\S+)/m.exec(created)![1]!;
    const apiKey = /api key \(shown once\): (\S+)/.exec(created)![1]!;

    // --- 2. The backlog.
    let started = performance.now();
    for (let done = 0; done < LEAVES; done += 100_000) await db.query(SYNTHETIC, [Math.min(100_000, LEAVES - done), tenantId]);
    const insertSeconds = (performance.now() - started) / 1000;
    console.log(`\ninserted ${LEAVES} synthetic attempts in ${insertSeconds.toFixed(1)} s (${Math.round(LEAVES / insertSeconds)}/s, queued by the trigger)`);
    await db.query("VACUUM ANALYZE delivery_attempts, log_queue");

    // --- 3. Sequencing throughput.
    const quietBefore = await waitQuiet();
    const nodeArgs = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [];
    server = await serve(databaseUrl, dataDir, { KAPSEL_LOG_LEVEL: "debug", KAPSEL_DELIVERY_ENABLED: "false" }, nodeArgs);
    started = performance.now();
    for (let last = -1; ; ) {
      const size = await treeSize(db);
      if (size === LEAVES) break;
      if (size !== last && Math.floor(size / 100_000) !== Math.floor(last / 100_000)) process.stdout.write(`  sequenced ${size}\r`);
      last = size;
      if (performance.now() - started > 30 * 60_000) throw new Error(`sequencing stalled at ${size}`);
      await sleep(100);
    }
    const batches = server
      .output()
      .split("\n")
      .filter((l) => l.includes('"checkpoint signed"'))
      .map((l) => JSON.parse(l) as { time: string; appended: number; ms: number; tree_size: number })
      .filter((b) => b.appended > 0)
      // Log times are ISO strings.
      .map((b) => ({ ...b, time: Date.parse(b.time) }));
    await server.stop();
    server = undefined;
    const firstStart = batches[0]!.time - batches[0]!.ms;
    const wallSeconds = (batches.at(-1)!.time - firstStart) / 1000;
    const busySeconds = batches.reduce((a, b) => a + b.ms, 0) / 1000;
    const leavesPerSecond = LEAVES / wallSeconds;
    const batchMs = summary(batches.map((b) => b.ms));
    console.log(`sequenced ${LEAVES} leaves in ${batches.length} batches: ${wallSeconds.toFixed(1)} s wall (${busySeconds.toFixed(1)} s inside batches), machine busy ${(quietBefore * 100).toFixed(0)}% before`);
    console.log(`  batch duration p50 ${ms(batchMs.p50)}, p99 ${ms(batchMs.p99)}, max ${ms(batchMs.max)} for ${batches[0]!.appended} leaves`);
    await printProfile("sequencing");

    // --- 4. Inclusion-proof latency at LEAVES leaves.
    server = await serve(databaseUrl, dataDir, { KAPSEL_DELIVERY_ENABLED: "false" }, nodeArgs);
    const auth: Interceptor = (next) => (req) => {
      req.header.set("authorization", `Bearer ${apiKey}`);
      return next(req);
    };
    const client = createClient(
      AttestationService,
      createConnectTransport({
        baseUrl: server.url,
        httpVersion: "1.1",
        useBinaryFormat: true,
        interceptors: [auth],
      }),
    );
    const picks = Array.from({ length: 2 * (PROOFS + WARMUP_PROOFS) }, () => String(Math.floor(Math.random() * LEAVES)));
    const byIdx = new Map((await db.query<{ idx: string; attempt_id: string }>("SELECT idx, attempt_id FROM log_leaves WHERE idx = ANY($1::bigint[])", [picks])).rows.map((r) => [r.idx, r.attempt_id]));
    const ids = picks.map((i) => byIdx.get(i)!);
    const keys = (await client.getPublicKeys({})).keys.map((k) => k.vkey);
    const sample = await client.getProofBundle({ attemptId: ids[0]! });
    const check = verifyProofBundle(sample.bundle, { trustedKeys: keys, requireTimestamp: true });
    if (!check.ok || check.treeSize !== BigInt(LEAVES)) throw new Error(`a bundle does not verify: ${JSON.stringify(check)}`);
    const quietProofs = await waitQuiet();
    const time = async (ask: (id: string) => Promise<unknown>, offset: number): Promise<number[]> => {
      for (let i = 0; i < WARMUP_PROOFS; i++) await ask(ids[(offset + i) % ids.length]!);
      const out: number[] = [];
      for (let i = 0; i < PROOFS; i++) {
        const id = ids[(offset + WARMUP_PROOFS + i) % ids.length]!;
        const t0 = performance.now();
        await ask(id);
        out.push(performance.now() - t0);
      }
      return out;
    };
    // The floor: the same client, server and database for a one-row read.
    const floor = summary(await time(() => client.getCheckpoint({}), 0));
    const inclusion = summary(await time((attemptId) => client.getInclusionProof({ attemptId }), 0));
    const bundle = summary(await time((attemptId) => client.getProofBundle({ attemptId }), PROOFS + WARMUP_PROOFS));
    // The same attempts again: every tile they need is now in the server's cache.
    const warm = summary(await time((attemptId) => client.getInclusionProof({ attemptId }), 0));
    // And once more from a client that does not accept gzip: Connect compresses responses over
    // 1 KiB for clients that do (the default), and these are ~1.5 KiB.
    const plainClient = createClient(
      AttestationService,
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", useBinaryFormat: true, acceptCompression: [], interceptors: [auth] }),
    );
    const plain = summary(await time((attemptId) => plainClient.getInclusionProof({ attemptId }), 0));
    // The server's own view (its request log: from request start to the response's close), per pass.
    const passes = async (method: string, count: number, before = 0): Promise<Summary[]> => {
      const lines = () => server!.output().split("\n").filter((l) => l.includes(`"path":"/kapsel.v1.AttestationService/${method}"`));
      const expected = before + count * (WARMUP_PROOFS + PROOFS);
      for (const deadline = Date.now() + 10_000; lines().length < expected && Date.now() < deadline; ) await sleep(50);
      const all = lines().map((l) => (JSON.parse(l) as { ms: number }).ms).slice(before);
      return Array.from({ length: count }, (_, i) => summary(all.slice(i * (WARMUP_PROOFS + PROOFS) + WARMUP_PROOFS, (i + 1) * (WARMUP_PROOFS + PROOFS))));
    };
    const [floorServer] = (await passes("GetCheckpoint", 1)) as [Summary];
    // One GetProofBundle went before, to check that bundles verify.
    const [bundleServer] = (await passes("GetProofBundle", 1, 1)) as [Summary];
    const [inclusionServer, warmServer, plainServer] = (await passes("GetInclusionProof", 3)) as [Summary, Summary, Summary];
    console.log(`\nproof latency at ${LEAVES} leaves (${PROOFS} sequential requests after ${WARMUP_PROOFS} warm-up, random attempts; machine busy ${(quietProofs * 100).toFixed(0)}% before):`);
    console.log("                    client-observed                          | inside the server");
    for (const [name, c, v] of [["GetCheckpoint", floor, floorServer], ["GetInclusionProof", inclusion, inclusionServer], ["GetProofBundle", bundle, bundleServer], ["  again, warm", warm, warmServer], ["  warm, no gzip", plain, plainServer]] as const) {
      console.log(`  ${name.padEnd(17)} p50 ${ms(c.p50)}  p99 ${ms(c.p99)}  max ${ms(c.max)}  | p50 ${ms(v.p50)}  p99 ${ms(v.p99)}`);
    }
    console.log("  (GetCheckpoint is the floor: one indexed row over the same client, server and database)");

    // --- 5. Attempt → signed checkpoint under a steady trickle, default interval.
    const fromSeq = Number((await db.query<{ s: string }>("SELECT coalesce(max(seq), 0) AS s FROM delivery_attempts")).rows[0]!.s);
    const trickleStart = performance.now();
    const total = TRICKLE_SECONDS * TRICKLE_RATE;
    for (let i = 0; i < total; i++) {
      const due = trickleStart + (i * 1000) / TRICKLE_RATE;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      await db.query(SYNTHETIC, [1, tenantId]);
    }
    for (const deadline = Date.now() + 30_000; (await treeSize(db)) < LEAVES + total; ) {
      if (Date.now() > deadline) throw new Error("the trickle was not sequenced");
      await sleep(100);
    }
    const delays = (await db.query<{ d: number }>(`
      SELECT extract(epoch FROM c.signed_at - a.recorded_at)::float8 * 1000 AS d
      FROM delivery_attempts a
      JOIN log_leaves l ON l.attempt_id = a.id
      CROSS JOIN LATERAL (SELECT signed_at FROM checkpoints WHERE tree_size > l.idx ORDER BY tree_size LIMIT 1) c
      WHERE a.seq > $1`, [fromSeq])).rows.map((r) => r.d);
    const delay = summary(delays);
    const trickleCheckpoints = Number((await db.query("SELECT count(*) AS c FROM checkpoints WHERE tree_size > $1", [LEAVES])).rows[0].c);
    console.log(`\nattempt → signed checkpoint, default 1 000 ms interval, ${delays.length} attempts at ${TRICKLE_RATE}/s over ${trickleCheckpoints} checkpoints:`);
    console.log(`  p50 ${ms(delay.p50)}  p99 ${ms(delay.p99)}  max ${ms(delay.max)}`);
    await server.stop();
    server = undefined;
    await printProfile("proofs and trickle");

    // --- 6. Storage.
    await db.query("VACUUM ANALYZE log_leaves, log_tiles, checkpoints");
    const sizes = (await db.query<{ leaves: string; tiles: string; checkpoints: string; receipt: string; n: string }>(`
      SELECT pg_total_relation_size('log_leaves') AS leaves, pg_total_relation_size('log_tiles') AS tiles,
             pg_total_relation_size('checkpoints') AS checkpoints,
             (SELECT avg(octet_length(receipt)) FROM log_leaves) AS receipt, (SELECT tree_size FROM log_state) AS n`)).rows[0]!;
    const n = Number(sizes.n);
    const perLeaf = (Number(sizes.leaves) + Number(sizes.tiles) + Number(sizes.checkpoints)) / n;
    console.log(`\nstorage at ${n} leaves: log_leaves ${(Number(sizes.leaves) / 2 ** 20).toFixed(1)} MiB, log_tiles ${(Number(sizes.tiles) / 2 ** 20).toFixed(1)} MiB, checkpoints ${(Number(sizes.checkpoints) / 2 ** 20).toFixed(2)} MiB; receipts average ${Number(sizes.receipt).toFixed(0)} bytes`);

    console.log("\n| measure | figure | target | |");
    console.log("|---|---|---|---|");
    console.log(`| sequencing throughput | ${Math.round(leavesPerSecond).toLocaleString("en")} leaves/s | ≥ ${TARGET_LEAVES_PER_SECOND.toLocaleString("en")}/s | ${verdict(leavesPerSecond >= TARGET_LEAVES_PER_SECOND)} |`);
    console.log(`| GetInclusionProof at ${LEAVES.toLocaleString("en")} leaves | p50 ${ms(inclusion.p50)}, p99 ${ms(inclusion.p99)} | p99 ≤ ${TARGET_PROOF_P99_MS} ms | ${verdict(inclusion.p99 <= TARGET_PROOF_P99_MS)} |`);
    console.log(`| GetProofBundle at ${LEAVES.toLocaleString("en")} leaves | p50 ${ms(bundle.p50)}, p99 ${ms(bundle.p99)} | (same) | ${verdict(bundle.p99 <= TARGET_PROOF_P99_MS)} |`);
    console.log(`| GetInclusionProof, tiles cached | p50 ${ms(warm.p50)}, p99 ${ms(warm.p99)} | (same) | ${verdict(warm.p99 <= TARGET_PROOF_P99_MS)} |`);
    console.log(`| floor: GetCheckpoint (one row) | p50 ${ms(floor.p50)}, p99 ${ms(floor.p99)} | — | |`);
    console.log(`| attempt → signed checkpoint | p50 ${ms(delay.p50)}, p99 ${ms(delay.p99)} | p99 ≤ ${TARGET_DELAY_P99_MS} ms | ${verdict(delay.p99 <= TARGET_DELAY_P99_MS)} |`);
    console.log(`| stored bytes per leaf | ${perLeaf.toFixed(0)} B (leaves ${(Number(sizes.leaves) / n).toFixed(0)}, tiles ${(Number(sizes.tiles) / n).toFixed(1)}, checkpoints ${(Number(sizes.checkpoints) / n).toFixed(1)}) | — | |`);
  } finally {
    await server?.stop().catch(() => {});
    await db?.end().catch(() => {});
    await embedded?.stop().catch(() => {});
    await rm(dataDir, { recursive: true, force: true }).catch(() => {});
    if (profileDir) await rm(profileDir, { recursive: true, force: true }).catch(() => {});
  }
}
