// Holding the log to its history. The console remembers the last checkpoint it verified; every
// newer (or older) signed checkpoint it meets is linked to it by an RFC 9162 consistency proof.
// Two signed checkpoints that no proof can link mean the log showed two different histories:
// that is raised as a fork alarm with both checkpoints kept as evidence.
import { encodeBase64, verifyCheckpoint, verifyConsistency, type CheckpointFacts } from "@kapsel/verify";
import { forkAlarm, lastCheckpoint, raiseForkAlarm, saveLastCheckpoint, type ForkAlarm } from "./checkpoint-store.ts";

/** Asks the server for the consistency proof between two tree sizes (old < new). */
export type ProofSource = (oldSize: bigint, newSize: bigint) => Promise<Uint8Array[]>;

export type LinkResult =
  /** Nothing was remembered yet; this checkpoint is now the reference. */
  | { kind: "first"; facts: CheckpointFacts }
  /** It extends the remembered one (now the reference). */
  | { kind: "extends"; facts: CheckpointFacts; from: bigint }
  | { kind: "same"; facts: CheckpointFacts }
  /** An older checkpoint of the same history (normal for a proof bundle made earlier). */
  | { kind: "older"; facts: CheckpointFacts; latest: bigint }
  | { kind: "fork"; alarm: ForkAlarm }
  /** The link could not be checked (the server gave no proof, or keys changed); not evidence. */
  | { kind: "unchecked"; reason: string };

function fork(logName: string, reason: string, oldText: string, newText: string, proof: readonly Uint8Array[]): LinkResult {
  const alarm: ForkAlarm = {
    logName,
    reason,
    old: oldText,
    new: newText,
    proof: proof.map((h) => `${encodeBase64(h)}\n`).join(""),
    detectedAt: new Date().toISOString(),
  };
  raiseForkAlarm(alarm);
  return { kind: "fork", alarm: forkAlarm(logName) ?? alarm };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Links a signed checkpoint to the remembered one. Requires `candidate` to be a checkpoint of
 * log `logName`; it is verified here against `pinned` like everything else. While a fork alarm
 * stands the reference is never moved.
 */
export async function linkToLast(logName: string, candidate: string, pinned: readonly string[], proofs: ProofSource): Promise<LinkResult> {
  const cand = verifyCheckpoint(candidate, pinned);
  if (!cand.ok) return { kind: "unchecked", reason: `the checkpoint does not verify with the pinned keys: ${cand.message}` };
  const last = lastCheckpoint(logName);
  const frozen = forkAlarm(logName) !== undefined;
  if (!last) {
    if (!frozen) saveLastCheckpoint(logName, candidate, cand.treeSize);
    return { kind: "first", facts: cand };
  }
  const prev = verifyCheckpoint(last.text, pinned);
  if (!prev.ok) return { kind: "unchecked", reason: `the remembered checkpoint no longer verifies with the pinned keys: ${prev.message}` };

  if (cand.treeSize === prev.treeSize) {
    if (sameBytes(cand.rootHash, prev.rootHash)) return { kind: "same", facts: cand };
    return fork(logName, `two signed checkpoints of size ${cand.treeSize} have different root hashes`, last.text, candidate, []);
  }
  const [older, newer, olderText, newerText] =
    cand.treeSize > prev.treeSize ? [prev, cand, last.text, candidate] : [cand, prev, candidate, last.text];
  // Every tree extends the empty tree: there is nothing to prove.
  let proof: Uint8Array[] = [];
  if (older.treeSize > 0n) {
    try {
      proof = await proofs(older.treeSize, newer.treeSize);
    } catch (err) {
      return { kind: "unchecked", reason: `the server gave no consistency proof from size ${older.treeSize} to ${newer.treeSize}: ${String((err as Error).message ?? err)}` };
    }
    const linked = verifyConsistency(olderText, newerText, proof, pinned);
    if (!linked.ok) {
      return fork(
        logName,
        `the checkpoint of size ${newer.treeSize} does not extend the one of size ${older.treeSize} (${linked.code}: ${linked.message})`,
        last.text,
        candidate,
        proof,
      );
    }
  }
  if (cand.treeSize > prev.treeSize) {
    if (!frozen) saveLastCheckpoint(logName, candidate, cand.treeSize);
    return { kind: "extends", facts: cand, from: prev.treeSize };
  }
  return { kind: "older", facts: cand, latest: prev.treeSize };
}
