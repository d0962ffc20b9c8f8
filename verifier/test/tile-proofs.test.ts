// Consistency proofs built from a log's public hash tiles must be exactly the RFC 6962 proofs,
// whatever the sizes, while reading only tiles that exist for the newer size.
import { describe, expect, it } from "vitest";
import { consistencyProofFromTiles, tilePath, verifyConsistencyProof, type TileSource } from "../src/index.ts";
import { ReferenceTree, referenceLeafHash, referenceNodeHash } from "./support/reference-merkle.ts";

/** Tiles of the tree of `size` leaves, from any MTH function; refuses tiles that would not exist. */
function tilesOf(mth: (start: bigint, end: bigint) => Uint8Array, size: bigint, reads: string[] = []): TileSource {
  return async (level, index, width) => {
    const span = 256n ** BigInt(level);
    const first = index * 256n;
    if (width < 1 || width > 256 || (first + BigInt(width)) * span > size) throw new Error(`tile ${level}/${index} width ${width} does not exist at size ${size}`);
    if (width < 256 && (first + BigInt(width) + 1n) * span <= size) throw new Error(`tile ${level}/${index} asked at width ${width}, but it is wider at size ${size}`);
    reads.push(tilePath(level, index, width));
    const out = new Uint8Array(width * 32);
    for (let i = 0; i < width; i++) out.set(mth((first + BigInt(i)) * span, (first + BigInt(i) + 1n) * span), i * 32);
    return out;
  };
}

describe("tilePath", () => {
  it.each([
    [0, 0n, 256, "tile/0/000"],
    [0, 1234067n, 256, "tile/0/x001/x234/067"],
    [1, 5n, 17, "tile/1/005.p/17"],
    [2, 1000n, 3, "tile/2/x001/000.p/3"],
  ])("level %i tile %i of width %i is %s", (level, index, width, path) => {
    expect(tilePath(level, index, width)).toBe(path);
  });
});

describe("consistencyProofFromTiles", () => {
  const leaves = Array.from({ length: 700 }, (_, i) => Buffer.from(`leaf ${i}`));
  const tree = new ReferenceTree(leaves);
  const mth = (start: bigint, end: bigint) => tree.mth(Number(start), Number(end));

  it("equals the reference proof for every old size into trees spanning tile levels 0 and 1", async () => {
    for (const newSize of [1, 2, 255, 256, 257, 511, 512, 513, 600, 700]) {
      for (let oldSize = 1; oldSize <= newSize; oldSize += oldSize < 20 ? 1 : 37) {
        const proof = await consistencyProofFromTiles(tilesOf(mth, BigInt(newSize)), BigInt(oldSize), BigInt(newSize));
        expect(proof.map((h) => Buffer.from(h))).toEqual(tree.consistency(oldSize, newSize));
      }
    }
  });

  it("equals the reference proof in a tree of 65 797 leaves, which needs a level-2 tile", async () => {
    const big = new ReferenceTree(Array.from({ length: 65_797 }, (_, i) => Buffer.from(`big leaf ${i}`)));
    const bigMth = (start: bigint, end: bigint) => big.mth(Number(start), Number(end));
    for (const [oldSize, newSize] of [[1, 65_797], [300, 65_797], [65_536, 65_797], [65_535, 65_536], [40_000, 65_796], [65_797, 65_797]] as const) {
      const reads: string[] = [];
      const proof = await consistencyProofFromTiles(tilesOf(bigMth, BigInt(newSize), reads), BigInt(oldSize), BigInt(newSize));
      expect(proof.map((h) => Buffer.from(h))).toEqual(big.consistency(oldSize, newSize));
      expect(reads.length).toBeLessThanOrEqual(6);
    }
  });

  it("builds verifiable proofs in a tree of 2^40 + 12 345 leaves from a handful of tiles", async () => {
    // Every leaf is the same, so any subtree hash is cheap to compute; the sizes still exercise
    // tile indexes of several 3-digit groups and six tile levels.
    const perfect = [referenceLeafHash(Buffer.from("same"))];
    for (let h = 1; h <= 64; h++) perfect.push(referenceNodeHash(perfect[h - 1]!, perfect[h - 1]!));
    const uniform = (start: bigint, end: bigint): Buffer => {
      const n = end - start;
      if ((n & (n - 1n)) === 0n && start % n === 0n) return perfect[n.toString(2).length - 1]!;
      let k = 1n;
      while (k * 2n < n) k *= 2n;
      return referenceNodeHash(uniform(start, start + k), uniform(start + k, end));
    };
    const size = (1n << 40n) + 12_345n;
    for (const oldSize of [1n, 78n, (1n << 20n) + 1n, 1n << 39n, size - 1n]) {
      const reads: string[] = [];
      const proof = await consistencyProofFromTiles(tilesOf(uniform, size, reads), oldSize, size);
      expect(verifyConsistencyProof(oldSize, size, proof, uniform(0n, oldSize), uniform(0n, size))).toEqual({ ok: true });
      expect(reads.length).toBeLessThanOrEqual(2 * 6);
    }
  });

  it("returns no hashes between equal sizes and refuses sizes out of order", async () => {
    expect(await consistencyProofFromTiles(tilesOf(mth, 9n), 9n, 9n)).toEqual([]);
    await expect(consistencyProofFromTiles(tilesOf(mth, 9n), 10n, 9n)).rejects.toMatchObject({ code: "PROOF_SHAPE" });
    await expect(consistencyProofFromTiles(tilesOf(mth, 9n), 0n, 9n)).rejects.toMatchObject({ code: "PROOF_SHAPE" });
  });

  it("rejects a tile of the wrong length, and passes the source's own errors through", async () => {
    const short: TileSource = async (level, index, width) => (await tilesOf(mth, 300n)(level, index, width)).subarray(32);
    await expect(consistencyProofFromTiles(short, 5n, 300n)).rejects.toMatchObject({
      code: "PARSE_ERROR",
      message: "tile tile/0/000 has 8160 bytes, expected 256 hashes of 32",
    });
    const down: TileSource = async () => {
      throw new Error("connection refused");
    };
    await expect(consistencyProofFromTiles(down, 5n, 300n)).rejects.toThrow("connection refused");
  });
});
