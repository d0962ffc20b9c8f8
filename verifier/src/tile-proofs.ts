// Consistency proofs computed from a log's public hash tiles (C2SP tlog-tiles), so that anyone can
// monitor the log without an account: the log serves immutable tiles, the monitor builds the RFC
// 9162 §2.1.4.1 proof itself and checks it against the two signed roots. A log that serves wrong
// tiles only produces a proof that fails, never a false "consistent".
import { VerifyError } from "./failure.ts";
import { HASH_SIZE, nodeHash } from "./merkle.ts";

/** Hashes per full tile, and the tree levels one tile spans (C2SP tlog-tiles). */
export const TILE_WIDTH = 256;
export const TILE_HEIGHT = 8;

/**
 * Reads tile `index` of tile level `level` holding `width` hashes (1..256). Resolves with the
 * tile's bytes (width × 32) or rejects (the caller's network error passes through unchanged).
 */
export type TileSource = (level: number, index: bigint, width: number) => Promise<Uint8Array>;

/**
 * The tlog-tiles path of a hash tile below the log's prefix: `tile/<L>/<N>[.p/<W>]`, with N in
 * 3-digit groups all but the last prefixed `x` (1234067 → `x001/x234/067`).
 */
export function tilePath(level: number, index: bigint, width: number): string {
  let digits = index.toString();
  while (digits.length % 3 !== 0) digits = `0${digits}`;
  const groups = digits.match(/.{3}/g)!;
  const n = groups.map((group, i) => (i < groups.length - 1 ? `x${group}` : group)).join("/");
  return `tile/${level}/${n}${width === TILE_WIDTH ? "" : `.p/${width}`}`;
}

/**
 * The RFC 9162 §2.1.4.1 consistency proof from the tree of `oldSize` leaves to the tree of
 * `newSize` leaves, from the tiles of the tree of `newSize` (a size the log has checkpointed, so
 * every partial tile it needs exists). Requires `0 < oldSize <= newSize < 2^64`; rejects with
 * `VerifyError` `PARSE_ERROR` when a tile has the wrong length, or with the source's error.
 */
export async function consistencyProofFromTiles(source: TileSource, oldSize: bigint, newSize: bigint): Promise<Uint8Array[]> {
  if (!(0n < oldSize && oldSize <= newSize)) throw new VerifyError("PROOF_SHAPE", `need 0 < old size <= new size, got ${oldSize} and ${newSize}`);
  const tiles = new TileSubtrees(source, newSize);
  const subproof = async (m: bigint, lo: bigint, hi: bigint, complete: boolean): Promise<Uint8Array[]> => {
    if (m === hi - lo) return complete ? [] : [await tiles.range(lo, hi)];
    const k = splitPoint(hi - lo);
    return m <= k
      ? [...(await subproof(m, lo, lo + k, complete)), await tiles.range(lo + k, hi)]
      : [...(await subproof(m - k, lo + k, hi, false)), await tiles.range(lo, lo + k)];
  };
  return subproof(oldSize, 0n, newSize, true);
}

/** Decodes a tile's bytes into its hashes. Requires `width` in 1..256. */
export function tileHashes(bytes: Uint8Array, width: number, where: string): Uint8Array[] {
  if (bytes.length !== width * HASH_SIZE) {
    throw new VerifyError("PARSE_ERROR", `tile ${where} has ${bytes.length} bytes, expected ${width} hashes of ${HASH_SIZE}`);
  }
  const hashes: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += HASH_SIZE) hashes.push(bytes.subarray(i, i + HASH_SIZE));
  return hashes;
}

/** Subtree hashes of one tree size, read from its tiles; each tile is fetched once. */
class TileSubtrees {
  readonly #source: TileSource;
  readonly #size: bigint;
  readonly #tiles = new Map<string, Promise<Uint8Array[]>>();

  constructor(source: TileSource, size: bigint) {
    this.#source = source;
    this.#size = size;
  }

  /** MTH of leaves [lo, hi): the complete subtrees it splits into, folded from the right. */
  async range(lo: bigint, hi: bigint): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    for (let pos = lo; pos < hi; ) {
      let height = 0;
      while (pos % (1n << BigInt(height + 1)) === 0n && pos + (1n << BigInt(height + 1)) <= hi) height++;
      parts.push(await this.subtree(height, pos >> BigInt(height)));
      pos += 1n << BigInt(height);
    }
    let hash = parts.pop()!;
    while (parts.length > 0) hash = nodeHash(parts.pop()!, hash);
    return hash;
  }

  /** The root of leaves [index·2^height, (index+1)·2^height), which must lie within the tree. */
  async subtree(height: number, index: bigint): Promise<Uint8Array> {
    const level = Math.floor(height / TILE_HEIGHT);
    const count = 1n << BigInt(height - level * TILE_HEIGHT);
    const first = index * count;
    const tileIndex = first / BigInt(TILE_WIDTH);
    const offset = Number(first % BigInt(TILE_WIDTH));
    const hashes = (await this.#tile(level, tileIndex)).slice(offset, offset + Number(count));
    let row = hashes;
    while (row.length > 1) {
      const next: Uint8Array[] = [];
      for (let i = 0; i < row.length; i += 2) next.push(nodeHash(row[i]!, row[i + 1]!));
      row = next;
    }
    return row[0]!;
  }

  #tile(level: number, index: bigint): Promise<Uint8Array[]> {
    const complete = this.#size >> BigInt(level * TILE_HEIGHT);
    const rest = complete - index * BigInt(TILE_WIDTH);
    const width = Number(rest < BigInt(TILE_WIDTH) ? rest : BigInt(TILE_WIDTH));
    const key = `${level}/${index}`;
    let tile = this.#tiles.get(key);
    if (tile === undefined) {
      tile = this.#source(level, index, width).then((bytes) => tileHashes(bytes, width, tilePath(level, index, width)));
      this.#tiles.set(key, tile);
    }
    return tile;
  }
}

function splitPoint(n: bigint): bigint {
  let k = 1n;
  while (k * 2n < n) k *= 2n;
  return k;
}
