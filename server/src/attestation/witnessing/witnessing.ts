// Witnessing, assembled: one cosigning loop per configured witness, all fed the same target — the
// newest committed checkpoint, chosen at most once per KAPSEL_WITNESS_INTERVAL_MS — so that their
// cosignatures land on the same checkpoint and can meet the quorum together (a witness cannot
// cosign an older checkpoint after a newer one). Only the process that leads the sequencer talks
// to witnesses; the others serve what the leader stored. Nothing here is on the path of a
// delivery or of the sequencer's transaction: witnessing only reads committed checkpoints, so a
// slow or absent witness delays the witnessed checkpoint and nothing else.
import type { DatabasePool, DatabaseTransactionConnection } from "slonik";
import type { Registry } from "prom-client";
import type { Logger } from "../../logger.ts";
import { latestCheckpoint, type CheckpointFeed, type StoredCheckpoint } from "../checkpoints.ts";
import type { ForkGuard } from "../fork-guard.ts";
import type { Proofs } from "../proofs.ts";
import { CosigningLoop, type WitnessStatus } from "./cosigning-loop.ts";
import type { WitnessingConfig } from "./witness-config.ts";
import { witnessEvidence } from "./witness-evidence.ts";
import { WitnessMetrics } from "./witness-metrics.ts";
import { WitnessedCheckpoints, type WitnessPosition } from "./witnessed-checkpoints.ts";

/** The witnessing part of /readyz. */
export interface WitnessingReport {
  quorum: number;
  witnessed_tree_size: number | null;
  witnesses: {
    name: string;
    state: WitnessStatus["state"];
    consecutive_failures: number;
    last_failure: { reason: string; at: string } | null;
    cosigned_tree_size: number | null;
    lag_leaves: number;
  }[];
}

export interface WitnessingDeps {
  pool: DatabasePool;
  log: Logger;
  registry: Registry;
  /** Adds a reading of database figures to the log's background metrics refresh. */
  refreshing(refresh: (tx: DatabaseTransactionConnection) => Promise<void>): void;
  feed: CheckpointFeed;
  proofs: Proofs;
  guard: ForkGuard;
  /** Whether this process leads the sequencer now (and may show its checkpoints to witnesses). */
  leading(): boolean;
}

export class Witnessing {
  readonly witnessed: WitnessedCheckpoints;
  readonly #deps: WitnessingDeps;
  readonly #config: WitnessingConfig;
  readonly #log: Logger;
  readonly #loops: CosigningLoop[];
  readonly #waiters = new Set<() => void>();
  readonly #abort = new AbortController();
  #tasks: Promise<void>[] = [];
  /** The checkpoint the loops are asked to get cosigned, and when it was chosen. */
  #target: StoredCheckpoint | undefined;
  #targetAt = 0;
  /** The newest committed checkpoint seen. */
  #latest: StoredCheckpoint | undefined;
  /** Counts the times this process became the leader: each start asks every witness afresh. */
  #epoch = 0;
  #wasLeading = false;
  #positions: { at: number; query: Promise<WitnessPosition[]> } | undefined;

  constructor(deps: WitnessingDeps, config: WitnessingConfig & { origin: string }) {
    this.#deps = deps;
    this.#config = config;
    this.#log = deps.log.child({ component: "witnessing" });
    this.witnessed = new WitnessedCheckpoints(deps.pool, config.witnesses, config.quorum);
    const metrics = new WitnessMetrics(deps.registry, this.witnessed, deps.refreshing);
    this.#loops = config.witnesses.map((witness) => new CosigningLoop(witness, {
      nextTarget: (size, epoch, signal) => this.#nextTarget(size, epoch, signal),
      consistency: (oldSize, newSize) => deps.proofs.consistency(oldSize, newSize),
      witnessed: this.witnessed,
      evidence: (w) => witnessEvidence(deps.pool, w, config.origin, config.timeoutMs),
      onProvenFork: (reason, checkpoint) => deps.guard.refuseWithEvidence(reason, checkpoint),
      leading: deps.leading,
      metrics,
      log: this.#log,
      timeoutMs: config.timeoutMs,
    }));
  }

  get configured(): boolean {
    return this.#loops.length > 0;
  }

  start(): void {
    if (!this.configured) return;
    const signal = this.#abort.signal;
    this.#tasks = [this.#pace(signal), ...this.#loops.map((loop) => loop.run(signal))];
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    this.#wake();
    await Promise.all(this.#tasks);
  }

  /** The /readyz detail. /readyz is public: the database is asked at most once a second for it. */
  async report(): Promise<WitnessingReport> {
    if (!this.#positions || Date.now() - this.#positions.at > 1000) {
      const query = this.witnessed.positions();
      this.#positions = { at: Date.now(), query };
      query.catch(() => {
        if (this.#positions?.query === query) this.#positions = undefined;
      });
    }
    const [positions, latest] = await Promise.all([this.#positions.query, this.witnessed.latest()]);
    return {
      quorum: this.#config.quorum,
      witnessed_tree_size: latest?.treeSize ?? null,
      witnesses: this.#loops.map((loop, i) => {
        const status = loop.status();
        return {
          name: status.name,
          state: status.state,
          consecutive_failures: status.consecutiveFailures,
          last_failure: status.lastFailure ?? null,
          cosigned_tree_size: positions[i]?.cosignedSize ?? null,
          lag_leaves: positions[i]?.lagLeaves ?? 0,
        };
      }),
    };
  }

  /**
   * Chooses targets: the newest checkpoint, once the previous target is at least the interval
   * old. Checkpoints signed in this process arrive through the feed at once; the database is read
   * when the feed is quiet, at least once a second.
   */
  async #pace(signal: AbortSignal): Promise<void> {
    const poll = Math.min(this.#config.intervalMs, 1000);
    let fromFeed = false;
    while (!signal.aborted) {
      let wait = poll;
      try {
        const leading = this.#deps.leading();
        if (leading && !this.#wasLeading) this.#epoch++;
        this.#wasLeading = leading;
        if (leading) {
          if (!fromFeed) this.#see(await latestCheckpoint(this.#deps.pool));
          const latest = this.#latest;
          if (latest && latest.treeSize > (this.#target?.treeSize ?? -1)) {
            const due = this.#targetAt + this.#config.intervalMs - Date.now();
            if (due <= 0) {
              this.#target = latest;
              this.#targetAt = Date.now();
            } else {
              wait = Math.min(wait, due);
            }
          }
        }
        this.#wake();
      } catch (err) {
        this.#log.warn({ err }, "choosing the checkpoint to witness failed");
      }
      const published = await this.#deps.feed.next(wait, signal);
      fromFeed = published !== undefined;
      this.#see(published);
    }
  }

  #see(checkpoint: StoredCheckpoint | undefined): void {
    if (checkpoint && checkpoint.treeSize > (this.#latest?.treeSize ?? -1)) this.#latest = checkpoint;
  }

  #wake(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }

  /**
   * Resolves with the target once it is larger than `size` — or, in a leadership epoch other than
   * `epoch`, as large: the first round after becoming leader asks every witness even about the
   * checkpoint the database says it cosigned, so that a witness that has seen more (the database
   * was restored, or copied) says so before this host has signed much.
   */
  #nextTarget(size: number, epoch: number, signal: AbortSignal): Promise<{ target: StoredCheckpoint; epoch: number }> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const target = this.#target;
        if (signal.aborted) {
          this.#waiters.delete(check);
          reject(signal.reason);
        } else if (this.#deps.leading() && target && (target.treeSize > size || (epoch !== this.#epoch && target.treeSize >= size))) {
          this.#waiters.delete(check);
          resolve({ target, epoch: this.#epoch });
        }
      };
      this.#waiters.add(check);
      check();
    });
  }
}
