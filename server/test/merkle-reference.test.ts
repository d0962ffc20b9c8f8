// The server's tile-backed RFC 6962 tree (TreeEdge appends, TileSubtrees reads, merkle.ts proofs)
// against the test's own recursive reference, in memory: roots at every size, inclusion proofs for
// every leaf, consistency proofs for many size pairs, across tile boundaries up to 65 537 leaves.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { consistencyProof, EMPTY_ROOT, inclusionProof, rootAt } from "../src/attestation/merkle.ts";
import { parseTilePath, TileSubtrees, tilePath, TreeEdge } from "../src/attestation/tiles.ts";
import { ReferenceTree, refEmptyRoot, refRootFromInclusion, refVerifyConsistency } from "../../test/support/rfc6962-reference.ts";

/** Tile storage in a Map, updated with what TreeEdge.append reports changed. */
class MemoryTiles {
  readonly tiles = new Map<string, Buffer[]>();

  apply(changed: { level: number; n: number; hashes: Buffer[] }[]): void {
    for (const t of changed) {
      const before = this.tiles.get(`${t.level}/${t.n}`) ?? [];
      // Stored tiles only grow: what was there stays a prefix.
      if (!Buffer.concat(t.hashes.slice(0, before.length)).equals(Buffer.concat(before))) throw new Error(`tile ${t.level}/${t.n} changed a stored hash`);
      this.tiles.set(`${t.level}/${t.n}`, [...t.hashes]);
    }
  }

  async tile(level: number, n: number): Promise<Buffer> {
    return Buffer.concat(this.tiles.get(`${level}/${n}`) ?? []);
  }

  source(): TileSubtrees {
    return new TileSubtrees(this);
  }
}

/** Leaf data for leaf i: distinct bytes of varying length. */
const leafData = (i: number): Buffer => Buffer.from(`leaf ${i} ${"x".repeat(i % 7)}`);

/** A tree of `n` leaves built by the server code, one append per leaf, and its reference. */
function grow(edge: TreeEdge, store: MemoryTiles, ref: ReferenceTree, upTo: number): void {
  while (ref.size < upTo) {
    ref.push(leafData(ref.size));
    store.apply(edge.append([ref.leafHashes[ref.size - 1]!]));
  }
}

/** One comparable string per hash list (cheaper to assert on than arrays, and as exact). */
const hex = (hashes: Buffer[]): string => hashes.map((h) => h.toString("hex")).join(" ");

describe("roots", () => {
  it("match the published RFC 6962 roots for sizes 0 to 8 (transparency-dev/merkle testonly vectors)", async () => {
    const leaves = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"].map((h) => Buffer.from(h, "hex"));
    const roots = [
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
      "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
      "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
      "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
      "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
      "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
      "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
      "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    const ref = new ReferenceTree(leaves);
    const edge = new TreeEdge(0);
    const store = new MemoryTiles();
    expect(ref.root(0).toString("hex")).toBe(roots[0]);
    for (let n = 1; n <= 8; n++) {
      store.apply(edge.append([ref.leafHashes[n - 1]!]));
      expect(ref.root(n).toString("hex"), `reference at ${n}`).toBe(roots[n]);
      expect((await rootAt(store.source(), n)).toString("hex"), `server at ${n}`).toBe(roots[n]);
    }
  });

  it("the empty tree's root is SHA-256 of nothing", async () => {
    expect(EMPTY_ROOT.equals(refEmptyRoot())).toBe(true);
    expect((await rootAt(new MemoryTiles().source(), 0)).equals(refEmptyRoot())).toBe(true);
  });

  it("the root at every size from 1 to 300 leaves equals MTH", async () => {
    const edge = new TreeEdge(0);
    const store = new MemoryTiles();
    const ref = new ReferenceTree();
    for (let n = 1; n <= 300; n++) {
      grow(edge, store, ref, n);
      expect(edge.size).toBe(n);
      expect((await rootAt(store.source(), n)).toString("hex"), `size ${n}`).toBe(ref.root(n).toString("hex"));
    }
  });

  it("stored tiles hold leaf hashes at level 0 and 256-leaf subtree roots at level 1", () => {
    const edge = new TreeEdge(0);
    const store = new MemoryTiles();
    const ref = new ReferenceTree();
    grow(edge, store, ref, 256 * 3 + 17);
    expect([...store.tiles.keys()].sort()).toEqual(["0/0", "0/1", "0/2", "0/3", "1/0"]);
    for (let n = 0; n < 4; n++) expect(hex(store.tiles.get(`0/${n}`)!)).toBe(hex(ref.leafHashes.slice(n * 256, n * 256 + 256)));
    expect(hex(store.tiles.get("1/0")!)).toBe(hex([0, 1, 2].map((j) => ref.mth(j * 256, j * 256 + 256))));
  });

  it("appending in batches of any sizes gives the same tiles and roots as one leaf at a time", async () => {
    const ref = new ReferenceTree(Array.from({ length: 700 }, (_, i) => leafData(i)));
    const oneByOne = new MemoryTiles();
    const single = new TreeEdge(0);
    for (const h of ref.leafHashes) oneByOne.apply(single.append([h]));
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 12 }), async (batches) => {
        const edge = new TreeEdge(0);
        const store = new MemoryTiles();
        let size = 0;
        for (const b of batches) {
          const take = Math.min(b, ref.size - size);
          store.apply(edge.append(ref.leafHashes.slice(size, size + take)));
          size += take;
          expect(edge.size).toBe(size);
          expect((await rootAt(store.source(), size)).equals(ref.root(size))).toBe(true);
        }
        for (const [key, hashes] of store.tiles) {
          const full = oneByOne.tiles.get(key)!;
          expect(hex(hashes)).toBe(hex(full.slice(0, hashes.length)));
        }
      }),
      { numRuns: 60 },
    );
  });
});

describe("inclusion proofs", () => {
  it("equal PATH for every leaf at every size from 1 to 64, and at sizes around 128, 256 and 512", async () => {
    const edge = new TreeEdge(0);
    const store = new MemoryTiles();
    const ref = new ReferenceTree();
    const sizes = [...Array.from({ length: 64 }, (_, i) => i + 1), 127, 128, 129, 255, 256, 257, 300, 511, 512, 513];
    let checked = 0;
    for (const n of sizes) {
      grow(edge, store, ref, n);
      for (let m = 0; m < n; m++) {
        const proof = await inclusionProof(store.source(), m, n);
        expect(hex(proof), `leaf ${m} of ${n}`).toBe(hex(ref.path(m, n)));
        expect(refRootFromInclusion(BigInt(m), BigInt(n), ref.leafHashes[m]!, proof)?.equals(ref.root(n))).toBe(true);
        checked++;
      }
    }
    expect(checked).toBe(2080 + 127 + 128 + 129 + 255 + 256 + 257 + 300 + 511 + 512 + 513);
  });

  it("equal PATH for random leaves of random sizes up to 2 000", async () => {
    const edge = new TreeEdge(0);
    const store = new MemoryTiles();
    const ref = new ReferenceTree();
    grow(edge, store, ref, 2000);
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 2000 }).chain((n) => fc.tuple(fc.constant(n), fc.integer({ min: 0, max: n - 1 }))), async ([n, m]) => {
        expect(hex(await inclusionProof(store.source(), m, n))).toBe(hex(ref.path(m, n)));
      }),
      { numRuns: 500 },
    );
  });
});

describe("consistency proofs", () => {
  it("equal PROOF for every pair 1 ≤ m ≤ n ≤ 64", async () => {
    const edge = new TreeEdge(0);
    const store = new MemoryTiles();
    const ref = new ReferenceTree();
    for (let n = 1; n <= 64; n++) {
      grow(edge, store, ref, n);
      for (let m = 1; m <= n; m++) {
        const proof = await consistencyProof(store.source(), m, n);
        expect(hex(proof), `${m} → ${n}`).toBe(hex(ref.proof(m, n)));
        expect(refVerifyConsistency(BigInt(m), BigInt(n), ref.root(m), ref.root(n), proof)).toBe(true);
      }
    }
  });

  it("equal PROOF for pairs around the tile boundaries 255, 256, 257, 511, 512, 513", async () => {
    const edge = new TreeEdge(0);
    const store = new MemoryTiles();
    const ref = new ReferenceTree();
    const sizes = [1, 2, 3, 7, 8, 9, 127, 128, 129, 200, 255, 256, 257, 300, 383, 384, 511, 512, 513, 600, 767, 768, 769];
    for (const n of sizes) {
      grow(edge, store, ref, n);
      for (const m of sizes.filter((m) => m <= n)) {
        const proof = await consistencyProof(store.source(), m, n);
        expect(hex(proof), `${m} → ${n}`).toBe(hex(ref.proof(m, n)));
        expect(refVerifyConsistency(BigInt(m), BigInt(n), ref.root(m), ref.root(n), proof)).toBe(true);
      }
    }
  });
});

describe("level-2 tiles", () => {
  it("roots and proofs at 65 535, 65 536 and 65 537 leaves equal the reference", async () => {
    const ref = new ReferenceTree();
    for (let i = 0; i < 65_537; i++) ref.pushHash(Buffer.from(ref.size.toString(16).padStart(64, "0"), "hex"));
    const edge = new TreeEdge(0);
    const store = new MemoryTiles();
    const leaves = [0, 1, 2, 255, 256, 257, 511, 512, 4095, 4096, 32_767, 32_768, 65_279, 65_280, 65_534, 65_535, 65_536];
    const olds = [1, 2, 255, 256, 257, 511, 512, 4096, 32_768, 65_280, 65_535, 65_536, 65_537];
    for (const [from, to] of [[0, 65_535], [65_535, 65_536], [65_536, 65_537]] as const) {
      // Big appends in chunks, as the sequencer does in batches.
      for (let at = from; at < to; at += 10_000) store.apply(edge.append(ref.leafHashes.slice(at, Math.min(to, at + 10_000))));
      const n = to;
      expect((await rootAt(store.source(), n)).toString("hex"), `root at ${n}`).toBe(ref.root(n).toString("hex"));
      for (const m of leaves.filter((m) => m < n)) {
        expect(hex(await inclusionProof(store.source(), m, n)), `leaf ${m} of ${n}`).toBe(hex(ref.path(m, n)));
      }
      for (const m of olds.filter((m) => m <= n)) {
        expect(hex(await consistencyProof(store.source(), m, n)), `${m} → ${n}`).toBe(hex(ref.proof(m, n)));
      }
    }
    expect(store.tiles.get("2/0")?.length).toBe(1);
    expect(store.tiles.get("2/0")![0]!.equals(ref.mth(0, 65_536))).toBe(true);
    expect(store.tiles.get("1/256")).toBeUndefined();
    expect(store.tiles.get("0/256")?.length).toBe(1);
  });
});

describe("tile paths", () => {
  it("encode indexes as 3-digit groups, all but the last prefixed with x", () => {
    expect(tilePath(0)).toBe("000");
    expect(tilePath(5)).toBe("005");
    expect(tilePath(999)).toBe("999");
    expect(tilePath(1000)).toBe("x001/000");
    expect(tilePath(1_234_067)).toBe("x001/x234/067");
    expect(tilePath(1_000_000_000)).toBe("x001/x000/x000/000");
  });

  it("parse back to the index, and malformed paths to undefined", () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 48 }), (n) => parseTilePath(tilePath(n)) === n));
    for (const bad of ["", "1234", "01", "0000", "x001", "001/002", "x001/x234/67", "x01/000", "x001/000/", "abc"]) {
      expect(parseTilePath(bad), bad).toBeUndefined();
    }
  });
});
