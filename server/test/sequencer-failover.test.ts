// Real `kapsel serve` processes on one database with deliveries flowing: one sequencer leader at a
// time, takeover when the leader is SIGKILLed, and restarts after SIGKILL that resume the log with
// no gap and no duplicate index. The stored log is then checked against the RFC 6962 reference.
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SEQUENCER_LOCK } from "../src/attestation/sequencer.ts";
import {
  createDestination, deliver, ingest, insertSyntheticAttempts, startLoopbackSink, treeSize, until, type LoopbackSink,
} from "../../test/support/attestation.ts";
import { connect, createTestDatabase } from "../../test/support/database.ts";
import { ReferenceTree } from "../../test/support/rfc6962-reference.ts";
import { spawnServer, type ServerProcess } from "../../test/support/server.ts";

const LEADER_LINE = "this process is the log sequencer";
const ORIGIN = "failover.test.example/log";

let sink: LoopbackSink;
const processes: ServerProcess[] = [];
beforeAll(async () => {
  sink = await startLoopbackSink();
});
afterAll(async () => {
  for (const p of processes) await p.stop("SIGKILL");
  await sink?.close();
});

async function serve(env: Record<string, string>): Promise<ServerProcess> {
  const p = await spawnServer({ KAPSEL_CHECKPOINT_INTERVAL_MS: "100", KAPSEL_LOG_ORIGIN: ORIGIN, KAPSEL_DELIVERY_LEASE_MS: "3000", ...env });
  processes.push(p);
  return p;
}

const leaderLines = (p: ServerProcess): number => p.output().split(LEADER_LINE).length - 1;

/** Sessions holding the sequencer's advisory lock right now. */
async function lockHolders(db: pg.Client): Promise<number> {
  const { rows } = await db.query<{ c: string }>(
    // pg_locks is cluster-wide: other test files' servers hold the same key in their own databases.
    `SELECT count(*) AS c FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
       AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND (classid::bigint << 32) + objid::bigint = $1::bigint`,
    [String(SEQUENCER_LOCK)],
  );
  return Number(rows[0]!.c);
}

/** Waits until every event is delivered and every recorded attempt is in the log; returns the size. */
async function drained(db: pg.Client, events = true): Promise<number> {
  return until("deliveries and sequencing to finish", async () => {
    const { rows } = await db.query<{ undelivered: string; attempts: string; queued: string }>(
      `SELECT (SELECT count(*) FROM events WHERE status <> 'delivered') AS undelivered,
              (SELECT count(*) FROM delivery_attempts) AS attempts, (SELECT count(*) FROM log_queue) AS queued`,
    );
    const r = rows[0]!;
    const size = await treeSize(db);
    return (!events || r.undelivered === "0") && r.queued === "0" && Number(r.attempts) === size ? size : undefined;
  }, 90_000);
}

/** Indexes 0..n-1 exactly once, every attempt exactly one leaf, every checkpoint root = MTH. */
async function expectWholeLog(db: pg.Client): Promise<number> {
  const leaves = (await db.query<{ idx: string; attempt_id: string; receipt: Buffer }>("SELECT idx, attempt_id, receipt FROM log_leaves ORDER BY idx")).rows;
  expect(leaves.map((l) => Number(l.idx))).toEqual(leaves.map((_, i) => i));
  expect(new Set(leaves.map((l) => l.attempt_id)).size).toBe(leaves.length);
  const orphans = await db.query("SELECT a.id FROM delivery_attempts a LEFT JOIN log_leaves l ON l.attempt_id = a.id WHERE l.idx IS NULL");
  expect(orphans.rows).toEqual([]);
  expect(Number((await db.query("SELECT count(*) AS c FROM delivery_attempts")).rows[0].c)).toBe(leaves.length);
  const ref = new ReferenceTree(leaves.map((l) => l.receipt));
  const checkpoints = (await db.query<{ tree_size: string; root_hash: Buffer }>("SELECT tree_size, root_hash FROM checkpoints ORDER BY signed_at, tree_size")).rows;
  let last = -1;
  for (const c of checkpoints) {
    const size = Number(c.tree_size);
    expect(size).toBeGreaterThan(last);
    expect(c.root_hash.equals(ref.root(size)), `checkpoint ${size}`).toBe(true);
    last = size;
  }
  expect(last).toBe(leaves.length);
  return leaves.length;
}

describe("two server processes on one database", () => {
  it("have one sequencer leader at a time; when it is SIGKILLed the other takes over without a gap", async () => {
    const url = await createTestDatabase();
    const db = await connect(url);
    try {
      const a = await serve({ DATABASE_URL: url });
      await until("a to lead", () => (leaderLines(a) === 1 ? true : undefined));
      const b = await serve({ DATABASE_URL: url });
      const dest = await createDestination(a.url, sink.url);

      let flowing = true;
      let sent = 0;
      const targets = [a, b];
      const load = (async () => {
        for (let i = 0; flowing; i++) {
          const live = targets.filter((p) => p.child.exitCode === null && p.child.signalCode === null);
          await ingest(live[i % live.length]!.url, dest.endpointId, JSON.stringify({ i })).then(() => sent++, () => {});
          await new Promise((r) => setTimeout(r, 15));
        }
      })();

      for (let i = 0; i < 30; i++) {
        expect(await lockHolders(db)).toBe(1);
        expect(leaderLines(a) + leaderLines(b)).toBe(1);
        await new Promise((r) => setTimeout(r, 50));
      }
      const sizeBeforeKill = await treeSize(db);
      expect(sizeBeforeKill).toBeGreaterThan(0);

      const [leader, survivor] = leaderLines(a) === 1 ? [a, b] : [b, a];
      await leader.stop("SIGKILL");
      await until("the survivor to take over", () => (leaderLines(survivor) === 1 ? true : undefined));
      const sizeAtTakeover = await treeSize(db);
      await until("sequencing to go on past the takeover", async () => ((await treeSize(db)) > sizeAtTakeover + 10 ? true : undefined));
      for (let i = 0; i < 10; i++) {
        expect(await lockHolders(db)).toBe(1);
        await new Promise((r) => setTimeout(r, 50));
      }
      flowing = false;
      await load;
      expect(sent).toBeGreaterThan(0);

      await drained(db);
      const n = await expectWholeLog(db);
      expect(n).toBeGreaterThanOrEqual(sent);
      await survivor.stop();
    } finally {
      await db.end();
    }
  }, 180_000);
});

describe("a sequencing server killed with SIGKILL", () => {
  it("resumes after a restart with no gap and no duplicate index, whether killed between or during batches", async () => {
    const url = await createTestDatabase();
    const db = await connect(url);
    try {
      const first = await serve({ DATABASE_URL: url });
      const dest = await createDestination(first.url, sink.url);
      await deliver(first.url, dest, 5, "before");
      const idle = await drained(db);
      // Between batches: everything is sequenced and nothing is queued.
      await first.stop("SIGKILL");

      // A backlog to be sequenced in several 10 000-leaf batches; kill the next server as soon as
      // the first of them commits, so that it dies inside a later one.
      await insertSyntheticAttempts(db, 35_000, dest.tenantId);
      const second = await serve({ DATABASE_URL: url });
      await until("the backlog to start moving", async () => ((await treeSize(db)) > idle ? true : undefined));
      await second.stop("SIGKILL");
      const atKill = await treeSize(db);
      // Killed with work left: the restarted server has to resume mid-backlog.
      expect(Number((await db.query("SELECT count(*) AS c FROM log_queue")).rows[0].c)).toBeGreaterThan(0);

      const third = await serve({ DATABASE_URL: url });
      await deliver(third.url, dest, 5, "after");
      const size = await drained(db);
      expect(size).toBe(idle + 35_000 + 5);
      expect(atKill).toBeLessThanOrEqual(size);
      expect(await expectWholeLog(db)).toBe(size);
      await third.stop();
    } finally {
      await db.end();
    }
  }, 180_000);
});
