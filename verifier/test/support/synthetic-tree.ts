// A virtual RFC 6962 tree of any u64 size, for proofs in trees far too big to build (2^30,
// 2^64-1 leaves). Every complete, aligned power-of-two subtree that does not contain the leaf of
// interest gets a pseudo-random hash (SHA-256 of the seed and its range); everything else is
// computed by the RFC's recursion. The result is exactly the tree one would get if those
// subtrees held unknown leaves, so inclusion and consistency proofs read off it are genuine
// RFC 6962 proofs for that tree. Uses node:crypto only, none of the library's code.
import { referenceLeafHash, referenceNodeHash, sha256 } from "./reference-merkle.ts";

function split(n: bigint): bigint {
  let k = 1n;
  while (k * 2n < n) k *= 2n;
  return k;
}

function isPowerOfTwo(n: bigint): boolean {
  return n > 0n && (n & (n - 1n)) === 0n;
}

export class SyntheticTree {
  readonly size: bigint;
  /** The one leaf whose data is known. */
  readonly leafIndex: bigint;
  readonly leafData: Uint8Array;
  private readonly seed: Uint8Array;

  constructor(size: bigint, leafIndex: bigint, leafData: Uint8Array, seed: Uint8Array) {
    this.size = size;
    this.leafIndex = leafIndex;
    this.leafData = leafData;
    this.seed = seed;
  }

  /** MTH(D[start:end]). */
  mth(start: bigint, end: bigint): Buffer {
    const n = end - start;
    if (n === 0n) return sha256();
    const holdsLeaf = start <= this.leafIndex && this.leafIndex < end;
    if (n === 1n && holdsLeaf) return referenceLeafHash(this.leafData);
    if (isPowerOfTwo(n) && !holdsLeaf) return sha256(this.seed, Buffer.from(`${start}:${end}`));
    const k = split(n);
    return referenceNodeHash(this.mth(start, start + k), this.mth(start + k, end));
  }

  root(size = this.size): Buffer {
    return this.mth(0n, size);
  }

  /** PATH(leafIndex, D[0:size]). */
  inclusionProof(size = this.size): Buffer[] {
    const path: Buffer[] = [];
    let start = 0n;
    let end = size;
    let m = this.leafIndex;
    while (end - start > 1n) {
      const k = split(end - start);
      if (m < k) {
        path.unshift(this.mth(start + k, end));
        end = start + k;
      } else {
        path.unshift(this.mth(start, start + k));
        start += k;
        m -= k;
      }
    }
    return path;
  }

  /** PROOF(m, D[0:size]) = SUBPROOF(m, D[0:size], true). */
  consistencyProof(m: bigint, size = this.size): Buffer[] {
    const proof: Buffer[] = [];
    let start = 0n;
    let end = size;
    let b = true;
    while (m !== end - start) {
      const k = split(end - start);
      if (m <= k) {
        proof.unshift(this.mth(start + k, end));
        end = start + k;
      } else {
        proof.unshift(this.mth(start, start + k));
        start += k;
        m -= k;
        b = false;
      }
    }
    if (!b) proof.unshift(this.mth(start, end));
    return proof;
  }
}
