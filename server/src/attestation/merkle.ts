// RFC 6962 / RFC 9162 §2.1 Merkle tree hashing and proof construction over stored subtree hashes.
// The algorithms read like the RFC's recursive definitions, but every subtree they need is
// fetched as a whole from a SubtreeSource (tiles), so a proof costs O(log n) reads and never
// recomputes the tree from leaves.
import { createHash } from "node:crypto";

export const HASH_SIZE = 32;
export const EMPTY_ROOT = createHash("sha256").digest();

// The domain-separation prefixes, allocated once: these run for every leaf and tree node.
const LEAF_PREFIX = Buffer.of(0x00);
const NODE_PREFIX = Buffer.of(0x01);

export function leafHash(data: Uint8Array): Buffer {
  return createHash("sha256").update(LEAF_PREFIX).update(data).digest();
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return createHash("sha256").update(NODE_PREFIX).update(left).update(right).digest();
}

/** Hashes of complete subtrees: `subtree(h, k)` covers leaves [k·2^h, (k+1)·2^h). */
export interface SubtreeSource {
  subtree(height: number, index: number): Promise<Buffer>;
}

/** The largest power of two strictly smaller than n. Requires n ≥ 2. */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** Root of a complete subtree from its 2^h leaf-level (or tile-level) hashes. Requires a power-of-two count. */
export function perfectRoot(hashes: readonly Buffer[]): Buffer {
  let level = hashes;
  while (level.length > 1) {
    const next: Buffer[] = [];
    for (let i = 0; i < level.length; i += 2) next.push(nodeHash(level[i]!, level[i + 1]!));
    level = next;
  }
  return level[0]!;
}

/**
 * MTH(D[lo:hi]) for the ranges RFC 6962's recursion produces (lo aligned to a power of two at
 * least hi − lo): the range splits into complete subtrees of decreasing size, folded from the
 * right. Requires lo < hi.
 */
export async function rangeHash(source: SubtreeSource, lo: number, hi: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let pos = lo;
  while (pos < hi) {
    let h = 0;
    while ((pos % 2 ** (h + 1)) === 0 && pos + 2 ** (h + 1) <= hi) h++;
    parts.push(await source.subtree(h, pos / 2 ** h));
    pos += 2 ** h;
  }
  let acc = parts.pop()!;
  while (parts.length > 0) acc = nodeHash(parts.pop()!, acc);
  return acc;
}

/** MTH of the first n leaves (the empty tree's root for n = 0). */
export async function rootAt(source: SubtreeSource, n: number): Promise<Buffer> {
  return n === 0 ? EMPTY_ROOT : rangeHash(source, 0, n);
}

/** RFC 9162 §2.1.3.1 PATH(m, D[n]): the audit path for leaf m in the tree of size n. Requires m < n. */
export async function inclusionProof(source: SubtreeSource, m: number, n: number): Promise<Buffer[]> {
  const path = async (lo: number, hi: number): Promise<Buffer[]> => {
    if (hi - lo === 1) return [];
    const k = splitPoint(hi - lo);
    return m < lo + k
      ? [...(await path(lo, lo + k)), await rangeHash(source, lo + k, hi)]
      : [...(await path(lo + k, hi)), await rangeHash(source, lo, lo + k)];
  };
  return path(0, n);
}

/** RFC 9162 §2.1.4.1 PROOF(m, D[n]): consistency of the tree of size m with that of size n.
 * Requires 0 < m ≤ n. */
export async function consistencyProof(source: SubtreeSource, m: number, n: number): Promise<Buffer[]> {
  const subproof = async (m: number, lo: number, hi: number, complete: boolean): Promise<Buffer[]> => {
    if (m === hi - lo) return complete ? [] : [await rangeHash(source, lo, hi)];
    const k = splitPoint(hi - lo);
    return m <= k
      ? [...(await subproof(m, lo, lo + k, complete)), await rangeHash(source, lo + k, hi)]
      : [...(await subproof(m - k, lo + k, hi, false)), await rangeHash(source, lo, lo + k)];
  };
  return subproof(m, 0, n, true);
}
