// An RFC 6962 §2.1 reference written for the tests, independent of server/src/attestation: the
// recursive MTH, PATH and SUBPROOF definitions over an array of leaves, read straight from the
// RFC, and the RFC 9162 §2.1.3.2 / §2.1.4.2 verification algorithms. Slow on purpose (no tiles);
// MTH is memoised per range only so that trees of 65 537 leaves stay affordable.
import { createHash } from "node:crypto";

const sha256 = (...parts: Uint8Array[]): Buffer => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
};

export const refEmptyRoot = (): Buffer => sha256();
export const refLeafHash = (data: Uint8Array): Buffer => sha256(Buffer.of(0x00), data);
export const refNodeHash = (left: Uint8Array, right: Uint8Array): Buffer => sha256(Buffer.of(0x01), left, right);

/** The largest power of two smaller than n (n > 1). */
function k(n: number): number {
  let p = 1;
  while (p << 1 < n) p <<= 1;
  return p;
}

/** A Merkle tree over leaf data D[0:n], growing by `push`. */
export class ReferenceTree {
  readonly leafHashes: Buffer[] = [];
  readonly #memo = new Map<string, Buffer>();

  constructor(leaves: Iterable<Uint8Array> = []) {
    for (const d of leaves) this.push(d);
  }

  push(data: Uint8Array): void {
    this.leafHashes.push(refLeafHash(data));
  }

  /** Appends a leaf by its hash (for trees whose leaf data does not matter). */
  pushHash(hash: Buffer): void {
    this.leafHashes.push(hash);
  }

  get size(): number {
    return this.leafHashes.length;
  }

  /** MTH(D[lo:hi]). */
  mth(lo: number, hi: number): Buffer {
    const n = hi - lo;
    if (n === 0) return refEmptyRoot();
    if (n === 1) return this.leafHashes[lo]!;
    const key = `${lo}:${hi}`;
    let h = this.#memo.get(key);
    if (!h) {
      const split = k(n);
      h = refNodeHash(this.mth(lo, lo + split), this.mth(lo + split, hi));
      this.#memo.set(key, h);
    }
    return h;
  }

  root(n = this.size): Buffer {
    return this.mth(0, n);
  }

  /** PATH(m, D[0:n]). */
  path(m: number, n: number): Buffer[] {
    const rec = (m: number, lo: number, hi: number): Buffer[] => {
      const size = hi - lo;
      if (size === 1) return [];
      const split = k(size);
      if (m < split) return [...rec(m, lo, lo + split), this.mth(lo + split, hi)];
      return [...rec(m - split, lo + split, hi), this.mth(lo, lo + split)];
    };
    return rec(m, 0, n);
  }

  /** PROOF(m, D[0:n]) = SUBPROOF(m, D[0:n], true). */
  proof(m: number, n: number): Buffer[] {
    const sub = (m: number, lo: number, hi: number, b: boolean): Buffer[] => {
      const size = hi - lo;
      if (m === size) return b ? [] : [this.mth(lo, hi)];
      const split = k(size);
      if (m <= split) return [...sub(m, lo, lo + split, b), this.mth(lo + split, hi)];
      return [...sub(m - split, lo + split, hi, false), this.mth(lo, lo + split)];
    };
    return sub(m, 0, n, true);
  }
}

/** RFC 9162 §2.1.3.2: the root an inclusion proof leads to, or undefined when it cannot. */
export function refRootFromInclusion(index: bigint, size: bigint, leaf: Uint8Array, proof: readonly Uint8Array[]): Buffer | undefined {
  if (index >= size) return undefined;
  let fn = index;
  let sn = size - 1n;
  let r: Buffer = Buffer.from(leaf);
  for (const p of proof) {
    if (p.length !== 32) return undefined;
    if (sn === 0n) return undefined;
    if ((fn & 1n) === 1n || fn === sn) {
      r = refNodeHash(p, r);
      if ((fn & 1n) === 0n) {
        do {
          fn >>= 1n;
          sn >>= 1n;
        } while ((fn & 1n) === 0n && fn !== 0n);
      }
    } else {
      r = refNodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n ? r : undefined;
}

/** RFC 9162 §2.1.4.2 with the caller-side rules of ATTESTATION.md §2. */
export function refVerifyConsistency(m: bigint, n: bigint, oldRoot: Uint8Array, newRoot: Uint8Array, proof: readonly Uint8Array[]): boolean {
  if (m === 0n || m > n) return false;
  if (m === n) return proof.length === 0 && Buffer.from(oldRoot).equals(newRoot);
  if (proof.length === 0 || proof.some((p) => p.length !== 32)) return false;
  const path = (m & (m - 1n)) === 0n ? [oldRoot, ...proof] : [...proof];
  let fn = m - 1n;
  let sn = n - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr: Buffer = Buffer.from(path[0]!);
  let sr: Buffer = Buffer.from(path[0]!);
  for (const c of path.slice(1)) {
    if (sn === 0n) return false;
    if ((fn & 1n) === 1n || fn === sn) {
      fr = refNodeHash(c, fr);
      sr = refNodeHash(c, sr);
      if ((fn & 1n) === 0n) {
        do {
          fn >>= 1n;
          sn >>= 1n;
        } while ((fn & 1n) === 0n && fn !== 0n);
      }
    } else {
      sr = refNodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return fr.equals(oldRoot) && sr.equals(newRoot) && sn === 0n;
}
