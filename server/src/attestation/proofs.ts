// Proofs from stored tiles, and the offline proof bundle (C2SP tlog-proof@v1, ATTESTATION.md §4).
import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { KapselError } from "../errors.ts";
import { requireUuid } from "../uuid.ts";
import { latestCheckpoint, toCheckpoint, type StoredCheckpoint } from "./checkpoints.ts";
import { consistencyProof, HASH_SIZE, inclusionProof } from "./merkle.ts";
import { TILE_WIDTH, TileReader, TileSubtrees } from "./tiles.ts";

export const BUNDLE_HEADER = "c2sp.org/tlog-proof@v1";

const leafWithCheckpoint = z.object({
  idx: z.string(),
  receipt: z.instanceof(Buffer),
  tree_size: z.string().nullable(),
  root_hash: z.instanceof(Buffer).nullable(),
  note: z.string().nullable(),
  signed_at: z.date().nullable(),
});

/** The C2SP tlog-proof@v1 text of an inclusion (ATTESTATION.md §4). */
function bundleText(p: Inclusion): string {
  return [
    BUNDLE_HEADER,
    `extra ${p.receipt.toString("base64")}`,
    `index ${p.index}`,
    ...p.proof.map((h) => h.toString("base64")),
    "",
    p.checkpoint.note,
  ].join("\n");
}

export interface Inclusion {
  index: number;
  receipt: Buffer;
  checkpoint: StoredCheckpoint;
  proof: Buffer[];
}

export class Proofs {
  readonly #db: CommonQueryMethods;
  /** Stored tiles only grow, and complete subtrees never change: caches shared by every request. */
  readonly #tiles = new Map<string, Buffer>();
  readonly #roots = new Map<string, Buffer>();
  readonly #retryAfterMs: number;

  constructor(db: CommonQueryMethods, retryAfterMs: number) {
    this.#db = db;
    this.#retryAfterMs = retryAfterMs;
  }

  #source(): TileSubtrees {
    return new TileSubtrees(new TileReader(this.#db, this.#tiles), this.#roots);
  }

  /** The inclusion proof of an attempt's receipt, at the latest or a given signed size. A tenant
   * sees only its own attempts (E3003 otherwise); E3001 while not yet sequenced and signed. */
  async inclusion(tenantId: string, rawAttemptId: string, atSize = 0): Promise<Inclusion> {
    const attemptId = requireUuid(rawAttemptId, "attempt_id");
    // The leaf and the checkpoint in one round trip: most of a proof's latency is round trips.
    const leaf = await this.#db.maybeOne(sql.type(leafWithCheckpoint)`
      SELECT l.idx, l.receipt, c.tree_size, c.root_hash, c.note, c.signed_at
      FROM log_leaves l LEFT JOIN LATERAL (
        SELECT tree_size, root_hash, note, signed_at FROM checkpoints
        ${atSize === 0 ? sql.fragment`ORDER BY tree_size DESC LIMIT 1` : sql.fragment`WHERE tree_size = ${atSize}`}
      ) c ON true
      WHERE l.attempt_id = ${attemptId} AND l.tenant_id = ${tenantId}`);
    if (!leaf) {
      const exists = await this.#db.maybeOne(sql.unsafe`SELECT 1 FROM delivery_attempts WHERE id = ${attemptId} AND tenant_id = ${tenantId}`);
      if (!exists) throw new KapselError("E3003");
      throw new KapselError("E3001", "the attempt is not in a signed checkpoint yet", { retryAfterMs: this.#retryAfterMs });
    }
    const index = Number(leaf.idx);
    if (leaf.tree_size === null) throw new KapselError("E3002", `no signed checkpoint of size ${atSize}`);
    const checkpoint = toCheckpoint({ tree_size: leaf.tree_size, root_hash: leaf.root_hash!, note: leaf.note!, signed_at: leaf.signed_at! });
    if (index >= checkpoint.treeSize) {
      if (atSize === 0) throw new KapselError("E3001", "the attempt is not in a signed checkpoint yet", { retryAfterMs: this.#retryAfterMs });
      throw new KapselError("E3002", `leaf ${index} is not in the tree of size ${atSize}`);
    }
    return { index, receipt: leaf.receipt, checkpoint, proof: await inclusionProof(this.#source(), index, checkpoint.treeSize) };
  }

  async bundle(tenantId: string, attemptId: string): Promise<string> {
    return bundleText(await this.inclusion(tenantId, attemptId));
  }

  /**
   * The bundle of an attempt against a given checkpoint (the witnessed one, its note carrying the
   * cosignatures), or E3001 with `retryAfterMs` while the attempt is not inside it (or there is
   * none yet). A tenant sees only its own attempts (E3003 first, whatever the checkpoint).
   */
  async bundleAt(tenantId: string, rawAttemptId: string, checkpoint: StoredCheckpoint | undefined, retryAfterMs: number): Promise<string> {
    const attemptId = requireUuid(rawAttemptId, "attempt_id");
    const leaf = await this.#db.maybeOne(sql.type(z.object({ idx: z.string(), receipt: z.instanceof(Buffer) }))`
      SELECT idx, receipt FROM log_leaves WHERE attempt_id = ${attemptId} AND tenant_id = ${tenantId}`);
    if (!leaf) {
      const exists = await this.#db.maybeOne(sql.unsafe`SELECT 1 FROM delivery_attempts WHERE id = ${attemptId} AND tenant_id = ${tenantId}`);
      if (!exists) throw new KapselError("E3003");
    }
    const index = leaf ? Number(leaf.idx) : undefined;
    if (!leaf || index === undefined || !checkpoint || index >= checkpoint.treeSize) {
      throw new KapselError("E3001", "the attempt is not in a witnessed checkpoint yet", { retryAfterMs });
    }
    return bundleText({ index, receipt: leaf.receipt, checkpoint, proof: await inclusionProof(this.#source(), index, checkpoint.treeSize) });
  }

  /** RFC 6962 consistency proof; E3002 unless 0 < old ≤ new ≤ latest signed size. */
  async consistency(oldSize: number, newSize: number): Promise<Buffer[]> {
    const latest = await latestCheckpoint(this.#db);
    const max = latest?.treeSize ?? 0;
    if (!(oldSize > 0 && oldSize <= newSize && newSize <= max)) {
      throw new KapselError("E3002", `need 0 < old_size ≤ new_size ≤ ${max}; got ${oldSize} → ${newSize}`);
    }
    return consistencyProof(this.#source(), oldSize, newSize);
  }

  /** A tile's bytes for the tiles read API; undefined when it does not exist at that width. */
  async tile(level: number, n: number, width: number | undefined): Promise<Buffer | undefined> {
    const want = (width ?? TILE_WIDTH) * HASH_SIZE;
    const bytes = await new TileReader(this.#db, this.#tiles).tile(level, n, width);
    return bytes.length < want ? undefined : bytes.subarray(0, want);
  }
}
