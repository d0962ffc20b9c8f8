// Tree storage as C2SP tlog-tiles: tile (L, n) holds up to 256 hashes, each the root of a complete
// subtree of 256^L leaves. Any complete subtree the proofs need is one tile read plus at most 255
// hash computations, and full tiles never change, so they are cached for good.
import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { HASH_SIZE, perfectRoot, type SubtreeSource } from "./merkle.ts";

export const TILE_WIDTH = 256;
export const TILE_HEIGHT = 8;

const tileRow = z.object({ level: z.number(), n: z.string(), hashes: z.instanceof(Buffer) });

/** Splits a tile's bytes into hashes. */
export function tileHashes(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += HASH_SIZE) out.push(bytes.subarray(i, i + HASH_SIZE));
  return out;
}

/** The C2SP path of tile index n: 3-digit groups, all but the last prefixed with x. */
export function tilePath(n: number): string {
  const digits = String(n).padStart(3, "0");
  const groups: string[] = [];
  let rest = digits;
  while (rest.length % 3 !== 0) rest = "0" + rest;
  for (let i = 0; i < rest.length; i += 3) groups.push(rest.slice(i, i + 3));
  return groups.map((g, i) => (i < groups.length - 1 ? `x${g}` : g)).join("/");
}

/** Parses a tile index path (`x001/x234/067` → 1234067); undefined when malformed. */
export function parseTilePath(path: string): number | undefined {
  const groups = path.split("/");
  if (groups.length === 0 || groups.length > 6) return undefined;
  let n = 0;
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i]!;
    const last = i === groups.length - 1;
    const m = (last ? /^(\d{3})$/ : /^x(\d{3})$/).exec(g);
    if (!m) return undefined;
    n = n * 1000 + Number(m[1]);
  }
  return n;
}

/** Reads tiles from the database with an unbounded-lifetime cache of full tiles. */
export class TileReader {
  readonly #db: CommonQueryMethods;
  readonly #fullCache: Map<string, Buffer[]>;

  constructor(db: CommonQueryMethods, fullCache = new Map<string, Buffer[]>()) {
    this.#db = db;
    this.#fullCache = fullCache;
  }

  async tile(level: number, n: number): Promise<Buffer[]> {
    const key = `${level}/${n}`;
    const cached = this.#fullCache.get(key);
    if (cached) return cached;
    const row = await this.#db.maybeOne(sql.type(tileRow)`SELECT level, n, hashes FROM log_tiles WHERE level = ${level} AND n = ${n}`);
    const hashes = row ? tileHashes(row.hashes) : [];
    if (hashes.length === TILE_WIDTH) {
      if (this.#fullCache.size >= 20_000) this.#fullCache.delete(this.#fullCache.keys().next().value!);
      this.#fullCache.set(key, hashes);
    }
    return hashes;
  }
}

/** Complete subtrees from tiles. Requires the subtree to be complete in the stored tree. */
export class TileSubtrees implements SubtreeSource {
  readonly #tiles: { tile(level: number, n: number): Promise<Buffer[]> };

  constructor(tiles: { tile(level: number, n: number): Promise<Buffer[]> }) {
    this.#tiles = tiles;
  }

  async subtree(height: number, index: number): Promise<Buffer> {
    const level = Math.floor(height / TILE_HEIGHT);
    const span = 2 ** (height - level * TILE_HEIGHT);
    const first = index * span;
    const tile = await this.#tiles.tile(level, Math.floor(first / TILE_WIDTH));
    const offset = first % TILE_WIDTH;
    if (tile.length < offset + span) {
      throw new Error(`tile ${level}/${Math.floor(first / TILE_WIDTH)} has ${tile.length} hashes; subtree ${height}/${index} needs ${offset + span}`);
    }
    return perfectRoot(tile.slice(offset, offset + span));
  }
}

/**
 * The right edge of the tree: the last, partial tile of each level. Appending leaf hashes fills
 * level 0; each tile that fills up adds its root to the level above. Returns the tiles changed.
 */
export class TreeEdge {
  size: number;
  /** level → the partial tile at that level (hashes so far). */
  readonly partial = new Map<number, Buffer[]>();

  constructor(size: number) {
    this.size = size;
  }

  /** Loads the partial tiles for a tree of `size` leaves. */
  static async load(db: CommonQueryMethods, size: number): Promise<TreeEdge> {
    const edge = new TreeEdge(size);
    for (let level = 0, count = size; count > 0; level++, count = Math.floor(count / TILE_WIDTH)) {
      const width = count % TILE_WIDTH;
      if (width === 0) continue;
      const n = Math.floor(count / TILE_WIDTH);
      const row = await db.maybeOne(sql.type(tileRow)`SELECT level, n, hashes FROM log_tiles WHERE level = ${level} AND n = ${n}`);
      const hashes = row ? tileHashes(row.hashes) : [];
      if (hashes.length < width) throw new Error(`log storage is damaged: tile ${level}/${n} has ${hashes.length} hashes, the tree needs ${width}`);
      edge.partial.set(level, hashes.slice(0, width));
    }
    return edge;
  }

  /** Appends leaf hashes; returns every tile (level, n, hashes) that changed. */
  append(leafHashes: readonly Buffer[]): { level: number; n: number; hashes: Buffer[] }[] {
    const changed = new Map<string, { level: number; n: number; hashes: Buffer[] }>();
    const push = (level: number, hash: Buffer, entryIndex: number): void => {
      const tile = this.partial.get(level) ?? [];
      tile.push(hash);
      const n = Math.floor(entryIndex / TILE_WIDTH);
      changed.set(`${level}/${n}`, { level, n, hashes: [...tile] });
      if (tile.length === TILE_WIDTH) {
        this.partial.delete(level);
        push(level + 1, perfectRoot(tile), n);
      } else {
        this.partial.set(level, tile);
      }
    };
    for (const h of leafHashes) {
      push(0, h, this.size);
      this.size++;
    }
    return [...changed.values()];
  }

  /** Serves subtrees from the in-memory partial tiles, falling back to stored tiles. */
  source(reader: TileReader): SubtreeSource {
    return new TileSubtrees({
      tile: async (level, n) => {
        const partial = this.partial.get(level);
        const count = Math.floor(this.size / TILE_WIDTH ** level);
        if (partial && n === Math.floor(count / TILE_WIDTH)) return partial;
        return reader.tile(level, n);
      },
    });
  }
}
