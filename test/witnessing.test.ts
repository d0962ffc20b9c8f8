// The log and its witnesses, all real processes: a `kapsel serve` configured with two
// `kapsel-witness` processes (quorum 2 of 2), real deliveries to a loopback sink becoming leaves.
// Cosignatures appear and verify (with @kapsel/verify and with a check written from the C2SP spec
// on node:crypto), witnessed checkpoints and bundles verify offline with the quorum, the monitor
// follows the witnessed log; one witness down stops the witnessed checkpoint but not delivery, and
// its restart resumes it. Then the database is restored from a hot copy taken earlier: the host
// that signed the later checkpoints refuses to sign (its high-water mark), and a new host with no
// mark is stopped by the witnesses' proof that the log published more than the database holds.
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type pg from "pg";
import { verifyCheckpoint, verifyProofBundle } from "@kapsel/verify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NODE_24, runCliAsync } from "../verifier/test/support/cli.ts";
import { TestKey } from "../verifier/test/support/test-log.ts";
import { checkCosignature } from "../witness/test/support/cosignature-check.ts";
import { buildWitness, startWitness, type WitnessProcess } from "../witness/test/support/witness-process.ts";
import { freePort } from "../server/src/free-port.ts";
import { copyDatabase } from "./support/database-copy.ts";
import { connect, createTestDatabase } from "./support/database.ts";
import { createDestination, eventReaching, ingest, until, type Destination } from "./support/delivery.ts";
import { errorCode, rpc } from "./support/rpc.ts";
import { spawnServer, type ServerProcess } from "./support/server.ts";
import { startSink, type Sink } from "./support/sink.ts";

const ORIGIN = "witnessing.test.example/log";
// Public on purpose: this key only signs the test's log.
const SEED = Buffer.alloc(32, 9);
const LOG_VKEY = new TestKey(ORIGIN, SEED).vkey;

let dir = "";
let sink: Sink;
let witnesses: WitnessProcess[] = [];
let server: ServerProcess;
let databaseUrl = "";
let serverDataDir = "";
let dest: Destination;
let db: pg.Client;
/** Hot copies of the database taken early on: the backups restored at the end. */
let backups: string[] = [];

const METRICS_TOKEN = "witnessing-test-metrics-token";
const env = (overrides: Record<string, string> = {}): Record<string, string> => ({
  DATABASE_URL: databaseUrl,
  KAPSEL_DATA_DIR: serverDataDir,
  KAPSEL_LOG_ORIGIN: ORIGIN,
  KAPSEL_SIGNING_KEY: SEED.toString("base64"),
  KAPSEL_CHECKPOINT_INTERVAL_MS: "50",
  KAPSEL_WITNESSES: witnesses.map((w) => `${w.url} ${w.vkey}`).join(","),
  KAPSEL_WITNESS_QUORUM: "2",
  KAPSEL_WITNESS_INTERVAL_MS: "200",
  KAPSEL_WITNESS_TIMEOUT_MS: "2000",
  // /metrics on the main port, to this token; database gauges refreshed four times a second.
  KAPSEL_METRICS_TOKEN: METRICS_TOKEN,
  KAPSEL_METRICS_REFRESH_MS: "250",
  ...overrides,
});

// Fixed ports: a witness restarted must answer at the URL the log was configured with.
const ports: number[] = [];

function witnessOptions(i: number) {
  return {
    keyFile: join(dir, `witness-${i}.key`),
    stateDir: join(dir, `witness-${i}-state`),
    logs: [LOG_VKEY],
    name: `witness-${i}.test.example`,
    listen: `127.0.0.1:${ports[i]}`,
  };
}

beforeAll(async () => {
  await buildWitness();
  dir = mkdtempSync(join(tmpdir(), "kapsel-witnessing-e2e-"));
  ports.push(await freePort(), await freePort());
  witnesses = await Promise.all([0, 1].map((i) => startWitness(witnessOptions(i))));
  databaseUrl = await createTestDatabase();
  serverDataDir = join(dir, "host-a");
  server = await spawnServer(env());
  sink = await startSink();
  dest = await createDestination(server.url, sink.url);
  db = await connect(databaseUrl);
}, 180_000);

afterAll(async () => {
  await server?.stop();
  await Promise.all(witnesses.map((w) => w.stop()));
  await sink?.close();
  await db?.end();
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

/** Delivers `count` events; returns the attempt id of each. */
async function deliver(count: number, url = server.url, apiKey = dest.apiKey, endpointId = dest.endpointId): Promise<string[]> {
  const attempts: string[] = [];
  for (let i = 0; i < count; i++) {
    const id = await ingest(url, endpointId, JSON.stringify({ type: "order.paid", n: i }));
    const event = await eventReaching(url, apiKey, id, "EVENT_STATUS_DELIVERED");
    attempts.push(event.attempts[0].id);
  }
  return attempts;
}

async function witnessed(url = server.url): Promise<{ status: number; body: any }> {
  return rpc(url, "GetCheckpoint", { witnessed: true }, dest.apiKey);
}

/** Waits until the witnessed checkpoint has at least `size` leaves; returns its answer. */
function witnessedAtLeast(size: number, url = server.url): Promise<any> {
  return until(`a witnessed checkpoint of size ≥ ${size}`, async () => {
    const r = await witnessed(url);
    return r.status === 200 && Number(r.body.treeSize) >= size ? r.body : undefined;
  });
}

async function metrics(url = server.url): Promise<string> {
  return (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
}

function metric(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const witnessKeys = () => witnesses.map((w) => w.vkey);
const names = ["witness-0.test.example", "witness-1.test.example"];

describe("a log with two witnesses and a quorum of 2", () => {
  let first: string[];
  let checkpoint: any;

  it("gets each new checkpoint cosigned by both; the witnessed checkpoint verifies with @kapsel/verify and with the C2SP spec", async () => {
    first = await deliver(3);
    checkpoint = await witnessedAtLeast(3);
    expect(checkpoint.witnesses).toEqual(names);
    expect(checkpoint.origin).toBe(ORIGIN);

    const facts = verifyCheckpoint(checkpoint.checkpoint, [LOG_VKEY], { witnesses: witnessKeys(), quorum: 2 });
    if (!facts.ok) throw new Error(facts.message);
    expect(facts.treeSize).toBe(BigInt(checkpoint.treeSize));
    expect(facts.cosignatures.map((c) => c.witness)).toEqual(names);

    // Independently: each witness's line is a tlog-cosignature over the checkpoint's note text.
    const text = checkpoint.checkpoint.slice(0, checkpoint.checkpoint.indexOf("\n\n") + 1);
    for (const [i, witness] of witnesses.entries()) {
      const line = checkpoint.checkpoint.split("\n").find((l: string) => l.startsWith(`— ${names[i]} `));
      const checked = checkCosignature(`${line}\n`, witness.vkey, text);
      expect(checked.name).toBe(names[i]);
      expect(checked.timestamp).toBeGreaterThan(0n);
    }

    // The operator's backup, taken now while the server runs; restored at the end.
    backups = [await copyDatabase(databaseUrl)];
    backups.push(await copyDatabase(backups[0]!));

    // Without the witnesses' lines, the same checkpoint does not meet the quorum.
    const bare = checkpoint.checkpoint.split("\n").filter((l: string) => !names.some((n) => l.startsWith(`— ${n} `))).join("\n");
    const unwitnessed = verifyCheckpoint(bare, [LOG_VKEY], { witnesses: witnessKeys(), quorum: 2 });
    expect(unwitnessed.ok ? "ok" : unwitnessed.code).toBe("QUORUM_NOT_MET");
  });

  it("issues bundles against the witnessed checkpoint that verify offline with the quorum (library and kapsel-verify)", async () => {
    const r = await rpc(server.url, "GetProofBundle", { attemptId: first[0], witnessed: true }, dest.apiKey);
    expect(r.status).toBe(200);
    const result = verifyProofBundle(r.body.bundle, { trustedKeys: [LOG_VKEY], witnesses: witnessKeys(), quorum: 2 });
    if (!result.ok) throw new Error(result.message);
    expect(result.receipt.attempt_id).toBe(first[0]);
    expect(result.cosignatures).toHaveLength(2);

    const file = join(dir, "attempt.tlog-proof");
    writeFileSync(file, r.body.bundle);
    const cli = await runCliAsync(NODE_24, ["proof", file, "--key", LOG_VKEY, "--witness", witnesses[0]!.vkey, "--witness", witnesses[1]!.vkey, "--quorum", "2"]);
    expect(cli.stderr).toBe("");
    expect(cli.status).toBe(0);
  });

  it("needs a credential for witnessed checkpoints and bundles, and keeps a tenant's attempts its own", async () => {
    const anonymous = await rpc(server.url, "GetCheckpoint", { witnessed: true });
    expect([anonymous.status, errorCode(anonymous.body)]).toEqual([401, "E1004"]);
    const bundle = await rpc(server.url, "GetProofBundle", { attemptId: first[0], witnessed: true });
    expect([bundle.status, errorCode(bundle.body)]).toEqual([401, "E1004"]);
    // Another tenant asking for this tenant's attempt learns nothing, not even that it is witnessed.
    const other = await createDestination(server.url, sink.url);
    const foreign = await rpc(server.url, "GetProofBundle", { attemptId: first[0], witnessed: true }, other.apiKey);
    expect([foreign.status, errorCode(foreign.body)]).toEqual([404, "E3003"]);
    const malformed = await rpc(server.url, "GetProofBundle", { attemptId: "../../etc", witnessed: true }, dest.apiKey);
    expect([malformed.status, errorCode(malformed.body)]).toEqual([400, "E1006"]);
  });

  it("publishes the witnessed checkpoint at /log/checkpoint, which kapsel-verify monitor --witness … --quorum 2 follows", async () => {
    const state = join(dir, "monitor.json");
    const monitor = () => runCliAsync(NODE_24, [
      "monitor", "--once", "--url", server.url, "--key", LOG_VKEY, "--state", state,
      "--witness", witnesses[0]!.vkey, "--witness", witnesses[1]!.vkey, "--quorum", "2",
    ]);
    const served = await (await fetch(`${server.url}/log/checkpoint`)).text();
    for (const name of names) expect(served).toContain(`\n— ${name} `);
    const start = await monitor();
    expect(start.stderr).toBe("");
    expect(start.status).toBe(0);
    const from = Number(/from size (\d+)/.exec(start.stdout)![1]);

    await deliver(2);
    const grown = await witnessedAtLeast(from + 2);
    const next = await monitor();
    expect(next.stderr).toBe("");
    expect(next.status).toBe(0);
    expect(next.stdout).toMatch(new RegExp(`${ORIGIN} grew from size ${from} to \\d+`));
    expect(Number(JSON.parse(readFileSync(state, "utf8")).treeSize)).toBeGreaterThanOrEqual(Number(grown.treeSize));
  });

  it("reports witnesses in /metrics (lag, cosignatures) and /readyz", async () => {
    // Database gauges are read in the background: the next refresh shows the witnessed checkpoint.
    const text = await until("the witnessed size in /metrics", async () => {
      const t = await metrics();
      return (metric(t, "kapsel_log_witnessed_tree_size") ?? 0) >= 5 ? t : undefined;
    });
    for (const name of names) {
      expect(metric(text, `kapsel_witness_cosignatures_total{witness="${name}"}`)).toBeGreaterThan(0);
      expect(metric(text, `kapsel_witness_lag_seconds{witness="${name}"}`)).toBeGreaterThanOrEqual(0);
      expect(metric(text, `kapsel_witness_lag_leaves{witness="${name}"}`)).toBeGreaterThanOrEqual(0);
    }
    expect(metric(text, "kapsel_log_witnessed_tree_size")).toBeGreaterThanOrEqual(5);
    expect(metric(text, "kapsel_log_signing_refused")).toBe(0);
    const ready = await fetch(`${server.url}/readyz`);
    const report = await ready.json();
    expect(ready.status).toBe(200);
    expect(report.log).toEqual({ signing: "ok" });
    expect(report.witnesses.quorum).toBe(2);
    expect(report.witnesses.witnesses.map((w: any) => [w.name, w.state])).toEqual([[names[0], "ok"], [names[1], "ok"]]);
    // Names only: a witness's URL may be internal and /readyz is public.
    expect(JSON.stringify(report)).not.toContain(witnesses[0]!.url);
  });
});

describe("one witness down", () => {
  let before: number;
  let whileDown: string[];

  it("stops the witnessed checkpoint while deliveries are still delivered and the log still grows", async () => {
    await witnesses[1]!.stop();
    before = Number((await witnessedAtLeast(1)).treeSize);
    whileDown = await deliver(3);
    const latest = await until("the log to grow past the witnessed checkpoint", async () => {
      const r = await rpc(server.url, "GetCheckpoint", {}, dest.apiKey);
      return Number(r.body.treeSize) >= before + 3 ? Number(r.body.treeSize) : undefined;
    });
    // The live witness keeps cosigning the new checkpoints, alone: rounds go on, the quorum is not met.
    await until("witness-0 to cosign the grown log", async () =>
      (metric(await metrics(), `kapsel_witness_cosigned_tree_size{witness="${names[0]}"}`) ?? 0) >= latest ? true : undefined);
    const stuck = Number((await witnessed()).body.treeSize);
    expect(stuck).toBeLessThan(before + 3);
    const text = await metrics();
    expect(stuck).toBe(metric(text, `kapsel_witness_cosigned_tree_size{witness="${names[1]}"}`));
    expect(metric(text, `kapsel_witness_failures_total{witness="${names[1]}",reason="unreachable"}`)).toBeGreaterThan(0);
    expect(metric(text, `kapsel_witness_lag_leaves{witness="${names[1]}"}`)).toBeGreaterThanOrEqual(3);

    // Readiness stays true: ingest and delivery do not need witnesses. (Its report is reused for
    // up to a second, whoever asks: the next one shows the failing witness.)
    const report = await until("/readyz to show the failing witness", async () => {
      const ready = await fetch(`${server.url}/readyz`);
      expect(ready.status).toBe(200);
      const r = await ready.json();
      return r.witnesses.witnesses[1].state === "failing" ? r : undefined;
    });
    expect(report.witnesses.witnesses[1]).toMatchObject({ name: names[1], state: "failing", last_failure: { reason: "unreachable" } });
  });

  it("answers a witnessed bundle of an attempt outside the witnessed checkpoint with E3001 and a retry hint", async () => {
    const r = await rpc(server.url, "GetProofBundle", { attemptId: whileDown[0], witnessed: true }, dest.apiKey);
    expect([r.status, r.body.code, errorCode(r.body)]).toEqual([400, "failed_precondition", "E3001"]);
    expect(r.body.details.some((d: any) => d.type === "google.rpc.RetryInfo")).toBe(true);
  });

  it("resumes when the witness restarts from its state: the attempts made meanwhile become witnessed", async () => {
    witnesses[1] = await startWitness(witnessOptions(1));
    const after = await witnessedAtLeast(before + 3);
    expect(after.witnesses).toEqual(names);
    const r = await rpc(server.url, "GetProofBundle", { attemptId: whileDown[0], witnessed: true }, dest.apiKey);
    expect(r.status).toBe(200);
    const result = verifyProofBundle(r.body.bundle, { trustedKeys: [LOG_VKEY], witnesses: witnessKeys(), quorum: 2 });
    expect(result.ok).toBe(true);
  });
});

describe("a database restored from the earlier backup", () => {
  let signed: number;
  let restoredSize: number;
  const witnessCheckpoint = async (w: WitnessProcess) =>
    (await fetch(`${w.url}/${createHash("sha256").update(ORIGIN).digest("hex")}/checkpoint`)).text();

  it("makes the host that signed later checkpoints refuse to sign: readiness false, no new checkpoint, a clear log line", { timeout: 120_000 }, async () => {
    await server.stop();
    signed = Number((await db.query("SELECT max(tree_size) AS s FROM checkpoints")).rows[0].s);
    const restored = await connect(backups[0]!);
    try {
      restoredSize = Number((await restored.query("SELECT max(tree_size) AS s FROM checkpoints")).rows[0].s);
      expect(restoredSize).toBeLessThan(signed);
      server = await spawnServer(env({ DATABASE_URL: backups[0]! }), { waitReady: false });
      const report = await until("/readyz to report the refusal", async () => {
        const r = await fetch(`${server.url}/readyz`).catch(() => undefined);
        const body = r ? await r.json() : undefined;
        return r?.status === 503 && body.log?.signing === "refused" ? body : undefined;
      }, 60_000);
      expect(report).toMatchObject({ ready: false, database: true, migrations: true, log: { signing: "refused", reason: "database_behind" } });
      expect(server.output()).toContain(
        `REFUSING TO SIGN: the database's tree has ${restoredSize} leaves, but this host signed a checkpoint of size ${signed}`);

      // Deliveries go on; their attempts wait in the queue, and nothing is signed.
      const [attempt] = await deliver(1, server.url);
      await until("the attempt to be queued for the log", async () =>
        (await restored.query("SELECT 1 FROM log_queue q JOIN delivery_attempts a ON a.seq = q.attempt_seq WHERE a.id = $1", [attempt])).rowCount ? true : undefined);
      await new Promise((r) => setTimeout(r, 20 * 50)); // twenty sequencer intervals
      expect(Number((await restored.query("SELECT max(tree_size) AS s FROM checkpoints")).rows[0].s)).toBe(restoredSize);
      const bundle = await rpc(server.url, "GetProofBundle", { attemptId: attempt }, dest.apiKey);
      expect([bundle.status, bundle.body.code, errorCode(bundle.body)]).toEqual([400, "failed_precondition", "E3001"]);
      const text = await metrics();
      expect(metric(text, "kapsel_log_signing_refused")).toBe(1);
      expect(metric(text, 'kapsel_log_signing_refusals_total{reason="database_behind"}')).toBeGreaterThanOrEqual(1);
    } finally {
      await server.stop();
      await restored.end();
    }
  });

  it("stops a new host without a high-water mark too: the witnesses prove the log published more than the database holds", { timeout: 120_000 }, async () => {
    const before = await Promise.all(witnesses.map(witnessCheckpoint));
    expect(Number(before[0]!.split("\n")[1])).toBeGreaterThan(restoredSize);
    const host = { ...env({ DATABASE_URL: backups[1]!, KAPSEL_DATA_DIR: join(dir, "host-b") }) };
    server = await spawnServer(host, { waitReady: false });
    try {
      const report = await until("/readyz to report the refusal", async () => {
        const r = await fetch(`${server.url}/readyz`).catch(() => undefined);
        const body = r ? await r.json() : undefined;
        return r?.status === 503 && body.log?.signing === "refused" ? body : undefined;
      }, 60_000);
      expect(report.log.reason).toBe("witness_evidence");
      expect(server.output()).toMatch(/"msg":"FORK: witness witness-[01]\.test\.example holds the log's signed checkpoint of size \d+, cosigned, but the database's tree has only \d+ leaves/);
      expect(metric(await metrics(), 'kapsel_log_signing_refusals_total{reason="witness_evidence"}')).toBe(1);
      // The witnesses cosigned nothing of the new host's: they still hold the original history.
      expect(await Promise.all(witnesses.map(witnessCheckpoint))).toEqual(before);
    } finally {
      await server.stop();
    }

    // The proof is remembered: restarted with no witness reachable, the host refuses at once.
    await Promise.all(witnesses.map((w) => w.stop()));
    server = await spawnServer(host, { waitReady: false });
    const report = await until("/readyz to report the recorded refusal", async () => {
      const r = await fetch(`${server.url}/readyz`).catch(() => undefined);
      const body = r ? await r.json() : undefined;
      return r?.status === 503 && body.log?.signing === "refused" ? body : undefined;
    }, 60_000);
    expect(report.log.reason).toBe("witness_evidence");
    expect(server.output()).toContain("REFUSING TO SIGN (recorded ");
  });
});
