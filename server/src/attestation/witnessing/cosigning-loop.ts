// One witness's loop: wait for a witnessing target newer than what this witness cosigned (or, on
// the first round after this process becomes the leader, the one it cosigned: see witnessing.ts), send it
// with add-checkpoint (old = the witness's size, with the consistency proof from there), store the
// verified cosignature. A 409 names the witness's real size: resync to it and resend at once (one
// resend per round, so two processes racing cannot ping-pong forever). Other failures back off
// (retry-backoff.ts). A witness ahead of the database or refusing the proof is asked for its
// evidence (witness-evidence.ts), which may stop the log signing.
//
//   idle ──target newer than cosigned──▶ exchanging ──200──▶ idle
//                                          │ 409 ──▶ exchanging (once)
//                                          └ failure ──▶ backing off ──delay──▶ exchanging
import type { Logger } from "../../logger.ts";
import type { StoredCheckpoint } from "../checkpoints.ts";
import { addCheckpoint, type Exchange, type WitnessFailure } from "./witness-client.ts";
import type { ConfiguredWitness } from "./witness-config.ts";
import type { Evidence } from "./witness-evidence.ts";
import type { WitnessedCheckpoints } from "./witnessed-checkpoints.ts";
import type { WitnessMetrics } from "./witness-metrics.ts";
import { witnessBackoffMs } from "./retry-backoff.ts";
import { sleep } from "../../abortable-sleep.ts";

/** What /readyz shows of one witness. */
export interface WitnessStatus {
  readonly name: string;
  /**
   * standby: another process leads the log and talks to witnesses (or this one refuses to sign,
   * so it has nothing to show them); starting: no exchange finished
   * yet; ok: the last one succeeded; failing: it did not.
   */
  readonly state: "standby" | "starting" | "ok" | "failing";
  readonly consecutiveFailures: number;
  readonly lastFailure: { readonly reason: WitnessFailure; readonly at: string } | undefined;
}

export interface CosigningDeps {
  /**
   * Resolves with the current witnessing target once this process leads and the target is larger
   * than `size` (or as large, in a leadership epoch other than `epoch`: the first round of each).
   */
  nextTarget(size: number, epoch: number, signal: AbortSignal): Promise<{ target: StoredCheckpoint; epoch: number }>;
  /** RFC 6962 consistency proof between two sizes of the stored tree (0 < old < new). */
  consistency(oldSize: number, newSize: number): Promise<Buffer[]>;
  witnessed: WitnessedCheckpoints;
  evidence(witness: ConfiguredWitness): Promise<Evidence>;
  /** A witness proved the log published a tree this database does not hold. */
  onProvenFork(reason: string, checkpoint: string): Promise<void>;
  leading(): boolean;
  metrics: WitnessMetrics;
  log: Logger;
  timeoutMs: number;
}

export class CosigningLoop {
  readonly witness: ConfiguredWitness;
  readonly #deps: CosigningDeps;
  /** The witness's size as last learned (from our records, a cosignature or a 409). */
  #size: number | undefined;
  /** The leadership epoch of the last round; -1: none yet, or start afresh. */
  #epoch = -1;
  #failures = 0;
  #lastFailure: WitnessStatus["lastFailure"];
  #ok = false;

  constructor(witness: ConfiguredWitness, deps: CosigningDeps) {
    this.witness = witness;
    this.#deps = deps;
  }

  status(): WitnessStatus {
    return {
      name: this.witness.name,
      state: !this.#deps.leading() ? "standby" : this.#failures > 0 ? "failing" : this.#ok ? "ok" : "starting",
      consecutiveFailures: this.#failures,
      lastFailure: this.#lastFailure,
    };
  }

  /** Runs until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const log = this.#deps.log;
    while (!signal.aborted) {
      try {
        this.#size ??= await this.#deps.witnessed.lastCosignedSize(this.witness);
        const { target, epoch } = await this.#deps.nextTarget(this.#size, this.#epoch, signal);
        this.#epoch = epoch;
        const result = await this.#round(target, signal);
        if (signal.aborted) return;
        if (result.kind === "cosigned") {
          this.#failures = 0;
          this.#ok = true;
          continue;
        }
        await this.#failed(result, signal);
      } catch (err) {
        if (signal.aborted) return;
        // The database (or a bug) failed us, not the witness: wait, then start from our records.
        log.warn({ err, witness: this.witness.name }, "witnessing round failed");
        this.#size = undefined;
        this.#epoch = -1;
        await sleep(witnessBackoffMs(Math.max(1, ++this.#failures)), signal);
      }
    }
  }

  /** One round for `target`: the exchange, one resend after a 409, and the cosignature stored. */
  async #round(target: StoredCheckpoint, signal: AbortSignal): Promise<Exclude<Exchange, { kind: "conflict" }>> {
    const { metrics, log } = this.#deps;
    for (let resend = 0; ; resend++) {
      const oldSize = this.#size ?? 0;
      if (oldSize > target.treeSize) {
        return { kind: "failed", reason: "witness_ahead", detail: `the witness cosigned size ${oldSize}, the checkpoint offered has ${target.treeSize}` };
      }
      const proof = oldSize === 0 || oldSize === target.treeSize ? [] : await this.#deps.consistency(oldSize, target.treeSize);
      const started = performance.now();
      const result = await addCheckpoint(this.witness, { oldSize, proof, note: target.note }, this.#deps.timeoutMs, signal);
      metrics.exchangeSeconds.observe({ witness: this.witness.name }, (performance.now() - started) / 1000);
      if (result.kind === "conflict") {
        log.info({ witness: this.witness.name, ours: oldSize, theirs: result.size }, "witness resync: it has cosigned another size");
        this.#size = result.size;
        if (resend === 0 && result.size <= target.treeSize) continue;
        if (result.size > target.treeSize) {
          return { kind: "failed", reason: "witness_ahead", detail: `the witness cosigned size ${result.size}, the log's latest checkpoint has ${target.treeSize}` };
        }
        return { kind: "failed", reason: "conflict", detail: `409 again after resyncing to size ${oldSize}` };
      }
      if (result.kind === "cosigned") {
        await this.#deps.witnessed.record(target.treeSize, this.witness, result.line, new Date(Number(result.timestamp) * 1000));
        this.#size = target.treeSize;
        metrics.cosignatures.inc({ witness: this.witness.name });
        log.debug({ witness: this.witness.name, tree_size: target.treeSize }, "witness cosigned");
      }
      return result;
    }
  }

  async #failed(result: Exchange & { kind: "failed" }, signal: AbortSignal): Promise<void> {
    const { metrics, log } = this.#deps;
    this.#failures++;
    this.#lastFailure = { reason: result.reason, at: new Date().toISOString() };
    metrics.failed(this.witness.name, result.reason);
    const delay = witnessBackoffMs(this.#failures);
    const line = { witness: this.witness.name, reason: result.reason, detail: result.detail, failures: this.#failures, retry_in_ms: delay };
    if (result.reason === "witness_ahead" || result.reason === "inconsistent") {
      // Either this database lost history or the witness is wrong: ask it for its evidence.
      const evidence = await this.#deps.evidence(this.witness);
      if (evidence.proven) {
        log.error({ ...line, evidence: evidence.checkpoint }, `FORK: ${evidence.reason}`);
        await this.#deps.onProvenFork(evidence.reason, evidence.checkpoint);
      } else {
        log.error({ ...line, evidence: evidence.detail }, "a witness disagrees with the log's tree, without proof");
      }
      // Start again from what our records and the witness say.
      this.#size = undefined;
      this.#epoch = -1;
    } else {
      log.warn(line, "witness exchange failed");
    }
    await sleep(delay, signal);
  }
}
