// RFC 9162 verification against the naive RFC 6962 reference: every honest proof verifies, and
// every kind of damage to a proof or its claims is caught.
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  consistencyProofLength,
  emptyRoot,
  inclusionProofLength,
  leafHash,
  rootFromInclusionProof,
  verifyConsistencyProof,
  verifyInclusionProof,
} from "../src/index.ts";
import { ReferenceTree, referenceLeafHash, sha256 } from "./support/reference-merkle.ts";
import { SyntheticTree } from "./support/synthetic-tree.ts";

const MAX_LEAVES = 1000;
const tree = new ReferenceTree(Array.from({ length: MAX_LEAVES }, () => randomBytes(1 + Math.floor(Math.random() * 40))));
const leaf = (i: number): Buffer => referenceLeafHash(tree.leaves[i]!);
const root = (size: number): Buffer => tree.mth(0, size);

function flipBit(hash: Uint8Array, bit: number): Uint8Array {
  const copy = Uint8Array.from(hash);
  copy[(bit >> 3) % copy.length]! ^= 1 << (bit & 7);
  return copy;
}

const sizeAndIndex = fc
  .integer({ min: 1, max: MAX_LEAVES })
  .chain((size) => fc.record({ size: fc.constant(size), index: fc.integer({ min: 0, max: size - 1 }) }));

const oldAndNewSize = fc
  .integer({ min: 1, max: MAX_LEAVES })
  .chain((size) => fc.record({ newSize: fc.constant(size), oldSize: fc.integer({ min: 1, max: size }) }));

describe("leaf and node hashing", () => {
  it("matches RFC 6962 domain separation and the empty root", () => {
    expect(Buffer.from(leafHash(tree.leaves[3]!))).toEqual(leaf(3));
    expect(Buffer.from(emptyRoot())).toEqual(sha256());
    expect(Buffer.from(emptyRoot()).toString("hex")).toBe(
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
  });
});

describe("inclusion proofs (RFC 9162 §2.1.3.2)", () => {
  it("every leaf of random trees of 1..1000 leaves verifies", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: MAX_LEAVES }), (size) => {
        for (let index = 0; index < size; index++) {
          const proof = tree.path(index, size);
          expect(inclusionProofLength(BigInt(index), BigInt(size))).toBe(proof.length);
          const result = verifyInclusionProof(BigInt(index), BigInt(size), leaf(index), proof, root(size));
          expect(result).toEqual({ ok: true });
        }
      }),
      { numRuns: 25 },
    );
  });

  it("every leaf of every tree up to 64 leaves verifies", () => {
    for (let size = 1; size <= 64; size++) {
      for (let index = 0; index < size; index++) {
        const proof = tree.path(index, size);
        expect(Buffer.from(rootFromInclusionProof(BigInt(index), BigInt(size), leaf(index), proof))).toEqual(root(size));
      }
    }
  });

  const damage = fc.oneof(
    fc.record({ kind: fc.constant("flip proof bit" as const), at: fc.nat(), bit: fc.nat(255) }),
    fc.record({ kind: fc.constant("flip leaf bit" as const), bit: fc.nat(255) }),
    fc.record({ kind: fc.constant("flip root bit" as const), bit: fc.nat(255) }),
    fc.record({ kind: fc.constant("wrong index" as const), other: fc.nat() }),
    fc.record({ kind: fc.constant("wrong size" as const), other: fc.nat() }),
    fc.record({ kind: fc.constant("truncate" as const), keep: fc.nat() }),
    fc.record({ kind: fc.constant("extend" as const), at: fc.nat() }),
    fc.record({ kind: fc.constant("swap" as const), a: fc.nat(), b: fc.nat() }),
  );

  it("a flipped bit, wrong index or size, truncated or extended proof, or swapped hashes fail", () => {
    fc.assert(
      fc.property(sizeAndIndex, damage, ({ size, index }, d) => {
        let i = BigInt(index);
        let n = BigInt(size);
        let l: Uint8Array = leaf(index);
        let r: Uint8Array = root(size);
        let proof: Uint8Array[] = tree.path(index, size);
        let codes = ["INCLUSION_FAILED"];
        switch (d.kind) {
          case "flip proof bit":
            fc.pre(proof.length > 0);
            proof[d.at % proof.length] = flipBit(proof[d.at % proof.length]!, d.bit);
            break;
          case "flip leaf bit":
            l = flipBit(l, d.bit);
            break;
          case "flip root bit":
            r = flipBit(r, d.bit);
            break;
          case "wrong index": {
            fc.pre(size > 1);
            i = BigInt((index + 1 + (d.other % (size - 1))) % size);
            codes = ["INCLUSION_FAILED", "PROOF_SHAPE"];
            break;
          }
          case "wrong size": {
            // Any other size the leaf could be in, checked against that tree's real root.
            const other = index + 1 + (d.other % (MAX_LEAVES - index));
            fc.pre(other !== size);
            n = BigInt(other);
            r = root(other);
            codes = ["INCLUSION_FAILED", "PROOF_SHAPE"];
            break;
          }
          case "truncate":
            fc.pre(proof.length > 0);
            proof = proof.slice(0, d.keep % proof.length);
            codes = ["PROOF_SHAPE"];
            break;
          case "extend":
            proof.splice(d.at % (proof.length + 1), 0, randomBytes(32));
            codes = ["PROOF_SHAPE"];
            break;
          case "swap": {
            fc.pre(proof.length > 1);
            const a = d.a % proof.length;
            const b = (a + 1 + (d.b % (proof.length - 1))) % proof.length;
            [proof[a], proof[b]] = [proof[b]!, proof[a]!];
            break;
          }
        }
        const result = verifyInclusionProof(i, n, l, proof, r);
        expect(result.ok).toBe(false);
        if (!result.ok) expect(codes).toContain(result.code);
      }),
      { numRuns: 3000 },
    );
  });

  it("rejects out-of-range indexes, malformed hashes and over-long proofs as PROOF_SHAPE", () => {
    const proof = tree.path(2, 5);
    const cases: [bigint, bigint, Uint8Array, Uint8Array[], Uint8Array][] = [
      [5n, 5n, leaf(2), proof, root(5)],
      [-1n, 5n, leaf(2), proof, root(5)],
      [0n, 0n, leaf(2), [], emptyRoot()],
      [2n, 5n, leaf(2).subarray(0, 31), proof, root(5)],
      [2n, 5n, leaf(2), [proof[0]!, new Uint8Array(33), proof[2]!], root(5)],
      [2n, 5n, leaf(2), proof, new Uint8Array(31)],
      [2n, 1n << 64n, leaf(2), Array.from({ length: 64 }, () => new Uint8Array(32)), root(5)],
      [2n, (1n << 64n) - 1n, leaf(2), Array.from({ length: 65 }, () => new Uint8Array(32)), root(5)],
    ];
    for (const [index, size, l, p, r] of cases) {
      const result = verifyInclusionProof(index, size, l, p, r);
      expect(result).toMatchObject({ ok: false, code: "PROOF_SHAPE" });
    }
  });

  it.each([
    [1n << 10n, 700n],
    [1n << 30n, 123_456_789n],
    [(1n << 40n) + 12_345n, (1n << 40n) + 12_000n],
    [(1n << 64n) - 1n, (1n << 64n) - 2n],
    [(1n << 64n) - 1n, 0n],
    [1n << 63n, (1n << 63n) - 1n],
  ])("verifies in a synthetic tree of %s leaves at index %s (BigInt arithmetic)", (size, index) => {
    const synthetic = new SyntheticTree(size, index, Buffer.from("the leaf"), randomBytes(32));
    const proof = synthetic.inclusionProof();
    expect(proof.length).toBeLessThanOrEqual(64);
    const l = referenceLeafHash(Buffer.from("the leaf"));
    expect(verifyInclusionProof(index, size, l, proof, synthetic.root())).toEqual({ ok: true });
    expect(verifyInclusionProof(index, size, l, proof, flipBit(synthetic.root(), 9))).toMatchObject({
      ok: false,
      code: "INCLUSION_FAILED",
    });
  });
});

describe("consistency proofs (RFC 9162 §2.1.4.2)", () => {
  it("every older size of random trees of 1..1000 leaves is consistent with the tree", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: MAX_LEAVES }), (newSize) => {
        for (let oldSize = 1; oldSize <= newSize; oldSize++) {
          const proof = tree.consistency(oldSize, newSize);
          expect(consistencyProofLength(BigInt(oldSize), BigInt(newSize))).toBe(proof.length);
          const result = verifyConsistencyProof(BigInt(oldSize), BigInt(newSize), proof, root(oldSize), root(newSize));
          expect(result).toEqual({ ok: true });
        }
      }),
      { numRuns: 25 },
    );
  });

  it("every pair of sizes up to 64 leaves is consistent", () => {
    for (let newSize = 1; newSize <= 64; newSize++) {
      for (let oldSize = 1; oldSize <= newSize; oldSize++) {
        const proof = tree.consistency(oldSize, newSize);
        expect(verifyConsistencyProof(BigInt(oldSize), BigInt(newSize), proof, root(oldSize), root(newSize))).toEqual({
          ok: true,
        });
      }
    }
  });

  const damage = fc.oneof(
    fc.record({ kind: fc.constant("flip proof bit" as const), at: fc.nat(), bit: fc.nat(255) }),
    fc.record({ kind: fc.constant("flip old root bit" as const), bit: fc.nat(255) }),
    fc.record({ kind: fc.constant("flip new root bit" as const), bit: fc.nat(255) }),
    fc.record({ kind: fc.constant("wrong old size" as const), other: fc.nat() }),
    fc.record({ kind: fc.constant("wrong new size" as const), other: fc.nat() }),
    fc.record({ kind: fc.constant("truncate" as const), keep: fc.nat() }),
    fc.record({ kind: fc.constant("extend" as const), at: fc.nat() }),
    fc.record({ kind: fc.constant("swap" as const), a: fc.nat(), b: fc.nat() }),
  );

  it("a flipped bit, wrong sizes, truncated or extended proof, or swapped hashes fail", () => {
    fc.assert(
      fc.property(oldAndNewSize, damage, ({ oldSize, newSize }, d) => {
        let m = BigInt(oldSize);
        let n = BigInt(newSize);
        let oldRoot: Uint8Array = root(oldSize);
        let newRoot: Uint8Array = root(newSize);
        let proof: Uint8Array[] = tree.consistency(oldSize, newSize);
        let codes = ["CONSISTENCY_FAILED"];
        switch (d.kind) {
          case "flip proof bit":
            fc.pre(proof.length > 0);
            proof[d.at % proof.length] = flipBit(proof[d.at % proof.length]!, d.bit);
            break;
          case "flip old root bit":
            oldRoot = flipBit(oldRoot, d.bit);
            break;
          case "flip new root bit":
            newRoot = flipBit(newRoot, d.bit);
            break;
          case "wrong old size": {
            const other = 1 + (d.other % newSize);
            fc.pre(other !== oldSize);
            m = BigInt(other);
            oldRoot = root(other);
            codes = ["CONSISTENCY_FAILED", "PROOF_SHAPE"];
            break;
          }
          case "wrong new size": {
            const other = oldSize + (d.other % (MAX_LEAVES - oldSize + 1));
            fc.pre(other !== newSize);
            n = BigInt(other);
            newRoot = root(other);
            codes = ["CONSISTENCY_FAILED", "PROOF_SHAPE"];
            break;
          }
          case "truncate":
            fc.pre(proof.length > 0);
            proof = proof.slice(0, d.keep % proof.length);
            codes = ["PROOF_SHAPE"];
            break;
          case "extend":
            proof.splice(d.at % (proof.length + 1), 0, randomBytes(32));
            codes = ["PROOF_SHAPE"];
            break;
          case "swap": {
            fc.pre(proof.length > 1);
            const a = d.a % proof.length;
            const b = (a + 1 + (d.b % (proof.length - 1))) % proof.length;
            [proof[a], proof[b]] = [proof[b]!, proof[a]!];
            break;
          }
        }
        const result = verifyConsistencyProof(m, n, proof, oldRoot, newRoot);
        expect(result.ok).toBe(false);
        if (!result.ok) expect(codes).toContain(result.code);
      }),
      { numRuns: 3000 },
    );
  });

  it("caps proofs at 64 hashes even where a tree beyond 2^63 leaves would need 65", () => {
    const [oldSize, newSize] = [(1n << 63n) + 1n, (1n << 64n) - 1n];
    const synthetic = new SyntheticTree(newSize, oldSize - 1n, Buffer.from("leaf"), randomBytes(32));
    const proof = synthetic.consistencyProof(oldSize);
    expect(proof.length).toBe(65);
    expect(verifyConsistencyProof(oldSize, newSize, proof, synthetic.root(oldSize), synthetic.root(newSize))).toMatchObject({
      code: "PROOF_SHAPE",
      message: "the proof has 65 hashes, more than 64",
    });
  });

  it("applies the caller-side size rules of ATTESTATION.md §2", () => {
    const p = tree.consistency(3, 7);
    expect(verifyConsistencyProof(0n, 7n, [], emptyRoot(), root(7))).toMatchObject({ code: "PROOF_SHAPE" });
    expect(verifyConsistencyProof(7n, 3n, p, root(7), root(3))).toMatchObject({ code: "PROOF_SHAPE" });
    expect(verifyConsistencyProof(7n, 7n, [], root(7), root(7))).toEqual({ ok: true });
    expect(verifyConsistencyProof(7n, 7n, [root(7)], root(7), root(7))).toMatchObject({ code: "PROOF_SHAPE" });
    expect(verifyConsistencyProof(7n, 7n, [], root(7), root(8))).toMatchObject({ code: "CONSISTENCY_FAILED" });
    expect(verifyConsistencyProof(3n, 7n, [], root(3), root(7))).toMatchObject({ code: "PROOF_SHAPE" });
    const tooLong = Array.from({ length: 65 }, () => new Uint8Array(32));
    expect(verifyConsistencyProof(3n, 7n, tooLong, root(3), root(7))).toMatchObject({ code: "PROOF_SHAPE" });
  });

  it.each([
    [1n << 10n, 1n << 20n],
    [(1n << 20n) - 1n, 1n << 30n],
    [123_456_789n, (1n << 30n) + 5n],
    [(1n << 62n) + 1n, (1n << 63n) - 1n],
    [1n, (1n << 64n) - 1n],
  ])("verifies from %s to %s leaves in a synthetic tree (BigInt arithmetic)", (oldSize, newSize) => {
    const synthetic = new SyntheticTree(newSize, oldSize - 1n, Buffer.from("leaf"), randomBytes(32));
    const proof = synthetic.consistencyProof(oldSize);
    const oldRoot = synthetic.root(oldSize);
    const newRoot = synthetic.root(newSize);
    expect(verifyConsistencyProof(oldSize, newSize, proof, oldRoot, newRoot)).toEqual({ ok: true });
    expect(verifyConsistencyProof(oldSize, newSize, proof, oldRoot, flipBit(newRoot, 3))).toMatchObject({
      code: "CONSISTENCY_FAILED",
    });
  });
});
