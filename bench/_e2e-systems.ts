// The systems bench/e2e.ts measures, each started on its own fresh embedded Postgres (durable
// defaults: fsync on, synchronous_commit on) in a temp folder, as separate processes:
//
//   kapsel     one `kapsel serve`, every stage on, default settings; one endpoint → the sink
//   fanout     the same, with a source (`POST /ingest/sources/{id}`) fanned out to 5 endpoints
//   graphile   bench/peers/graphile-relay.ts (graphile-worker)
//   pgboss     bench/peers/pgboss-relay.ts (pg-boss)
//   split-1+1  two `kapsel serve` on one database: one ingest-only (KAPSEL_DELIVERY_ENABLED=false)
//              taking the load, one delivering
//   split-2+2  two ingest-only processes (the load generator alternates) and two delivering
//
// A launcher answers the ingest URLs to load, the pids to account CPU to, and for Kapsel a check
// that every delivery attempt made it into the signed log.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { startEmbeddedPostgres, type EmbeddedDatabase } from "../server/src/db/embedded.ts";
import { freePort } from "../server/src/free-port.ts";
import { createLogger } from "../server/src/logger.ts";
import { createTenant, rpc } from "../test/support/rpc.ts";
import { waitUntilReady } from "../test/support/server.ts";
import { ROOT, sleep, startKapsel, summariseProfile, type KapselProcess } from "./_delivery-support.ts";

export const SYSTEM_KINDS = ["kapsel", "fanout", "graphile", "pgboss", "split-1+1", "split-2+2"] as const;
export type SystemKind = (typeof SYSTEM_KINDS)[number];

/** How many endpoints the fan-out system delivers each message to. */
export const FANOUT = 5;

export const SYSTEM_LABELS: Record<SystemKind, string> = {
  kapsel: "Kapsel",
  fanout: `Kapsel fan-out ×${FANOUT}`,
  graphile: "graphile-worker relay",
  pgboss: "pg-boss relay",
  "split-1+1": "Kapsel 1 ingest + 1 delivery",
  "split-2+2": "Kapsel 2 ingest + 2 delivery",
};

export interface RunningSystem {
  kind: SystemKind;
  /** Deliveries per ingested event (5 for fan-out, else 1). */
  fanout: number;
  /** Ingest URLs; the load generator goes round-robin over them. */
  targets: string[];
  /** Processes of the system under test (not Postgres), named by role. */
  processes: { name: string; pid: number }[];
  postmaster: number;
  /** What else to report about the run (the attestation check for Kapsel). */
  finalCheck(sinkRequests: number): Promise<string>;
  /** With --profile: the Postgres statements that took the time (before stop). */
  statementReport(): Promise<string>;
  /** With --profile: where the server processes' CPU went (after stop, when profiles are written). */
  cpuProfileReport(): Promise<string>;
  stop(): Promise<void>;
}

export interface LaunchOptions {
  /** pg_stat_statements in Postgres and `--cpu-prof` for Kapsel's processes. */
  profile?: boolean;
}

export class NotAvailable extends Error {}

const ADMIN_TOKEN = `bench-admin-${randomBytes(16).toString("hex")}`;
/** KAPSEL_MASTER_KEY is required with DATABASE_URL: a fresh one per run. */
const MASTER_KEY = randomBytes(32).toString("base64");

/** KAPSEL_* variables of the bench's environment go to the servers (for experiments). */
function passThroughEnv(): Record<string, string> {
  return Object.fromEntries(Object.entries(process.env).filter(([k, v]) => k.startsWith("KAPSEL_") && !k.startsWith("KAPSEL_BENCH_") && v !== undefined)) as Record<string, string>;
}

async function freshPostgres(profile = false): Promise<{ db: EmbeddedDatabase; dir: string; postmaster: number; drop(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "kapsel-bench-e2e-"));
  await chmod(dir, 0o755);
  const settings = profile ? { shared_preload_libraries: "pg_stat_statements", "pg_stat_statements.track": "all", track_io_timing: "on" } : undefined;
  const db = await startEmbeddedPostgres({ dataDir: dir, log: createLogger("warn"), settings });
  if (profile) {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    await client.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
    await client.end();
  }
  const postmaster = Number((await readFile(path.join(dir, "pg", "postmaster.pid"), "utf8")).split("\n")[0]);
  return {
    db, dir, postmaster,
    async drop() {
      await db.stop().catch(() => {});
      await rm(dir, { recursive: true, force: true }).catch(() => {});
    },
  };
}

export async function launchSystem(kind: SystemKind, sinkBase: string, options: LaunchOptions = {}): Promise<RunningSystem> {
  const pg = await freshPostgres(options.profile);
  try {
    if (kind === "graphile" || kind === "pgboss") return await launchRelay(kind, pg, sinkBase);
    return await launchKapsel(kind, pg, sinkBase, options);
  } catch (err) {
    await pg.drop();
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Kapsel.

async function launchKapsel(kind: SystemKind, pg: Awaited<ReturnType<typeof freshPostgres>>, sinkBase: string, options: LaunchOptions): Promise<RunningSystem> {
  const profileDir = options.profile ? await mkdtemp(path.join(os.tmpdir(), "kapsel-bench-prof-")) : undefined;
  const nodeArgs = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [];
  const env = {
    ...passThroughEnv(),
    DATABASE_URL: pg.db.url,
    KAPSEL_MASTER_KEY: MASTER_KEY,
    KAPSEL_ADMIN_TOKEN: ADMIN_TOKEN,
    KAPSEL_ALLOW_PRIVATE_DESTINATIONS: "true", // the sink is on loopback
    KAPSEL_DATA_DIR: path.join(pg.dir, "data"),
    KAPSEL_LOG_LEVEL: process.env.KAPSEL_LOG_LEVEL ?? "info", // the default
  };
  const layout = kind === "split-1+1" ? { ingest: 1, delivery: 1 } : kind === "split-2+2" ? { ingest: 2, delivery: 2 } : undefined;
  const servers: KapselProcess[] = [];
  const names: string[] = [];
  const stopServers = () => Promise.all(servers.map(async (s) => {
    const timer = setTimeout(() => s.child.kill("SIGKILL"), 15_000);
    await s.stop();
    clearTimeout(timer);
  }));
  try {
    let ingest: KapselProcess[];
    if (layout) {
      // One after the other: the first applies the migrations.
      ingest = [];
      for (let i = 0; i < layout.ingest; i++) {
        const s = await startKapsel({ ...env, KAPSEL_DELIVERY_ENABLED: "false" }, nodeArgs);
        servers.push(s);
        names.push(`ingest ${i + 1}`);
        ingest.push(s);
      }
      for (let i = 0; i < layout.delivery; i++) {
        servers.push(await startKapsel({ ...env, KAPSEL_DELIVERY_ENABLED: "true" }, nodeArgs));
        names.push(`delivery ${i + 1}`);
      }
    } else {
      servers.push(await startKapsel(env, nodeArgs));
      names.push("kapsel");
      ingest = servers;
    }
    const url = servers[0]!.url;
    const tenant = await createTenant(url, ADMIN_TOKEN, "bench");
    const endpoint = async (i: number): Promise<string> => {
      const r = await rpc(url, "CreateEndpoint", { url: `${sinkBase}/hook/${i}`, allowHttp: true }, tenant.apiKey);
      if (r.status !== 200) throw new Error(`CreateEndpoint: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body.endpoint.id as string;
    };

    let paths: string[];
    if (kind === "fanout") {
      for (let i = 0; i < FANOUT; i++) await endpoint(i);
      paths = [await fanOutSource(url, tenant.apiKey)];
    } else {
      paths = [`/ingest/${await endpoint(0)}`];
    }
    return {
      kind,
      fanout: kind === "fanout" ? FANOUT : 1,
      targets: ingest.map((s) => `${s.url}${paths[0]}`),
      processes: servers.map((s, i) => ({ name: names[i]!, pid: s.child.pid! })),
      postmaster: pg.postmaster,
      finalCheck: (sinkRequests) => attestationCheck(url, tenant.apiKey, sinkRequests),
      statementReport: () => statementReport(pg.db.url),
      cpuProfileReport: async () => {
        if (!profileDir) return "";
        const files = (await readdir(profileDir)).filter((f) => f.endsWith(".cpuprofile"));
        const parts = await Promise.all(files.map(async (f) => `server CPU profile (${f}):\n${await summariseProfile(path.join(profileDir, f), 25)}`));
        await rm(profileDir, { recursive: true, force: true });
        return parts.join("\n");
      },
      async stop() {
        await stopServers();
        await pg.drop();
      },
    };
  } catch (err) {
    await stopServers();
    throw err;
  }
}

/**
 * A source with no signature check and no event type, which fans out to every endpoint that
 * subscribes to all types. Written against the contract (ManagementService.CreateSource, gateway
 * `POST /ingest/sources/{id}` answering `{"message_id", "event_ids"}`); a server that does not
 * implement it yet is reported as NotAvailable, not as a failure.
 */
async function fanOutSource(url: string, apiKey: string): Promise<string> {
  const r = await rpc(url, "CreateSource", { name: "bench" }, apiKey);
  if (r.status !== 200 || typeof r.body?.source?.id !== "string") {
    throw new NotAvailable(`CreateSource answered ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
  }
  const path = `/ingest/sources/${r.body.source.id as string}`;
  const probe = await fetch(`${url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"probe":true}' });
  const answer = (await probe.json().catch(() => undefined)) as { event_ids?: unknown[] } | undefined;
  if (probe.status !== 202 || answer?.event_ids?.length !== FANOUT) {
    throw new NotAvailable(`POST ${path} answered ${probe.status} ${JSON.stringify(answer).slice(0, 200)} (expected 202 with ${FANOUT} event_ids)`);
  }
  return path;
}

/** Every delivery attempt is a leaf of the signed log: waits (bounded) for the checkpoint to cover
 * at least as many leaves as the sink saw requests. */
async function attestationCheck(url: string, apiKey: string, sinkRequests: number): Promise<string> {
  const deadline = Date.now() + 20_000;
  let size = 0;
  for (;;) {
    const r = await rpc(url, "GetCheckpoint", {}, apiKey);
    size = r.status === 200 ? Number(r.body.treeSize ?? 0) : 0;
    if (size >= sinkRequests || Date.now() > deadline) break;
    await sleep(500);
  }
  const ok = size >= sinkRequests;
  return `attested: signed log size ${size.toLocaleString("en-US")} ${ok ? "≥" : "<"} ${sinkRequests.toLocaleString("en-US")} delivery attempts seen by the sink${ok ? "" : " — NOT every attempt attested within 20 s"}`;
}

// ---------------------------------------------------------------------------------------------
// The peer relays.

async function launchRelay(kind: "graphile" | "pgboss", pg: Awaited<ReturnType<typeof freshPostgres>>, sinkBase: string): Promise<RunningSystem> {
  const port = await freePort();
  const file = kind === "graphile" ? "bench/peers/graphile-relay.ts" : "bench/peers/pgboss-relay.ts";
  const child = spawn(process.execPath, [path.join(ROOT, file)], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, DATABASE_URL: pg.db.url, DESTINATION_URL: `${sinkBase}/hook/0`, PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
  child.stderr!.on("data", (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    }
    await pg.drop();
  };
  try {
    await waitUntilReady(url, child, () => output, 60_000);
  } catch (err) {
    child.kill("SIGKILL");
    await exited;
    throw err;
  }
  return {
    kind,
    fanout: 1,
    targets: [`${url}/ingest`],
    processes: [{ name: "relay", pid: child.pid! }],
    postmaster: pg.postmaster,
    finalCheck: async () => (child.exitCode === null ? "" : `relay exited early:\n${output}`),
    statementReport: () => statementReport(pg.db.url),
    cpuProfileReport: async () => "",
    stop,
  };
}

/** The statements that took Postgres's time, from pg_stat_statements (a run with --profile). */
async function statementReport(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ ms: number; calls: string; rows: string; mean: number; wal: string; query: string }>(`
      SELECT total_exec_time AS ms, calls::text, rows::text, mean_exec_time AS mean, wal_bytes::text AS wal,
        regexp_replace(query, '\\s+', ' ', 'g') AS query
      FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 20`);
    const total = rows.reduce((a, r) => a + r.ms, 0);
    const lines = ["Postgres statements by execution time (pg_stat_statements; top 20):", "| ms | share | calls | rows | mean ms | WAL MiB | statement |", "|---:|---:|---:|---:|---:|---:|---|"];
    for (const r of rows) {
      lines.push(`| ${r.ms.toFixed(0)} | ${((100 * r.ms) / total).toFixed(1)} % | ${r.calls} | ${r.rows} | ${r.mean.toFixed(2)} | ${(Number(r.wal) / 2 ** 20).toFixed(1)} | ${r.query.slice(0, 160)} |`);
    }
    return lines.join("\n");
  } catch (err) {
    return `pg_stat_statements unavailable: ${(err as Error).message}`;
  } finally {
    await client.end();
  }
}
