// The Merkle tree of RFC 6962 / RFC 9162 §2.1: leaf and node hashing, and verification of
// inclusion (§2.1.3.2) and consistency (§2.1.4.2) proofs. Sizes and indexes are u64 BigInts.
// The verification loops read like the RFC's numbered steps on purpose, so that an auditor can
// hold the two side by side.
import { sha256 } from "@noble/hashes/sha2.js";
import { encodeBase64 } from "./base64.ts";
import { bytesEqual, concatBytes } from "./bytes.ts";
import { MAX_UINT64 } from "./decimal.ts";
import { VerifyError, failure, type Outcome } from "./failure.ts";

/** Length of every hash in the tree (SHA-256). */
export const HASH_SIZE = 32;

/**
 * Longest proof accepted (ATTESTATION.md §2). A u64-sized tree needs at most 64 hashes for
 * inclusion; a consistency proof needs 65 only when the old tree has more than 2^63 leaves,
 * which no Kapsel log reaches. The cap bounds the work a hostile proof can cause.
 */
export const MAX_PROOF_HASHES = 64;

const LEAF_PREFIX = Uint8Array.of(0x00);
const NODE_PREFIX = Uint8Array.of(0x01);

/** `SHA-256(0x00 || leaf)`: the hash of one leaf's data. */
export function leafHash(leaf: Uint8Array): Uint8Array {
  return sha256(concatBytes(LEAF_PREFIX, leaf));
}

/** `SHA-256(0x01 || left || right)`: an interior node. Requires two 32-byte hashes. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return sha256(concatBytes(NODE_PREFIX, left, right));
}

/** The root of the empty tree, `SHA-256("")`. */
export function emptyRoot(): Uint8Array {
  return sha256(new Uint8Array(0));
}

/**
 * Computes the root that an inclusion proof leads to (RFC 9162 §2.1.3.2 steps 1–5).
 * Requires `0 <= index < size < 2^64`, 32-byte hashes, and exactly the number of proof hashes
 * the RFC 6962 path for (`index`, `size`) has; otherwise throws `VerifyError` `PROOF_SHAPE`.
 */
export function rootFromInclusionProof(
  index: bigint,
  size: bigint,
  leaf: Uint8Array,
  proof: readonly Uint8Array[],
): Uint8Array {
  if (size > MAX_UINT64) throw new VerifyError("PROOF_SHAPE", `tree size ${size} exceeds 2^64-1`);
  if (index < 0n || index >= size) {
    throw new VerifyError("PROOF_SHAPE", `leaf index ${index} is not below tree size ${size}`);
  }
  checkHashes(leaf, proof);
  const expected = inclusionProofLength(index, size);
  if (proof.length !== expected) {
    throw new VerifyError(
      "PROOF_SHAPE",
      `an inclusion proof for index ${index} in a tree of ${size} has ${expected} hashes, got ${proof.length}`,
    );
  }

  let fn = index;
  let sn = size - 1n;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) throw new VerifyError("PROOF_SHAPE", "inclusion proof is longer than the path");
    if ((fn & 1n) === 1n || fn === sn) {
      r = nodeHash(p, r);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new VerifyError("PROOF_SHAPE", "inclusion proof is shorter than the path");
  return r;
}

/**
 * Verifies that `leaf` (a leaf hash) is at `index` in the tree of `size` leaves whose root is
 * `root` (RFC 9162 §2.1.3.2). Accepts any input and never throws: out-of-range values and
 * malformed proofs give `PROOF_SHAPE`, a root mismatch gives `INCLUSION_FAILED`.
 */
export function verifyInclusionProof(
  index: bigint,
  size: bigint,
  leaf: Uint8Array,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): Outcome<object> {
  try {
    checkHashes(root, []);
    const computed = rootFromInclusionProof(index, size, leaf, proof);
    if (!bytesEqual(computed, root)) {
      return failure(
        "INCLUSION_FAILED",
        `the proof leads to root ${encodeBase64(computed)}, not the expected ${encodeBase64(root)}`,
      );
    }
    return { ok: true };
  } catch (error) {
    if (error instanceof VerifyError) return failure(error.code, error.message);
    throw error;
  }
}

/**
 * Verifies that the tree of `newSize` leaves with root `newRoot` extends the tree of `oldSize`
 * leaves with root `oldRoot` (RFC 9162 §2.1.4.2). Requires nothing of its inputs and never
 * throws. The caller-side rules of ATTESTATION.md §2 apply: `0 < oldSize <= newSize < 2^64`, an
 * equal-size "proof" is empty and needs equal roots, and a proof of the wrong length fails with
 * `PROOF_SHAPE`; hashes that do not lead to both roots fail with `CONSISTENCY_FAILED`.
 */
export function verifyConsistencyProof(
  oldSize: bigint,
  newSize: bigint,
  proof: readonly Uint8Array[],
  oldRoot: Uint8Array,
  newRoot: Uint8Array,
): Outcome<object> {
  try {
    checkHashes(oldRoot, proof);
    checkHashes(newRoot, []);
    if (newSize > MAX_UINT64) throw new VerifyError("PROOF_SHAPE", `tree size ${newSize} exceeds 2^64-1`);
    if (oldSize <= 0n) {
      throw new VerifyError("PROOF_SHAPE", "a consistency proof needs a non-empty old tree");
    }
    if (oldSize > newSize) {
      throw new VerifyError("PROOF_SHAPE", `old tree size ${oldSize} is larger than new size ${newSize}`);
    }
    const expected = consistencyProofLength(oldSize, newSize);
    if (proof.length !== expected) {
      throw new VerifyError(
        "PROOF_SHAPE",
        `a consistency proof from ${oldSize} to ${newSize} has ${expected} hashes, got ${proof.length}`,
      );
    }
    if (oldSize === newSize) {
      return bytesEqual(oldRoot, newRoot)
        ? { ok: true }
        : failure("CONSISTENCY_FAILED", `two trees of size ${oldSize} have different roots`);
    }

    // Step 1: a power-of-two old tree is itself a node of the new tree, so the RFC prepends its
    // root instead of making the proof carry it.
    const path = isPowerOfTwo(oldSize) ? [oldRoot, ...proof] : proof;
    // Steps 2–4.
    let fn = oldSize - 1n;
    let sn = newSize - 1n;
    while ((fn & 1n) === 1n) {
      fn >>= 1n;
      sn >>= 1n;
    }
    let fr = path[0]!;
    let sr = path[0]!;
    // Step 5.
    for (const c of path.slice(1)) {
      if (sn === 0n) throw new VerifyError("PROOF_SHAPE", "consistency proof is longer than the path");
      if ((fn & 1n) === 1n || fn === sn) {
        fr = nodeHash(c, fr);
        sr = nodeHash(c, sr);
        if ((fn & 1n) === 0n) {
          while ((fn & 1n) === 0n && fn !== 0n) {
            fn >>= 1n;
            sn >>= 1n;
          }
        }
      } else {
        sr = nodeHash(sr, c);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    // Step 6.
    if (sn !== 0n) throw new VerifyError("PROOF_SHAPE", "consistency proof is shorter than the path");
    if (!bytesEqual(fr, oldRoot)) {
      return failure("CONSISTENCY_FAILED", `the proof leads to old root ${encodeBase64(fr)}, not ${encodeBase64(oldRoot)}`);
    }
    if (!bytesEqual(sr, newRoot)) {
      return failure("CONSISTENCY_FAILED", `the proof leads to new root ${encodeBase64(sr)}, not ${encodeBase64(newRoot)}`);
    }
    return { ok: true };
  } catch (error) {
    if (error instanceof VerifyError) return failure(error.code, error.message);
    throw error;
  }
}

/**
 * Number of hashes in the RFC 6962 inclusion proof for `index` in a tree of `size`.
 * Requires `0 <= index < size`. The path has one hash per level where the two paths to
 * `index` and to the last leaf differ ("inner"), plus one per set bit above them ("border").
 */
export function inclusionProofLength(index: bigint, size: bigint): number {
  const inner = bitLength(index ^ (size - 1n));
  const border = popCount(index >> BigInt(inner));
  return inner + border;
}

/**
 * Number of hashes in the RFC 6962 consistency proof from `oldSize` to `newSize`.
 * Requires `0 < oldSize <= newSize`. It is the inclusion path of leaf `oldSize - 1` above the
 * level of the largest complete subtree ending there, plus that subtree's root unless the old
 * tree is exactly that subtree.
 */
export function consistencyProofLength(oldSize: bigint, newSize: bigint): number {
  if (oldSize === newSize) return 0;
  const shift = trailingZeros(oldSize);
  const inner = bitLength((oldSize - 1n) ^ (newSize - 1n)) - shift;
  const border = popCount((oldSize - 1n) >> BigInt(inner + shift));
  const seed = oldSize === 1n << BigInt(shift) ? 0 : 1;
  return seed + inner + border;
}

function checkHashes(first: Uint8Array, rest: readonly Uint8Array[]): void {
  if (first.length !== HASH_SIZE) {
    throw new VerifyError("PROOF_SHAPE", `a hash has ${first.length} bytes, not ${HASH_SIZE}`);
  }
  if (rest.length > MAX_PROOF_HASHES) {
    throw new VerifyError("PROOF_SHAPE", `the proof has ${rest.length} hashes, more than ${MAX_PROOF_HASHES}`);
  }
  for (const [i, hash] of rest.entries()) {
    if (hash.length !== HASH_SIZE) {
      throw new VerifyError("PROOF_SHAPE", `proof hash ${i + 1} has ${hash.length} bytes, not ${HASH_SIZE}`);
    }
  }
}

function isPowerOfTwo(n: bigint): boolean {
  return n > 0n && (n & (n - 1n)) === 0n;
}

function bitLength(n: bigint): number {
  return n === 0n ? 0 : n.toString(2).length;
}

function popCount(n: bigint): number {
  let count = 0;
  for (const digit of n.toString(2)) if (digit === "1") count++;
  return count;
}

function trailingZeros(n: bigint): number {
  let count = 0;
  while (n > 0n && (n & 1n) === 0n) {
    n >>= 1n;
    count++;
  }
  return count;
}
