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

/**
 * Where tiles come from: a tile's hashes, concatenated (32 bytes each); `need` is how many hashes
 * the caller will use (default: a full tile). One buffer per tile keeps a large cache cheap for the
 * garbage collector.
 */
export interface TileStore {
  tile(level: number, n: number, need?: number): Promise<Buffer>;
}

const EMPTY = Buffer.alloc(0);

const CACHE_LIMIT = 20_000;

/**
 * Reads tiles from the database through a cache. A stored tile only grows and its prefix never
 * changes, so a cached copy — full or partial — serves every caller that needs no more hashes than
 * it holds; only a longer need reads again. The cache must hold committed tiles only.
 */
export class TileReader implements TileStore {
  readonly #db: CommonQueryMethods;
  readonly #cache: Map<string, Buffer>;

  constructor(db: CommonQueryMethods, cache = new Map<string, Buffer>()) {
    this.#db = db;
    this.#cache = cache;
  }

  async tile(level: number, n: number, need = TILE_WIDTH): Promise<Buffer> {
    const key = `${level}/${n}`;
    const cached = this.#cache.get(key);
    if (cached && cached.length >= need * HASH_SIZE) return cached;
    const row = await this.#db.maybeOne(sql.type(tileRow)`SELECT level, n, hashes FROM log_tiles WHERE level = ${level} AND n = ${n}`);
    const hashes = row?.hashes ?? EMPTY;
    if (hashes.length > (cached?.length ?? 0)) {
      if (!cached && this.#cache.size >= CACHE_LIMIT) this.#cache.delete(this.#cache.keys().next().value!);
      this.#cache.set(key, hashes);
    }
    return hashes;
  }
}

/**
 * Complete subtrees from tiles. Requires the subtree to be complete in the stored tree. With a
 * `roots` map, subtree roots computed from several hashes are kept: a complete subtree's root never
 * changes, so the map may be shared by every reader of committed tiles.
 */
export class TileSubtrees implements SubtreeSource {
  readonly #tiles: TileStore;
  readonly #roots: Map<string, Buffer> | undefined;

  constructor(tiles: TileStore, roots?: Map<string, Buffer>) {
    this.#tiles = tiles;
    this.#roots = roots;
  }

  async subtree(height: number, index: number): Promise<Buffer> {
    const level = Math.floor(height / TILE_HEIGHT);
    const span = 2 ** (height - level * TILE_HEIGHT);
    const first = index * span;
    const offset = first % TILE_WIDTH;
    const tile = await this.#tiles.tile(level, Math.floor(first / TILE_WIDTH), offset + span);
    if (tile.length < (offset + span) * HASH_SIZE) {
      throw new LogStorageDamaged(`tile ${level}/${Math.floor(first / TILE_WIDTH)} has ${tile.length / HASH_SIZE} hashes; subtree ${height}/${index} needs ${offset + span}`);
    }
    const bytes = tile.subarray(offset * HASH_SIZE, (offset + span) * HASH_SIZE);
    if (span === 1) return bytes;
    const key = `${height}/${index}`;
    const known = this.#roots?.get(key);
    if (known) return known;
    const root = perfectRoot(tileHashes(bytes));
    if (this.#roots) {
      if (this.#roots.size >= CACHE_LIMIT * 5) this.#roots.delete(this.#roots.keys().next().value!);
      this.#roots.set(key, root);
    }
    return root;
  }
}

/** The stored tiles do not hold what the tree size says they must: storage lost or changed rows.
 * Never a caller's fault; `kapsel log verify` says where. */
export class LogStorageDamaged extends Error {
  constructor(detail: string) {
    super(`log storage is damaged: ${detail}`);
    this.name = "LogStorageDamaged";
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
      if (hashes.length < width) throw new LogStorageDamaged(`tile ${level}/${n} has ${hashes.length} hashes, the tree needs ${width}`);
      edge.partial.set(level, hashes.slice(0, width));
    }
    return edge;
  }

  /** Appends leaf hashes; returns every tile (level, n, hashes) that changed. */
  append(leafHashes: readonly Buffer[]): { level: number; n: number; hashes: Buffer[] }[] {
    // Tiles are collected by reference and copied once at the end: a full tile is final, and a
    // partial one is returned as it stands after the whole append.
    const changed = new Map<string, { level: number; n: number; tile: Buffer[] }>();
    const push = (level: number, hash: Buffer, entryIndex: number): void => {
      let tile = this.partial.get(level);
      if (!tile) this.partial.set(level, (tile = []));
      tile.push(hash);
      const n = Math.floor(entryIndex / TILE_WIDTH);
      const key = `${level}/${n}`;
      if (!changed.has(key)) changed.set(key, { level, n, tile });
      if (tile.length === TILE_WIDTH) {
        this.partial.delete(level);
        push(level + 1, perfectRoot(tile), n);
      }
    };
    for (const h of leafHashes) {
      push(0, h, this.size);
      this.size++;
    }
    return [...changed.values()].map(({ level, n, tile }) => ({ level, n, hashes: tile.slice() }));
  }

  /** Serves subtrees from the in-memory partial tiles, falling back to stored tiles. */
  source(reader: TileStore): SubtreeSource {
    return new TileSubtrees({
      tile: async (level, n, need) => {
        const partial = this.partial.get(level);
        const count = Math.floor(this.size / TILE_WIDTH ** level);
        if (partial && n === Math.floor(count / TILE_WIDTH)) return Buffer.concat(partial);
        return reader.tile(level, n, need);
      },
    });
  }
}
