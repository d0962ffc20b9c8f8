// The sequencer on a real database: synthetic attempt rows (queued by the migration's trigger) are
// sequenced by Sequencer instances built here, and everything stored — leaves, tiles, checkpoints,
// proofs served from tiles — is checked against the test's RFC 6962 reference over the receipts.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type pg from "pg";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AttestationMetrics } from "../src/attestation/attestation-metrics.ts";
import { CheckpointFeed } from "../src/attestation/checkpoints.ts";
import { ForkGuard } from "../src/attestation/fork-guard.ts";
import { Proofs } from "../src/attestation/proofs.ts";
import { Sequencer, type SequencerOptions } from "../src/attestation/sequencer.ts";
import { publishedKeys } from "../src/attestation/signing-keys.ts";
import { createDatabasePool, type DatabasePool } from "../src/db/pool.ts";
import { createLogger } from "../src/logger.ts";
import { checkCheckpoint, insertSyntheticAttempts, treeSize, until } from "../../test/support/attestation.ts";
import { connect, createTestDatabase } from "../../test/support/database.ts";
import { testSecretBox } from "../../test/support/secrets.ts";
import { ReferenceTree, refVerifyConsistency } from "../../test/support/rfc6962-reference.ts";

const ORIGIN = "sequencer.test.example/log";
const TENANT = "00000000-0000-4000-8000-000000000001";

interface Fixture {
  url: string;
  db: pg.Client;
  pool: DatabasePool;
  sequencer(options?: Partial<SequencerOptions>): Sequencer;
  close(): Promise<void>;
}

async function fixture(): Promise<Fixture> {
  const url = await createTestDatabase();
  const db = await connect(url);
  const pool = await createDatabasePool(url, { maximumPoolSize: 6 });
  const log = createLogger("warn");
  const sequencers: Sequencer[] = [];
  // Each sequencer stands for a server process on a host of its own: its own high-water file.
  const stateDir = mkdtempSync(join(tmpdir(), "kapsel-sequencer-test-"));
  return {
    url,
    db,
    pool,
    sequencer(options = {}) {
      const metrics = new AttestationMetrics(new Registry(), { pool, log }, 60_000);
      const guard = new ForkGuard(join(stateDir, `host-${sequencers.length}`), ORIGIN, log, { refusals: metrics.signingRefusals, refused: metrics.signingRefused });
      const s = new Sequencer(
        { pool, databaseUrl: url, log, metrics, feed: new CheckpointFeed(), guard },
        { origin: ORIGIN, intervalMs: 1000, envSeed: undefined, secrets: testSecretBox(), ...options },
      );
      sequencers.push(s);
      return s;
    },
    async close() {
      for (const s of sequencers) await s.stop().catch(() => {});
      await pool.end();
      await db.end();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

interface StoredLog {
  leaves: { idx: number; attemptId: string; receipt: Buffer }[];
  checkpoints: { size: number; root: Buffer; note: string }[];
  attemptsInOrder: string[];
}

async function readLog(db: pg.Client): Promise<StoredLog> {
  const leaves = (await db.query<{ idx: string; attempt_id: string; receipt: Buffer }>("SELECT idx, attempt_id, receipt FROM log_leaves ORDER BY idx")).rows;
  const checkpoints = (await db.query<{ tree_size: string; root_hash: Buffer; note: string }>("SELECT tree_size, root_hash, note FROM checkpoints ORDER BY tree_size")).rows;
  const attempts = (await db.query<{ id: string }>("SELECT id FROM delivery_attempts ORDER BY seq")).rows;
  return {
    leaves: leaves.map((r) => ({ idx: Number(r.idx), attemptId: r.attempt_id, receipt: r.receipt })),
    checkpoints: checkpoints.map((r) => ({ size: Number(r.tree_size), root: r.root_hash, note: r.note })),
    attemptsInOrder: attempts.map((r) => r.id),
  };
}

/** Every index 0..n-1 exactly once, each attempt exactly once. */
function expectContiguous(log: StoredLog): void {
  expect(log.leaves.map((l) => l.idx)).toEqual(log.leaves.map((_, i) => i));
  expect(new Set(log.leaves.map((l) => l.attemptId)).size).toBe(log.leaves.length);
}

describe("one sequencer", () => {
  let f: Fixture;
  let ref: ReferenceTree;
  beforeAll(async () => {
    f = await fixture();
  });
  afterAll(async () => f?.close());

  it("signs the empty tree first, then a checkpoint at every size 1..300 whose root is MTH of the receipts", async () => {
    const s = f.sequencer();
    expect(await s.sequenceOnce()).toBe(0);
    for (let n = 1; n <= 300; n++) {
      await insertSyntheticAttempts(f.db, 1);
      expect(await s.sequenceOnce()).toBe(1);
    }
    // Nothing queued: nothing new is signed.
    expect(await s.sequenceOnce()).toBe(0);

    const log = await readLog(f.db);
    expectContiguous(log);
    expect(log.leaves.map((l) => l.attemptId)).toEqual(log.attemptsInOrder);
    ref = new ReferenceTree(log.leaves.map((l) => l.receipt));
    expect(log.checkpoints.map((c) => c.size)).toEqual(Array.from({ length: 301 }, (_, i) => i));
    const keys = (await publishedKeys(f.pool)).map((k) => k.vkey);
    for (const c of log.checkpoints) {
      expect(c.root.toString("hex"), `root at ${c.size}`).toBe(ref.root(c.size).toString("hex"));
      const opened = checkCheckpoint(c.note, keys);
      expect(opened).toMatchObject({ origin: ORIGIN, size: BigInt(c.size) });
      expect(opened.root.equals(c.root)).toBe(true);
    }
  });

  it("batches across tile boundaries by a fresh instance resume from the stored tiles", async () => {
    // A new instance knows nothing in memory: it must load the right edge (a partial level-0 tile
    // of 44 hashes and a level-1 tile of 1) from the database.
    const s = f.sequencer({ batchMax: 100 });
    await insertSyntheticAttempts(f.db, 1000);
    const batches: number[] = [];
    for (let n; (n = await s.sequenceOnce()) > 0; ) batches.push(n);
    expect(batches).toEqual(Array(10).fill(100));
    const again = f.sequencer();
    await insertSyntheticAttempts(f.db, 7);
    expect(await again.sequenceOnce()).toBe(7);
    expect(await treeSize(f.db)).toBe(1307);

    const log = await readLog(f.db);
    expectContiguous(log);
    expect(log.leaves.map((l) => l.attemptId)).toEqual(log.attemptsInOrder);
    ref = new ReferenceTree(log.leaves.map((l) => l.receipt));
    expect(log.checkpoints.map((c) => c.size).slice(301)).toEqual([400, 500, 600, 700, 800, 900, 1000, 1100, 1200, 1300, 1307]);
    for (const c of log.checkpoints) expect(c.root.toString("hex"), `root at ${c.size}`).toBe(ref.root(c.size).toString("hex"));

    const tiles = (await f.db.query<{ level: number; n: string; hashes: Buffer }>("SELECT level, n, hashes FROM log_tiles ORDER BY level, n")).rows;
    expect(tiles.map((t) => `${t.level}/${t.n}:${t.hashes.length / 32}`)).toEqual(["0/0:256", "0/1:256", "0/2:256", "0/3:256", "0/4:256", "0/5:27", "1/0:5"]);
    for (const t of tiles) {
      const span = t.level === 0 ? 1 : 256;
      for (let i = 0; i < t.hashes.length / 32; i++) {
        const lo = (Number(t.n) * 256 + i) * span;
        expect(t.hashes.subarray(i * 32, i * 32 + 32).equals(ref.mth(lo, lo + span)), `tile ${t.level}/${t.n} hash ${i}`).toBe(true);
      }
    }
  });

  it("serves inclusion proofs equal to PATH for every leaf at older signed sizes, from the stored tiles", async () => {
    const proofs = new Proofs(f.pool, 1000);
    const log = await readLog(f.db);
    for (const size of [1, 2, 7, 255, 256, 257, 300, 1307]) {
      for (let m = 0; m < size; m++) {
        const p = await proofs.inclusion(TENANT, log.leaves[m]!.attemptId, size === 1307 ? 0 : size);
        expect(p.index).toBe(m);
        expect(p.checkpoint.treeSize).toBe(size);
        expect(p.receipt.equals(log.leaves[m]!.receipt)).toBe(true);
        expect(p.proof.map((h) => h.toString("hex")), `leaf ${m} of ${size}`).toEqual(ref.path(m, size).map((h) => h.toString("hex")));
      }
    }
  });

  it("serves consistency proofs equal to PROOF between signed sizes", async () => {
    const proofs = new Proofs(f.pool, 1000);
    const sizes = [1, 2, 3, 4, 5, 8, 100, 255, 256, 257, 299, 300, 400, 500, 512, 600, 1000, 1024, 1300, 1307];
    for (const n of sizes) {
      for (const m of sizes.filter((m) => m <= n)) {
        const proof = await proofs.consistency(m, n);
        expect(proof.map((h) => h.toString("hex")), `${m} → ${n}`).toEqual(ref.proof(m, n).map((h) => h.toString("hex")));
        expect(refVerifyConsistency(BigInt(m), BigInt(n), ref.root(m), ref.root(n), proof)).toBe(true);
      }
    }
  });
});

describe("two sequencers", () => {
  let f: Fixture;
  beforeAll(async () => {
    f = await fixture();
  });
  afterAll(async () => f?.close());

  it("that both run batches at the same moment still append each attempt once, at contiguous indexes", async () => {
    const a = f.sequencer({ batchMax: 37 });
    const b = f.sequencer({ batchMax: 53 });
    for (let round = 0; round < 40; round++) {
      await Promise.all([insertSyntheticAttempts(f.db, 1 + (round * 7) % 60), a.sequenceOnce(), b.sequenceOnce(), a.sequenceOnce()]);
    }
    while ((await a.sequenceOnce()) + (await b.sequenceOnce()) > 0);
    const log = await readLog(f.db);
    expectContiguous(log);
    expect(log.leaves.length).toBe(log.attemptsInOrder.length);
    expect(Number((await f.db.query("SELECT count(*) AS c FROM log_queue")).rows[0].c)).toBe(0);
    const ref = new ReferenceTree(log.leaves.map((l) => l.receipt));
    let previous: { size: number; root: Buffer } | undefined;
    for (const c of log.checkpoints) {
      expect(c.root.equals(ref.root(c.size)), `root at ${c.size}`).toBe(true);
      if (previous && previous.size > 0) {
        const proof = await new Proofs(f.pool, 1000).consistency(previous.size, c.size);
        expect(refVerifyConsistency(BigInt(previous.size), BigInt(c.size), previous.root, c.root, proof)).toBe(true);
      }
      previous = c;
    }
  });

  it("running side by side: one leader at a time, and the other takes over when it stops", async () => {
    const a = f.sequencer({ intervalMs: 20 });
    const b = f.sequencer({ intervalMs: 20 });
    a.start();
    b.start();
    const leader = await until("a leader", () => (a.leader || b.leader ? (a.leader ? a : b) : undefined));
    const other = leader === a ? b : a;
    for (let i = 0; i < 40; i++) {
      await insertSyntheticAttempts(f.db, 25);
      expect(a.leader && b.leader).toBe(false);
      expect(other.leader).toBe(false);
      await new Promise((r) => setTimeout(r, 10));
    }
    const count = async () => Number((await f.db.query("SELECT count(*) AS c FROM delivery_attempts")).rows[0].c);
    await until("the leader to catch up", async () => ((await treeSize(f.db)) === (await count()) ? true : undefined));
    await leader.stop();
    await until("the other sequencer to lead", () => (other.leader ? true : undefined));
    await insertSyntheticAttempts(f.db, 500);
    await until("the new leader to catch up", async () => ((await treeSize(f.db)) === (await count()) ? true : undefined));
    await other.stop();
    const log = await readLog(f.db);
    expectContiguous(log);
    expect(log.leaves.length).toBe(await count());
  });
});

describe("stopping", () => {
  let f: Fixture;
  beforeAll(async () => {
    f = await fixture();
  });
  afterAll(async () => f?.close());

  it("while the first batch runs does not wait for the next interval, and sequences what is queued", async () => {
    await insertSyntheticAttempts(f.db, 2500);
    const s = f.sequencer({ intervalMs: 3_600_000 });
    s.start();
    // The loop is now acquiring leadership and sequencing; with an hour's interval a stop that
    // waited for the next tick would outlast the test's timeout.
    await s.stop();
    expect(s.leader).toBe(false);
    expect(await treeSize(f.db)).toBe(2500);
    const log = await readLog(f.db);
    expectContiguous(log);
  });
});

describe("proofs while the log grows", () => {
  let f: Fixture;
  beforeAll(async () => {
    f = await fixture();
  });
  afterAll(async () => f?.close());

  it("one long-lived Proofs (with its tile and subtree caches) stays equal to the reference at every new size", async () => {
    const s = f.sequencer();
    const proofs = new Proofs(f.pool, 1000);
    await s.sequenceOnce();
    // Growth steps that move the right edge within a tile, fill tiles, and start level-1 and
    // level-2-sized subtrees, so cached partial tiles must be read again.
    for (const step of [1, 2, 5, 120, 128, 1, 255, 1, 300, 511, 1, 700, 3000]) {
      await insertSyntheticAttempts(f.db, step);
      await s.sequenceOnce();
      const log = await readLog(f.db);
      const ref = new ReferenceTree(log.leaves.map((l) => l.receipt));
      const n = log.leaves.length;
      for (const m of new Set([0, 1, Math.floor(n / 2), n - 257, n - 256, n - 255, n - 2, n - 1].filter((m) => m >= 0 && m < n))) {
        const p = await proofs.inclusion(TENANT, log.leaves[m]!.attemptId);
        expect(p.checkpoint.treeSize).toBe(n);
        expect(p.proof.map((h) => h.toString("hex")), `leaf ${m} of ${n}`).toEqual(ref.path(m, n).map((h) => h.toString("hex")));
      }
      for (const old of new Set([1, Math.max(1, n - step), Math.max(1, n - 1)])) {
        const proof = await proofs.consistency(old, n);
        expect(proof.map((h) => h.toString("hex")), `${old} → ${n}`).toEqual(ref.proof(old, n).map((h) => h.toString("hex")));
      }
      const level0 = await proofs.tile(0, Math.floor((n - 1) / 256), n % 256 || undefined);
      expect(level0?.equals(Buffer.concat(ref.leafHashes.slice(n - (n % 256 || 256), n)))).toBe(true);
    }
  });
});
