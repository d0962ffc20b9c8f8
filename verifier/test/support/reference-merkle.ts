// A deliberately naive RFC 6962 §2.1 Merkle tree, written from the RFC's recursive definitions
// (MTH, PATH, PROOF/SUBPROOF) with node:crypto, sharing no code with the library under test.
// Subtree hashes are memoised so that every proof of a 1000-leaf tree can be produced quickly;
// the memo does not change what is computed.
import { createHash } from "node:crypto";

export function sha256(...parts: Uint8Array[]): Buffer {
  const hash = createHash("sha256");
  for (const part of parts) hash.update(part);
  return hash.digest();
}

export function referenceLeafHash(data: Uint8Array): Buffer {
  return sha256(Uint8Array.of(0), data);
}

export function referenceNodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return sha256(Uint8Array.of(1), left, right);
}

/** The largest power of two smaller than n (n > 1). */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

export class ReferenceTree {
  readonly leaves: readonly Uint8Array[];
  private readonly memo = new Map<string, Buffer>();

  constructor(leaves: readonly Uint8Array[]) {
    this.leaves = leaves;
  }

  /** MTH(D[start:end]). */
  mth(start = 0, end = this.leaves.length): Buffer {
    const n = end - start;
    if (n === 0) return sha256();
    if (n === 1) return referenceLeafHash(this.leaves[start]!);
    const key = `${start}:${end}`;
    let hash = this.memo.get(key);
    if (hash === undefined) {
      const k = split(n);
      hash = referenceNodeHash(this.mth(start, start + k), this.mth(start + k, end));
      this.memo.set(key, hash);
    }
    return hash;
  }

  /** PATH(m, D[0:size]): the inclusion proof of leaf m in the tree of the first `size` leaves. */
  path(m: number, size = this.leaves.length): Buffer[] {
    return this.pathIn(m, 0, size);
  }

  private pathIn(m: number, start: number, end: number): Buffer[] {
    const n = end - start;
    if (n === 1) return [];
    const k = split(n);
    if (m < k) return [...this.pathIn(m, start, start + k), this.mth(start + k, end)];
    return [...this.pathIn(m - k, start + k, end), this.mth(start, start + k)];
  }

  /** PROOF(m, D[0:size]): the consistency proof from the first m leaves to the first `size`. */
  consistency(m: number, size = this.leaves.length): Buffer[] {
    return this.subproof(m, 0, size, true);
  }

  private subproof(m: number, start: number, end: number, b: boolean): Buffer[] {
    const n = end - start;
    if (m === n) return b ? [] : [this.mth(start, end)];
    const k = split(n);
    if (m <= k) return [...this.subproof(m, start, start + k, b), this.mth(start + k, end)];
    return [...this.subproof(m - k, start + k, end, false), this.mth(start, start + k)];
  }
}
