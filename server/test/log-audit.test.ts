// `kapsel log verify` (the CLI, as an operator runs it) on a healthy log and on logs with one
// stored value tampered with: a receipt, a level-0 or level-1 tile hash, a checkpoint's root, a
// checkpoint's signed note, a missing leaf. Each must fail with exit code 1, naming the problem.
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createDestination, deliver, insertSyntheticAttempts, kapselCli, startLoopbackSink, treeSize, until, type CliResult,
} from "../../test/support/attestation.ts";
import { connect } from "../../test/support/database.ts";
import { startTestServer } from "../../test/support/server.ts";

const ORIGIN = "audit.test.example/log";

let url: string;
let db: pg.Client;
let size: number;

beforeAll(async () => {
  const sink = await startLoopbackSink();
  const server = await startTestServer({ KAPSEL_CHECKPOINT_INTERVAL_MS: "50", KAPSEL_LOG_ORIGIN: ORIGIN });
  url = server.databaseUrl;
  db = await connect(url);
  try {
    const dest = await createDestination(server.url, sink.url);
    await deliver(server.url, dest, 10);
    await until("the deliveries in the log", async () => ((await treeSize(db)) === 10 ? true : undefined));
    // Enough leaves for two full level-0 tiles, a partial one, and a level-1 tile of two hashes,
    // signed over several checkpoints.
    for (let i = 0; i < 3; i++) {
      await insertSyntheticAttempts(db, 200, dest.tenantId);
      await until("the batch in the log", async () => ((await treeSize(db)) === 10 + 200 * (i + 1) ? true : undefined));
    }
    size = await treeSize(db);
  } finally {
    await server.stop();
    await sink.close();
  }
}, 120_000);
afterAll(async () => db?.end());

const verifyLog = (): Promise<CliResult> => kapselCli(["log", "verify"], { DATABASE_URL: url, KAPSEL_LOG_ORIGIN: ORIGIN });

/** Applies `change`, runs the audit, then `undo`, and checks the log verifies again. */
async function auditWith(change: () => Promise<unknown>, undo: () => Promise<unknown>): Promise<CliResult> {
  await change();
  let result: CliResult;
  try {
    result = await verifyLog();
  } finally {
    await undo();
  }
  expect((await verifyLog()).code).toBe(0);
  return result;
}

async function middleCheckpoint(): Promise<{ size: number; root: Buffer; note: string }> {
  const { rows } = await db.query<{ tree_size: string; root_hash: Buffer; note: string }>(
    "SELECT tree_size, root_hash, note FROM checkpoints WHERE tree_size BETWEEN 11 AND $1 ORDER BY tree_size LIMIT 1",
    [size - 1],
  );
  return { size: Number(rows[0]!.tree_size), root: rows[0]!.root_hash, note: rows[0]!.note };
}

describe("kapsel log verify", () => {
  it("passes on a healthy log and says what it checked", async () => {
    const r = await verifyLog();
    expect(r.code).toBe(0);
    const checkpoints = Number((await db.query("SELECT count(*) AS c FROM checkpoints")).rows[0].c);
    expect(r.stdout).toBe(`log verified: ${size} leaves, 4 tiles, ${checkpoints} checkpoints\n`);
    expect(size).toBe(610);
  });

  it("reports a tampered stored receipt, naming the leaf", async () => {
    const { rows } = await db.query<{ receipt: Buffer }>("SELECT receipt FROM log_leaves WHERE idx = 3");
    const original = rows[0]!.receipt;
    expect(original.toString()).toContain('"outcome":"delivered"');
    const forged = Buffer.from(original.toString().replace('"outcome":"delivered"', '"outcome":"http_error"'));
    const r = await auditWith(
      () => db.query("UPDATE log_leaves SET receipt = $1 WHERE idx = 3", [forged]),
      () => db.query("UPDATE log_leaves SET receipt = $1 WHERE idx = 3", [original]),
    );
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^log verification FAILED: .*\bleaf 3\b/);
  });

  it("reports a tampered level-0 tile hash, naming the tile and the leaf", async () => {
    const original = (await db.query<{ hashes: Buffer }>("SELECT hashes FROM log_tiles WHERE level = 0 AND n = 1")).rows[0]!.hashes;
    const r = await auditWith(
      () => db.query("UPDATE log_tiles SET hashes = overlay(hashes PLACING sha256('forged') FROM 32 * 5 + 1 FOR 32) WHERE level = 0 AND n = 1"),
      () => db.query("UPDATE log_tiles SET hashes = $1 WHERE level = 0 AND n = 1", [original]),
    );
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^log verification FAILED: tile 0\/1: leaf 261 /);
  });

  it("reports a tampered level-1 tile hash", async () => {
    const { rows } = await db.query<{ hashes: Buffer }>("SELECT hashes FROM log_tiles WHERE level = 1 AND n = 0");
    const original = rows[0]!.hashes;
    expect(original).toHaveLength(64);
    const r = await auditWith(
      () => db.query("UPDATE log_tiles SET hashes = overlay(hashes PLACING sha256('forged') FROM 33 FOR 32) WHERE level = 1 AND n = 0"),
      () => db.query("UPDATE log_tiles SET hashes = $1 WHERE level = 1 AND n = 0", [original]),
    );
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^log verification FAILED: tile 1\/0: level-1 hash 1 /);
  });

  it("reports a tampered checkpoint root, naming the checkpoint", async () => {
    const c = await middleCheckpoint();
    const r = await auditWith(
      () => db.query("UPDATE checkpoints SET root_hash = sha256('forged') WHERE tree_size = $1", [c.size]),
      () => db.query("UPDATE checkpoints SET root_hash = $1 WHERE tree_size = $2", [c.root, c.size]),
    );
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`^log verification FAILED: checkpoint ${c.size}: stored root does not match`));
  });

  it("reports a checkpoint note whose signed text was changed", async () => {
    const c = await middleCheckpoint();
    // Same size, the root of another tree: the signature no longer covers the text.
    const other = (await db.query<{ note: string }>("SELECT note FROM checkpoints WHERE tree_size = $1", [size])).rows[0]!.note;
    const forged = c.note.replace(c.root.toString("base64"), other.split("\n")[2]!);
    expect(forged).not.toBe(c.note);
    const r = await auditWith(
      () => db.query("UPDATE checkpoints SET note = $1 WHERE tree_size = $2", [forged, c.size]),
      () => db.query("UPDATE checkpoints SET note = $1 WHERE tree_size = $2", [c.note, c.size]),
    );
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`^log verification FAILED: checkpoint ${c.size}: `));
  });

  it("reports a missing leaf", async () => {
    const { rows } = await db.query("SELECT idx, attempt_id, tenant_id, receipt FROM log_leaves WHERE idx = 7");
    const row = rows[0]!;
    const r = await auditWith(
      () => db.query("DELETE FROM log_leaves WHERE idx = 7"),
      () => db.query("INSERT INTO log_leaves (idx, attempt_id, tenant_id, receipt) VALUES ($1, $2, $3, $4)", [row.idx, row.attempt_id, row.tenant_id, row.receipt]),
    );
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("log verification FAILED: leaf 7 is missing (next stored leaf is 8)\n");
  });
});

describe("kapsel log verify, on the columns proofs are looked up by", () => {
  it("reports a leaf whose tenant_id column no longer matches its receipt (it would serve the proof to another tenant)", async () => {
    const { rows } = await db.query<{ tenant_id: string }>("SELECT tenant_id FROM log_leaves WHERE idx = 4");
    const r = await auditWith(
      () => db.query("UPDATE log_leaves SET tenant_id = '00000000-0000-4000-8000-00000000dead' WHERE idx = 4"),
      () => db.query("UPDATE log_leaves SET tenant_id = $1 WHERE idx = 4", [rows[0]!.tenant_id]),
    );
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("log verification FAILED: leaf 4: its attempt_id or tenant_id column does not match the receipt\n");
  });

  it("reports two leaves whose attempt ids were swapped", async () => {
    const { rows } = await db.query<{ idx: string; attempt_id: string }>("SELECT idx, attempt_id FROM log_leaves WHERE idx IN (5, 6) ORDER BY idx");
    const [five, six] = [rows[0]!, rows[1]!];
    const swap = async (a: string, b: string) => {
      await db.query("UPDATE log_leaves SET attempt_id = gen_random_uuid() WHERE idx = 5");
      await db.query("UPDATE log_leaves SET attempt_id = $1 WHERE idx = 6", [a]);
      await db.query("UPDATE log_leaves SET attempt_id = $1 WHERE idx = 5", [b]);
    };
    const r = await auditWith(() => swap(five.attempt_id, six.attempt_id), () => swap(six.attempt_id, five.attempt_id));
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("log verification FAILED: leaf 5: its attempt_id or tenant_id column does not match the receipt\n");
  });
});
