// checkpoint_cosignatures: what each witness cosigned, and the witnessed checkpoint — the latest
// checkpoint whose cosignatures meet the quorum — with those lines appended to its note, so that
// `@kapsel/verify` with the same witnesses and quorum accepts it offline. The only writer of the
// table. Only configured witnesses count: removing one from KAPSEL_WITNESSES stops its old lines
// from being served or counted.
import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { toCheckpoint, type StoredCheckpoint } from "../checkpoints.ts";
import type { TreeHead } from "../high-water-file.ts";
import type { ConfiguredWitness } from "./witness-config.ts";

/** A checkpoint with the cosignature lines of the witnesses that cosigned it. */
export interface WitnessedCheckpoint extends StoredCheckpoint {
  /** Policy names of the witnesses whose lines are appended to `note`. */
  readonly cosignedBy: readonly string[];
}

/** Where one witness stands, for metrics and /readyz. */
export interface WitnessPosition {
  readonly witness: ConfiguredWitness;
  /** Largest tree size it cosigned (undefined: none yet). */
  readonly cosignedSize: number | undefined;
  /** Seconds the oldest checkpoint it has not cosigned has been waiting (0: none waits). */
  readonly lagSeconds: number;
  /** Leaves in the latest checkpoint beyond the one it cosigned. */
  readonly lagLeaves: number;
}

/** How long one answer of {@link WitnessedCheckpoints.latest} is reused (the route's max-age is 1 s). */
export const LATEST_REUSE_MS = 250;

const witnessedRow = z.object({
  tree_size: z.string(),
  root_hash: z.instanceof(Buffer),
  note: z.string(),
  signed_at: z.date(),
  witnesses: z.array(z.string()),
  lines: z.array(z.string()),
});

export class WitnessedCheckpoints {
  readonly #db: CommonQueryMethods;
  readonly #witnesses: readonly ConfiguredWitness[];
  readonly #quorum: number;
  readonly #vkeys: string[];
  #latest: { at: number; query: Promise<WitnessedCheckpoint | undefined> } | undefined;

  constructor(db: CommonQueryMethods, witnesses: readonly ConfiguredWitness[], quorum: number) {
    this.#db = db;
    this.#witnesses = witnesses;
    this.#quorum = quorum;
    this.#vkeys = witnesses.map((w) => w.key.vkey);
  }

  /** Stores a verified cosignature line of `witness` on the checkpoint of `treeSize`. */
  async record(treeSize: number, witness: ConfiguredWitness, line: string, cosignedAt: Date): Promise<void> {
    await this.#db.query(sql.unsafe`
      INSERT INTO checkpoint_cosignatures (tree_size, witness, line, cosigned_at)
      VALUES (${treeSize}, ${witness.key.vkey}, ${line}, ${cosignedAt.toISOString()})
      ON CONFLICT (tree_size, witness) DO UPDATE SET line = excluded.line, cosigned_at = excluded.cosigned_at, received_at = now()`);
  }

  /** The largest tree size `witness` cosigned, per this database (0 when none). */
  async lastCosignedSize(witness: ConfiguredWitness): Promise<number> {
    const size = await this.#db.maybeOneFirst(sql.type(z.object({ s: z.string().nullable() }))`
      SELECT max(tree_size)::text AS s FROM checkpoint_cosignatures WHERE witness = ${witness.key.vkey}`);
    return size === null ? 0 : Number(size);
  }

  /**
   * The latest checkpoint meeting the quorum, its note carrying every configured witness's line.
   * Public routes ask for it on every request: concurrent callers share one query, and an answer
   * serves for {@link LATEST_REUSE_MS}.
   */
  latest(): Promise<WitnessedCheckpoint | undefined> {
    const now = Date.now();
    if (!this.#latest || now - this.#latest.at > LATEST_REUSE_MS) {
      const query = this.queryLatest();
      this.#latest = { at: now, query };
      // A failure is not kept: the next caller asks again.
      query.catch(() => {
        if (this.#latest?.query === query) this.#latest = undefined;
      });
    }
    return this.#latest.query;
  }

  /** The same, asked now (of `db`, by default the pool). */
  async queryLatest(db: CommonQueryMethods = this.#db): Promise<WitnessedCheckpoint | undefined> {
    if (this.#quorum === 0) return undefined;
    // No checkpoint above the k-th largest of the witnesses' last cosigned sizes can have k
    // cosignatures. Starting there, the backward walk over the primary key stops at once in the
    // usual case (witnesses share targets), also while a witness has been down for a long time
    // and the others kept cosigning checkpoints that cannot meet the quorum.
    const row = await db.maybeOne(sql.type(witnessedRow)`
      WITH tops AS (
        SELECT (SELECT max(tree_size) FROM checkpoint_cosignatures x WHERE x.witness = v.witness) AS top
        FROM unnest(${sql.array(this.#vkeys, "text")}) AS v (witness)
      ), bound AS (
        SELECT top FROM tops WHERE top IS NOT NULL ORDER BY top DESC OFFSET ${this.#quorum - 1} LIMIT 1
      ), w AS (
        SELECT tree_size FROM checkpoint_cosignatures
        WHERE witness = ANY (${sql.array(this.#vkeys, "text")}) AND tree_size <= (SELECT top FROM bound)
        GROUP BY tree_size HAVING count(*) >= ${this.#quorum}
        ORDER BY tree_size DESC LIMIT 1
      )
      SELECT c.tree_size, c.root_hash, c.note, c.signed_at,
        array_agg(x.witness ORDER BY array_position(${sql.array(this.#vkeys, "text")}, x.witness)) AS witnesses,
        array_agg(x.line ORDER BY array_position(${sql.array(this.#vkeys, "text")}, x.witness)) AS lines
      FROM w JOIN checkpoints c USING (tree_size)
      JOIN checkpoint_cosignatures x ON x.tree_size = c.tree_size AND x.witness = ANY (${sql.array(this.#vkeys, "text")})
      GROUP BY c.tree_size, c.root_hash, c.note, c.signed_at`);
    if (!row) return undefined;
    const base = toCheckpoint(row);
    return {
      ...base,
      note: base.note + row.lines.join(""),
      cosignedBy: row.witnesses.map((vkey) => this.#witnesses.find((w) => w.key.vkey === vkey)!.name),
    };
  }

  /** Per configured witness: what it cosigned and how far behind the log it is. */
  async positions(db: CommonQueryMethods = this.#db): Promise<WitnessPosition[]> {
    if (this.#witnesses.length === 0) return [];
    const rows = await db.any(sql.type(z.object({ witness: z.string(), size: z.string().nullable(), lag_seconds: z.number(), lag_leaves: z.string() }))`
      SELECT v.witness, p.size::text AS size,
        coalesce((SELECT extract(epoch FROM now() - c.signed_at) FROM checkpoints c
                  WHERE c.tree_size > coalesce(p.size, -1) ORDER BY c.tree_size LIMIT 1), 0)::float8 AS lag_seconds,
        greatest(coalesce((SELECT tree_size FROM log_state), 0) - coalesce(p.size, 0), 0)::text AS lag_leaves
      FROM unnest(${sql.array(this.#vkeys, "text")}) AS v (witness)
      LEFT JOIN LATERAL (SELECT max(tree_size) AS size FROM checkpoint_cosignatures WHERE witness = v.witness) p ON true`);
    return rows.map((r) => ({
      witness: this.#witnesses.find((w) => w.key.vkey === r.witness)!,
      cosignedSize: r.size === null ? undefined : Number(r.size),
      lagSeconds: Math.max(0, r.lag_seconds),
      lagLeaves: Number(r.lag_leaves),
    }));
  }
}

/**
 * The largest checkpoint any witness ever cosigned, whoever is configured now: the log showed it
 * to someone outside, so the tree the sequencer extends must contain it (the fork guard's check).
 */
export async function largestCosignedCheckpoint(db: CommonQueryMethods): Promise<TreeHead | undefined> {
  const row = await db.maybeOne(sql.type(z.object({ tree_size: z.string(), root_hash: z.instanceof(Buffer) }))`
    SELECT c.tree_size, c.root_hash FROM checkpoints c
    WHERE c.tree_size = (SELECT max(tree_size) FROM checkpoint_cosignatures)`);
  return row ? { size: Number(row.tree_size), root: row.root_hash } : undefined;
}
