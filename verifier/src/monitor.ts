// One round of monitoring a log: fetch its latest checkpoint, verify it (log key, witness quorum),
// and prove it extends the last checkpoint this monitor accepted, with a consistency proof built
// from the log's public tiles. Anything else — a bad signature, a smaller tree, another root at
// the same size, a proof that fails — is the log misbehaving, reported with both checkpoints as
// evidence. I/O comes in through small interfaces, so this runs in browsers too.
import { decodeUtf8 } from "./utf8.ts";
import { VerifyError, failure, type Failure } from "./failure.ts";
import { encodeBase64 } from "./base64.ts";
import { LogAccessError } from "./log-client.ts";
import { consistencyProofFromTiles, type TileSource } from "./tile-proofs.ts";
import { verifyCheckpoint, verifyConsistency, type CheckpointFacts } from "./verify.ts";
import type { VerifierKey } from "./vkey.ts";
import type { WitnessPolicy } from "./witness-policy.ts";

/** A checkpoint the monitor has verified and accepted, with its note text verbatim. */
export interface FollowedCheckpoint {
  readonly note: string;
  readonly facts: CheckpointFacts;
}

/** What the monitor trusts: the log's keys and, optionally, a witness policy. */
export interface MonitorTrust {
  readonly keys: readonly VerifierKey[];
  readonly policy?: WitnessPolicy | undefined;
}

/** Where the monitor reads the log: its latest checkpoint and its hash tiles. */
export interface LogReader {
  checkpoint(): Promise<Uint8Array>;
  tile: TileSource;
}

/** The two checkpoints (and the proof, if one was built) that show the log misbehaved. */
export interface Evidence {
  /** The checkpoint the monitor had accepted before, if any. */
  readonly stored: string | undefined;
  /** What the log served this round. */
  readonly served: string;
  /** The consistency proof built from the log's tiles, when one was. */
  readonly proof?: readonly Uint8Array[];
}

export type RoundResult =
  | { readonly kind: "started"; readonly latest: FollowedCheckpoint }
  | { readonly kind: "unchanged"; readonly latest: FollowedCheckpoint }
  | { readonly kind: "advanced"; readonly previous: FollowedCheckpoint; readonly latest: FollowedCheckpoint; readonly proof: readonly Uint8Array[] }
  | { readonly kind: "misbehaved"; readonly failure: Failure; readonly evidence: Evidence };

/**
 * Runs one round against `log`, from the checkpoint accepted last (`stored`, undefined on the
 * first run: the first checkpoint is trusted on first use, like an SSH host key). Resolves with
 * the verdict; rejects with `LogAccessError` when the log cannot be read (nothing was learned).
 */
export async function followLog(log: LogReader, stored: FollowedCheckpoint | undefined, trust: MonitorTrust): Promise<RoundResult> {
  const servedBytes = await log.checkpoint();
  const served = decodeUtf8(servedBytes) ?? new TextDecoder().decode(servedBytes);
  const options = trust.policy === undefined ? {} : { policy: trust.policy };
  const misbehaved = (result: Failure, proof?: readonly Uint8Array[]): RoundResult => ({
    kind: "misbehaved",
    failure: result,
    evidence: { stored: stored?.note, served, ...(proof === undefined ? {} : { proof }) },
  });

  const verified = verifyCheckpoint(servedBytes, trust.keys, options);
  if (!verified.ok) return misbehaved(verified);
  const latest: FollowedCheckpoint = { note: served, facts: verified };
  if (stored === undefined) return { kind: "started", latest };

  const before = stored.facts;
  if (verified.origin !== before.origin) {
    return misbehaved(failure("ORIGIN_MISMATCH", `the log at this URL was "${before.origin}" and now serves "${verified.origin}"`));
  }
  if (verified.treeSize < before.treeSize) {
    return misbehaved(
      failure("CONSISTENCY_FAILED", `the log went back from size ${before.treeSize} to size ${verified.treeSize}: a signed tree never shrinks`),
    );
  }
  if (verified.treeSize === before.treeSize) {
    const same = encodeBase64(verified.rootHash) === encodeBase64(before.rootHash);
    if (!same) {
      return misbehaved(
        failure(
          "CONSISTENCY_FAILED",
          `the log signed two different trees of size ${verified.treeSize} (roots ${encodeBase64(before.rootHash)} and ${encodeBase64(verified.rootHash)}): a fork`,
        ),
      );
    }
    return { kind: "unchanged", latest };
  }

  let proof: Uint8Array[];
  try {
    proof = await consistencyProofFromTiles(log.tile, before.treeSize, verified.treeSize);
  } catch (error) {
    if (error instanceof VerifyError) throw new LogAccessError(`the log served a malformed tile: ${error.message}`);
    throw error;
  }
  const consistent = verifyConsistency(stored.note, servedBytes, proof, trust.keys, options);
  if (!consistent.ok) {
    return misbehaved(
      failure(
        consistent.code,
        `the tree of size ${verified.treeSize} does not extend the tree of size ${before.treeSize} accepted earlier (${consistent.message})`,
      ),
      proof,
    );
  }
  return { kind: "advanced", previous: stored, latest, proof };
}
