// The fork guard on a real database, through the sequencer that consults it: the high-water file
// follows every commit, a crash at either side of COMMIT leaves it saying something true, and a
// database that is behind, holds another tree, or contradicts a cosigned checkpoint is refused —
// no checkpoint signed, attempts left queued — as is a refusal recorded earlier or an unusable file.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type pg from "pg";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AttestationMetrics } from "../src/attestation/attestation-metrics.ts";
import { CheckpointFeed } from "../src/attestation/checkpoints.ts";
import { ForkGuard } from "../src/attestation/fork-guard.ts";
import { HighWaterFile, type HighWaterState } from "../src/attestation/high-water-file.ts";
import { logKeyFromSeed, vkey } from "../src/attestation/log-key.ts";
import { Sequencer } from "../src/attestation/sequencer.ts";
import { createDatabasePool, type DatabasePool } from "../src/db/pool.ts";
import { createLogger } from "../src/logger.ts";
import { insertSyntheticAttempts, treeSize } from "../../test/support/attestation.ts";
import { connect, createTestDatabase } from "../../test/support/database.ts";
import { testSecretBox } from "../../test/support/secrets.ts";

const ORIGIN = "fork-guard.test.example/log";
const SEED = Buffer.alloc(32, 3);
const VKEY = vkey(ORIGIN, logKeyFromSeed(ORIGIN, SEED).publicKey);

interface Host {
  sequencer: Sequencer;
  guard: ForkGuard;
  file: HighWaterFile;
  registry: Registry;
}

let url = "";
let db: pg.Client;
let pool: DatabasePool;
let dir = "";
const sequencers: Sequencer[] = [];

beforeAll(async () => {
  url = await createTestDatabase();
  db = await connect(url);
  pool = await createDatabasePool(url, { maximumPoolSize: 4 });
  dir = mkdtempSync(join(tmpdir(), "kapsel-fork-guard-"));
});

afterAll(async () => {
  for (const s of sequencers) await s.stop().catch(() => {});
  await pool?.end();
  await db?.end();
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

/** A server process on a host whose data dir is `name`: a sequencer with its own guard. */
function host(name: string, seed = SEED): Host {
  const registry = new Registry();
  const metrics = new AttestationMetrics(registry, { pool, log: createLogger("silent") }, 60_000);
  const file = new HighWaterFile(join(dir, name), ORIGIN, VKEY);
  const guard = new ForkGuard(join(dir, name), ORIGIN, createLogger("silent"), { refusals: metrics.signingRefusals, refused: metrics.signingRefused });
  const sequencer = new Sequencer(
    { pool, databaseUrl: url, log: createLogger("silent"), metrics, feed: new CheckpointFeed(), guard },
    { origin: ORIGIN, intervalMs: 1000, envSeed: seed, secrets: testSecretBox() },
  );
  sequencers.push(sequencer);
  return { sequencer, guard, file, registry };
}

async function latest(): Promise<{ size: number; root: Buffer }> {
  const r = (await db.query<{ tree_size: string; root_hash: Buffer }>("SELECT tree_size, root_hash FROM checkpoints ORDER BY tree_size DESC LIMIT 1")).rows[0]!;
  return { size: Number(r.tree_size), root: r.root_hash };
}

async function queued(): Promise<number> {
  return Number((await db.query("SELECT count(*) AS c FROM log_queue")).rows[0].c);
}

function fileOf(h: Host): any {
  return JSON.parse(readFileSync(h.file.path, "utf8"));
}

const head = (size: number, root: Buffer) => ({ size: String(size), root: root.toString("base64") });
const otherRoot = Buffer.alloc(32, 0xab);

function writeState(h: Host, state: Partial<Record<keyof HighWaterState, unknown>>): void {
  mkdirSync(dirname(h.file.path), { recursive: true });
  writeFileSync(h.file.path, JSON.stringify({ version: 1, origin: ORIGIN, vkey: VKEY, confirmed: null, pending: null, refused: null, ...state }));
}

async function refusedBatch(h: Host, kind: string): Promise<void> {
  await insertSyntheticAttempts(db, 3);
  const before = await latest();
  const waiting = await queued();
  expect(await h.sequencer.sequenceOnce()).toBe(0);
  expect(h.guard.refusal?.kind).toBe(kind);
  expect(await latest()).toEqual(before);
  expect(await queued()).toBe(waiting);
  const text = await h.registry.metrics();
  expect(text).toContain(`kapsel_log_signing_refusals_total{reason="${kind}"} 1\n`);
  expect(text).toContain("kapsel_log_signing_refused 1\n");
}

describe("as checkpoints commit", () => {
  it("the high-water file holds the last one this host signed, nothing pending", async () => {
    const a = host("a");
    await insertSyntheticAttempts(db, 20);
    expect(await a.sequencer.sequenceOnce()).toBe(20);
    const { size, root } = await latest();
    expect(size).toBe(20);
    expect(fileOf(a)).toEqual({ version: 1, origin: ORIGIN, vkey: VKEY, confirmed: head(20, root), pending: null, refused: null });
  });

  it("another host extending the same database is no contradiction: each host's mark stays inside the tree", async () => {
    const a = host("a");
    const b = host("b");
    await insertSyntheticAttempts(db, 5);
    expect(await b.sequencer.sequenceOnce()).toBe(5);
    await insertSyntheticAttempts(db, 5);
    expect(await a.sequencer.sequenceOnce()).toBe(5);
    expect(a.guard.refusal).toBeUndefined();
    expect(fileOf(a).confirmed.size).toBe("30");
    expect(fileOf(b).confirmed.size).toBe("25");
  });
});

describe("after a crash", () => {
  it("before COMMIT: the pending checkpoint, never published, is dropped and signing goes on", async () => {
    const c = host("c");
    const now = await latest();
    writeState(c, { confirmed: head(now.size, now.root), pending: head(now.size + 7, otherRoot) });
    await insertSyntheticAttempts(db, 2);
    expect(await c.sequencer.sequenceOnce()).toBe(2);
    expect(c.guard.refusal).toBeUndefined();
    expect(fileOf(c)).toMatchObject({ confirmed: head(now.size + 2, (await latest()).root), pending: null });
  });

  it("between COMMIT and the confirmation: the database holds the pending checkpoint, so it is the mark", async () => {
    const d = host("d");
    const older = (await db.query<{ tree_size: string; root_hash: Buffer }>("SELECT tree_size, root_hash FROM checkpoints WHERE tree_size = 20")).rows[0]!;
    const now = await latest();
    writeState(d, { confirmed: head(20, older.root_hash), pending: head(now.size, now.root) });
    expect(await d.sequencer.sequenceOnce()).toBe(0);
    expect(d.guard.refusal).toBeUndefined();
    expect(fileOf(d)).toMatchObject({ confirmed: head(now.size, now.root), pending: null });
  });
});

describe("refuses to sign", () => {
  it("on a database behind this host's mark (restored from a backup)", async () => {
    const e = host("e");
    const now = await latest();
    writeState(e, { confirmed: head(now.size + 40, otherRoot) });
    await refusedBatch(e, "database_behind");
    expect(e.guard.refusal?.reason).toContain(`the database's tree has ${now.size} leaves, but this host signed a checkpoint of size ${now.size + 40}`);
    // Sticky: the next batch is refused without another look.
    expect(await e.sequencer.sequenceOnce()).toBe(0);
  });

  it("on a database whose tree has another root at the mark's size (a copy that diverged)", async () => {
    const f = host("f");
    const size = await treeSize(db);
    writeState(f, { confirmed: head(size, otherRoot) });
    await refusedBatch(f, "root_mismatch");
    expect(f.guard.refusal?.reason).toContain(`but this host signed root ${otherRoot.toString("base64")} at that size`);
  });

  it("when the high-water file is unusable", async () => {
    const g = host("g");
    mkdirSync(dirname(g.file.path), { recursive: true });
    writeFileSync(g.file.path, "{ not json");
    await refusedBatch(g, "state_file");
    expect(g.guard.refusal?.reason).toContain("is not JSON");
  });

  it("when a refusal was recorded (a witness's proof of a fork outlives restarts)", async () => {
    const h = host("h");
    writeState(h, { refused: { reason: "witness w proved a fork", since: "2026-01-02T03:04:05.000Z", evidence: "checkpoint text" } });
    expect(await h.sequencer.sequenceOnce()).toBe(0);
    expect(h.guard.refusal).toMatchObject({ kind: "witness_evidence", reason: "witness w proved a fork" });
  });

  it("when witnesses cosigned a checkpoint the database's tree does not contain", async () => {
    const i = host("i");
    const size = await treeSize(db);
    const keyId = (await db.query<{ key_id: Buffer }>("SELECT key_id FROM signing_keys LIMIT 1")).rows[0]!.key_id;
    await db.query("INSERT INTO checkpoints (tree_size, root_hash, note, signed_at, key_id) VALUES ($1, $2, 'forged', now(), $3)", [size + 1000, otherRoot, keyId]);
    await db.query("INSERT INTO checkpoint_cosignatures (tree_size, witness, line, cosigned_at) VALUES ($1, 'w+00000000+BA==', E'— w AAAA\\n', now())", [size + 1000]);
    try {
      await refusedBatch(i, "witnessed_checkpoint");
      expect(i.guard.refusal?.reason).toContain(`witnesses cosigned the checkpoint of size ${size + 1000}`);
    } finally {
      await db.query("DELETE FROM checkpoint_cosignatures");
      await db.query("DELETE FROM checkpoints WHERE tree_size = $1", [size + 1000]);
    }
  });
});

describe("another signing key", () => {
  it("is another log for verifiers: its checkpoints start their own mark, the other key's stays as it was", async () => {
    const k = host("k");
    const now = await latest();
    // This host signed far more under the first key than the database holds...
    writeState(k, { confirmed: head(now.size + 40, otherRoot) });
    const rotated = host("k", Buffer.alloc(32, 8));
    const newKey = vkey(ORIGIN, logKeyFromSeed(ORIGIN, Buffer.alloc(32, 8)).publicKey);
    await insertSyntheticAttempts(db, 2);
    // ...but a new key (KAPSEL_SIGNING_KEY changed) signs on the database's tree.
    expect(await rotated.sequencer.sequenceOnce()).toBeGreaterThan(0);
    expect(rotated.guard.refusal).toBeUndefined();
    const file = new HighWaterFile(join(dir, "k"), ORIGIN, newKey);
    expect((await file.load()).confirmed?.size).toBe((await latest()).size);
    expect(fileOf(k).confirmed).toEqual(head(now.size + 40, otherRoot));
  });
});
