// `kapsel log verify`: an operator's audit of the stored log. It recomputes the whole tree from the
// stored receipts — leaf hashes, every tile, every checkpoint's root — checks each checkpoint's
// signatures with the independent verifier package (@kapsel/verify), and checks consistency
// between consecutive checkpoints with proofs built from the stored tiles, as a client would get
// them. It stops at the first discrepancy, which it names.
import { verifyCheckpoint, verifyConsistency } from "@kapsel/verify";
import { sql, type DatabasePool } from "slonik";
import { z } from "zod";
import { allCheckpoints } from "./checkpoints.ts";
import { consistencyProof, leafHash, rootAt } from "./merkle.ts";
import { publishedKeys } from "./signing-keys.ts";
import { TileReader, TileSubtrees, TreeEdge, tileHashes } from "./tiles.ts";

export interface AuditReport {
  ok: boolean;
  leaves: number;
  checkpoints: number;
  tiles: number;
  /** The first discrepancy, when not ok. */
  problem?: string;
}

const CHUNK = 10_000;

function columnsMatchReceipt(leaf: { attempt_id: string; tenant_id: string; receipt: Buffer }): boolean {
  try {
    const receipt = JSON.parse(leaf.receipt.toString("utf8")) as { attempt_id?: unknown; tenant_id?: unknown };
    return receipt.attempt_id === leaf.attempt_id && receipt.tenant_id === leaf.tenant_id;
  } catch {
    return false;
  }
}

export async function auditLog(pool: DatabasePool, progress: (message: string) => void = () => {}): Promise<AuditReport> {
  const fail = (problem: string, counts: Omit<AuditReport, "ok" | "problem">): AuditReport => ({ ok: false, problem, ...counts });
  const size = Number(await pool.oneFirst(sql.type(z.object({ s: z.string() }))`SELECT tree_size AS s FROM log_state`));

  // 1. Leaves: contiguous from 0, and rebuild every tile in memory from them.
  const rebuilt = new Map<string, Buffer[]>();
  const edge = new TreeEdge(0);
  let next = 0;
  for (;;) {
    const rows = await pool.any(sql.type(z.object({ idx: z.string(), attempt_id: z.string(), tenant_id: z.string(), receipt: z.instanceof(Buffer) }))`
      SELECT idx, attempt_id, tenant_id, receipt FROM log_leaves WHERE idx >= ${next} ORDER BY idx LIMIT ${CHUNK}`);
    if (rows.length === 0) break;
    for (const r of rows) {
      if (Number(r.idx) !== next) return fail(`leaf ${next} is missing (next stored leaf is ${r.idx})`, { leaves: next, checkpoints: 0, tiles: 0 });
      // Proof look-ups and tenant isolation go by these columns, which no hash covers: they must
      // say what the signed receipt says.
      if (!columnsMatchReceipt(r)) {
        return fail(`leaf ${next}: its attempt_id or tenant_id column does not match the receipt`, { leaves: next, checkpoints: 0, tiles: 0 });
      }
      next++;
    }
    for (const t of edge.append(rows.map((r) => leafHash(r.receipt)))) rebuilt.set(`${t.level}/${t.n}`, t.hashes);
    progress(`read ${next} leaves`);
  }
  if (next !== size) return fail(`log_state says ${size} leaves, ${next} are stored`, { leaves: next, checkpoints: 0, tiles: 0 });

  // 2. Stored tiles must equal the rebuilt ones (a stored tile may not be shorter).
  const stored = await pool.any(sql.type(z.object({ level: z.number(), n: z.string(), hashes: z.instanceof(Buffer) }))`
    SELECT level, n, hashes FROM log_tiles ORDER BY level, n`);
  for (const t of stored) {
    const want = rebuilt.get(`${t.level}/${t.n}`);
    const have = tileHashes(t.hashes);
    if (!want) return fail(`tile ${t.level}/${t.n} is stored but no leaf belongs to it`, { leaves: next, checkpoints: 0, tiles: stored.length });
    for (let i = 0; i < Math.max(want.length, have.length); i++) {
      if (!have[i] || !want[i] || !have[i]!.equals(want[i]!)) {
        const what = t.level === 0 ? `leaf ${Number(t.n) * 256 + i}` : `level-${t.level} hash ${i}`;
        return fail(`tile ${t.level}/${t.n}: ${what} does not match the hash recomputed from the stored receipts`, { leaves: next, checkpoints: 0, tiles: stored.length });
      }
    }
  }
  if (stored.length !== rebuilt.size) return fail(`${rebuilt.size - stored.length} tiles are missing`, { leaves: next, checkpoints: 0, tiles: stored.length });

  // 3. Checkpoints: recomputed root, signatures, and consistency with the previous one.
  const keys = (await publishedKeys(pool)).map((k) => k.vkey);
  const rebuiltBytes = new Map([...rebuilt].map(([key, hashes]) => [key, Buffer.concat(hashes)]));
  const recomputed = new TileSubtrees({ tile: async (level, n) => rebuiltBytes.get(`${level}/${n}`) ?? Buffer.alloc(0) });
  const fromStorage = new TileSubtrees(new TileReader(pool));
  const checkpoints = await allCheckpoints(pool);
  let previous: (typeof checkpoints)[number] | undefined;
  for (const [i, c] of checkpoints.entries()) {
    const counts = { leaves: next, checkpoints: i, tiles: stored.length };
    if (c.treeSize > size) return fail(`checkpoint ${c.treeSize} is beyond the tree size ${size}`, counts);
    const root = await rootAt(recomputed, c.treeSize);
    if (!root.equals(c.rootHash)) return fail(`checkpoint ${c.treeSize}: stored root does not match the recomputed root`, counts);
    const verified = verifyCheckpoint(c.note, keys);
    if (!verified.ok) return fail(`checkpoint ${c.treeSize}: ${verified.code}: ${verified.message}`, counts);
    if (verified.treeSize !== BigInt(c.treeSize) || !Buffer.from(verified.rootHash).equals(root)) {
      return fail(`checkpoint ${c.treeSize}: the signed note does not state the recomputed size and root`, counts);
    }
    if (previous && previous.treeSize > 0) {
      const proof = await consistencyProof(fromStorage, previous.treeSize, c.treeSize);
      const consistent = verifyConsistency(previous.note, c.note, proof, keys);
      if (!consistent.ok) return fail(`checkpoints ${previous.treeSize} → ${c.treeSize}: ${consistent.code}: ${consistent.message}`, counts);
    }
    previous = c;
  }
  return { ok: true, leaves: next, checkpoints: checkpoints.length, tiles: stored.length };
}
