// The fork guard: the sequencer never signs a checkpoint that contradicts one the log already
// published. Restoring the database from a backup, or pointing a host at a copy of it, hands the
// sequencer an older (or different) tree under the same key; signing on would publish new roots
// for sizes already published — a fork that every monitor and witness would rightly call
// misbehaviour. So before each checkpoint the guard checks that the tree being extended contains
//   - this host's high-water mark: the last checkpoint this host signed, kept in a file outside
//     the database (high-water-file.ts), and
//   - the largest checkpoint any witness cosigned, per the database;
// and witnesses that prove the log published a tree this database does not hold (see
// witnessing/witness-evidence.ts) stop it too. A refusal is loud (error log, metrics, /readyz not
// ready) and sticky: it lasts until an operator restarts the process with the right database, or —
// having accepted that the log forked — removes the high-water file (docs/witnessing.md §7).
//
// The file is written in two phases around each commit, so that a crash at any point leaves it
// saying something true:
//   before COMMIT: {confirmed: last committed, pending: the new checkpoint}
//   after COMMIT:  {confirmed: the new checkpoint, pending: none}
// On the next check the database decides a leftover pending one: if the database's tree has that
// size and root, it committed (crash between commit and confirm) and becomes the high-water mark;
// otherwise it never committed (crash or rollback before commit) and was never published.
import type { Counter, Gauge } from "prom-client";
import type { CommonQueryMethods } from "slonik";
import type { Logger } from "../logger.ts";
import { HighWaterFile, type HighWaterState, type TreeHead } from "./high-water-file.ts";
import { vkey, type LogKey } from "./log-key.ts";
import { rootAt } from "./merkle.ts";
import { LogStorageDamaged, TileReader, TileSubtrees } from "./tiles.ts";
import { largestCosignedCheckpoint } from "./witnessing/witnessed-checkpoints.ts";

/** Why signing stopped: a bounded label for metrics. */
export type RefusalKind = "database_behind" | "root_mismatch" | "witnessed_checkpoint" | "witness_evidence" | "state_file";

export interface Refusal {
  readonly kind: RefusalKind;
  readonly reason: string;
  readonly since: Date;
}

/** Thrown by {@link ForkGuard.check}: this batch must not be signed. */
export class SigningRefused extends Error {
  readonly refusal: Refusal;

  constructor(refusal: Refusal) {
    super(refusal.reason);
    this.refusal = refusal;
    this.name = "SigningRefused";
  }
}

export interface ForkGuardMetrics {
  refusals: Counter<"reason">;
  refused: Gauge;
}

/** How often a standing refusal is logged again. */
const REMIND_MS = 60_000;

export class ForkGuard {
  readonly #dir: string;
  readonly #origin: string;
  /** The file of the key signing now (chosen at the first check, changed with the key). */
  #file: HighWaterFile | undefined;
  readonly #log: Logger;
  readonly #metrics: ForkGuardMetrics;
  #state: HighWaterState | undefined;
  /** The database tree size last checked in full (a batch at that size needs no new check). */
  #verified: number | undefined;
  #refusal: Refusal | undefined;
  #remindedAt = 0;
  #passed = false;

  /** A guard keeping its high-water files in `dir` (the data dir) for the log `origin`. */
  constructor(dir: string, origin: string, log: Logger, metrics: ForkGuardMetrics) {
    this.#dir = dir;
    this.#origin = origin;
    this.#log = log.child({ component: "fork-guard" });
    this.#metrics = metrics;
  }

  get refusal(): Refusal | undefined {
    return this.#refusal;
  }

  /**
   * True once a full check has passed in this process and nothing refuses: the tree is the one
   * this log published, so its checkpoints may be shown to witnesses.
   */
  get vetted(): boolean {
    return this.#passed && this.#refusal === undefined;
  }

  /**
   * Checks that the database's tree (of `size` leaves, read under the sequencer's lock through
   * `db`) contains everything the log signing with `key` is known to have published. Requires
   * the caller to hold log_state's row lock. Throws {@link SigningRefused} when it does not (and
   * from then on).
   */
  async check(db: CommonQueryMethods, size: number, key: LogKey): Promise<void> {
    if (this.#refusal) throw new SigningRefused(this.#refusal);
    const signer = vkey(key.name, key.publicKey);
    if (this.#file?.vkey !== signer) {
      this.#file = new HighWaterFile(this.#dir, this.#origin, signer);
      this.#state = undefined;
      this.#verified = undefined;
    }
    if (size === this.#verified) return;
    const file = this.#file;
    let state: HighWaterState;
    try {
      // Read again on every full check: another process on this host may have signed meanwhile.
      state = await file.load();
    } catch (err) {
      throw this.#refuse("state_file", `the high-water file is unusable: ${(err as Error).message}`);
    }
    if (state.refused) {
      this.#refusal = { kind: "witness_evidence", reason: state.refused.reason, since: new Date(state.refused.since) };
      this.#log.error({ file: file.path, evidence: state.refused.evidence }, `REFUSING TO SIGN (recorded ${state.refused.since}): ${state.refused.reason}`);
      this.#metrics.refused.set(1);
      throw new SigningRefused(this.#refusal);
    }
    const tree = new TileSubtrees(new TileReader(db));
    const rootOf = async (n: number): Promise<Buffer | undefined> => {
      try {
        return await rootAt(tree, n);
      } catch (err) {
        if (err instanceof LogStorageDamaged) return undefined;
        throw err;
      }
    };
    let { confirmed } = state;
    if (state.pending) {
      const committed = size >= state.pending.size && (await rootOf(state.pending.size))?.equals(state.pending.root) === true;
      if (committed) confirmed = state.pending;
      else this.#log.info({ size: state.pending.size }, "the checkpoint written as pending before a crash or failed commit was never committed");
    }
    if (confirmed) {
      if (size < confirmed.size) {
        throw this.#refuse("database_behind",
          `the database's tree has ${size} leaves, but this host signed a checkpoint of size ${confirmed.size} (root ${confirmed.root.toString("base64")}): ` +
          "the database is older than the log it published (restored from a backup?) or is another database; signing now would give published sizes new roots");
      }
      const root = await rootOf(confirmed.size);
      if (!root?.equals(confirmed.root)) {
        throw this.#refuse("root_mismatch",
          `the database's tree of size ${confirmed.size} has root ${root?.toString("base64") ?? "(tiles missing)"}, but this host signed root ` +
          `${confirmed.root.toString("base64")} at that size: the database holds another history (a copy that diverged, or a restore that was written to since)`);
      }
    } else if (size > 0) {
      this.#log.info({ file: file.path, size }, "no high-water mark on this host yet: trusting the database's tree as it stands (first use); witnesses check it on their next round");
      const root = await rootOf(size);
      if (root) confirmed = { size, root };
    }
    const cosigned = await largestCosignedCheckpoint(db);
    if (cosigned) {
      const root = cosigned.size <= size ? await rootOf(cosigned.size) : undefined;
      if (!root?.equals(cosigned.root)) {
        throw this.#refuse("witnessed_checkpoint",
          `witnesses cosigned the checkpoint of size ${cosigned.size} (root ${cosigned.root.toString("base64")}), which the database's tree of size ${size} does not contain`);
      }
    }
    await this.#save({ confirmed, pending: undefined, refused: undefined });
    this.#verified = size;
    this.#passed = true;
  }

  /** Records `next` as pending before its transaction commits. Requires a passed {@link check}. */
  async beforeCommit(next: TreeHead): Promise<void> {
    await this.#save({ ...this.#state!, pending: next });
  }

  /**
   * `next` (recorded by {@link beforeCommit}) committed: it is the new high-water mark. Never
   * lowers the mark, and keeps a larger pending checkpoint (batches of one process may overlap,
   * queued on the database's row lock).
   */
  async committed(next: TreeHead): Promise<void> {
    const state = this.#state!;
    const confirmed = state.confirmed && state.confirmed.size > next.size ? state.confirmed : next;
    const pending = state.pending && state.pending.size > next.size ? state.pending : undefined;
    if (!pending) this.#verified = confirmed.size;
    await this.#save({ confirmed, pending, refused: undefined });
  }

  /** The batch failed (maybe during COMMIT): the next check asks the database what happened. */
  failed(): void {
    this.#verified = undefined;
  }

  /**
   * Stops signing for good because a witness proved the log published a tree this database does
   * not hold. Persisted, so a restart does not forget it; `evidence` is kept with it.
   */
  async refuseWithEvidence(reason: string, evidence: string): Promise<void> {
    if (this.#refusal) return;
    this.#refuse("witness_evidence", reason, evidence);
    const file = this.#file;
    if (!file) return; // nothing signed in this process yet: the witnesses will say it again after a restart
    const state = this.#state ?? (await file.load().catch(() => undefined));
    await file
      .save({ confirmed: state?.confirmed, pending: state?.pending, refused: { reason, since: this.#refusal!.since.toISOString(), evidence } })
      .catch((err: unknown) => this.#log.error({ err, file: file.path }, "could not record the refusal in the high-water file"));
  }

  /** Logs a standing refusal again, at most once a minute (each skipped batch calls this). */
  remind(): void {
    if (!this.#refusal || Date.now() - this.#remindedAt < REMIND_MS) return;
    this.#remindedAt = Date.now();
    this.#log.error({ file: this.#file?.path, since: this.#refusal.since.toISOString() }, `REFUSING TO SIGN: ${this.#refusal.reason}`);
  }

  async #save(state: HighWaterState): Promise<void> {
    // A refusal may have come (from a witness's proof) while a check or batch was under way: it
    // must not be overwritten, and that batch must not commit.
    if (this.#refusal) throw new SigningRefused(this.#refusal);
    try {
      await this.#file!.save(state);
    } catch (err) {
      throw this.#refuse("state_file", `cannot write the high-water file ${this.#file!.path}: ${(err as Error).message}`);
    }
    this.#state = state;
  }

  #refuse(kind: RefusalKind, reason: string, evidence?: string): SigningRefused {
    this.#refusal = { kind, reason, since: new Date() };
    this.#remindedAt = Date.now();
    this.#metrics.refusals.inc({ reason: kind });
    this.#metrics.refused.set(1);
    this.#log.error({ file: this.#file?.path, kind, ...(evidence === undefined ? {} : { evidence }) }, `REFUSING TO SIGN: ${reason}`);
    return new SigningRefused(this.#refusal);
  }
}
