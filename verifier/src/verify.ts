// The three checks an auditor runs (ATTESTATION.md §5, §6, §8). Each returns a value, never
// throws for bad input, and on failure carries a stable code plus a message that starts with the
// step that failed, in the order §5 prescribes.
import { sha256 } from "@noble/hashes/sha2.js";
import { parseProofBundle } from "./bundle.ts";
import { encodeBase64 } from "./base64.ts";
import { bytesEqual, toHex } from "./bytes.ts";
import { openCheckpoint, type Checkpoint, type CheckpointPolicy, type WitnessCosignature } from "./checkpoint.ts";
import { parseConsistencyProof } from "./consistency-proof.ts";
import { VerifyError, failure, type FailureCode, type Outcome } from "./failure.ts";
import { leafHash, rootFromInclusionProof, verifyConsistencyProof } from "./merkle.ts";
import { parseReceipt, type Receipt } from "./receipt.ts";
import type { TextInput } from "./utf8.ts";
import { parseVerifierKey, type VerifierKey } from "./vkey.ts";
import { parseWitnessKey, type WitnessKey } from "./witness-key.ts";
import { parseWitnessPolicy, quorumPolicy, type WitnessPolicy } from "./witness-policy.ts";

/** A trusted log key: a vkey string, or one already parsed with `parseVerifierKey`. */
export type TrustedKey = string | VerifierKey;

/** What a valid checkpoint establishes. */
export interface CheckpointFacts {
  /** The log's origin; equals `signedBy.name`. */
  readonly origin: string;
  readonly treeSize: bigint;
  readonly rootHash: Uint8Array;
  /** POSIX seconds the log signed with the checkpoint (type 0x04 line), or `null`. */
  readonly timestamp: bigint | null;
  /** The trusted key whose signature verified. */
  readonly signedBy: VerifierKey;
  /** Verified cosignatures of the witnesses in the policy, if one was given. */
  readonly cosignatures: readonly WitnessCosignature[];
}

/** What a valid proof bundle establishes. */
export interface BundleFacts extends CheckpointFacts {
  /** The receipt, now known to be leaf `index` of the signed tree. */
  readonly receipt: Receipt;
  /** The receipt's exact bytes (the leaf data). */
  readonly receiptBytes: Uint8Array;
  readonly index: bigint;
  /** Whether a payload was given and matched `receipt.payload_sha256`. */
  readonly payloadVerified: boolean;
}

/** What a valid consistency proof establishes. */
export interface ConsistencyFacts {
  readonly old: CheckpointFacts;
  readonly new: CheckpointFacts;
}

/**
 * Which witnesses must have cosigned a checkpoint: a C2SP tlog-policy, or a list of witness
 * vkeys with a k-of-n quorum. Without either, cosignatures are ignored like any unknown line.
 */
export interface WitnessOptions {
  /** A tlog-policy (its text, or parsed with `parseWitnessPolicy`); its `log` lines add trusted log keys. */
  readonly policy?: TextInput | WitnessPolicy;
  /** Witness vkeys (signature type 0x04, as `kapsel-witness vkey` prints them). */
  readonly witnesses?: readonly (string | WitnessKey)[];
  /** How many of `witnesses` must have cosigned; default all of them. */
  readonly quorum?: number;
}

/** Options of {@link verifyProofBundle}. */
export interface ProofBundleOptions extends WitnessOptions {
  /** The log keys to trust, obtained out of band. */
  readonly trustedKeys: readonly TrustedKey[];
  /** Fail unless the checkpoint carries the signing key's signed time. */
  readonly requireTimestamp?: boolean;
  /** The body bytes that were delivered; if given, their SHA-256 must match the receipt. */
  readonly payload?: Uint8Array;
}

/** Options of {@link verifyCheckpoint}. */
export interface CheckpointOptions extends WitnessOptions {
  readonly requireTimestamp?: boolean;
}

/**
 * Verifies a tlog-proof bundle: parse, receipt form and schema, checkpoint origin and signature,
 * signed time, inclusion of the receipt at `index` under the signed size and root, and the
 * payload if given (ATTESTATION.md §5, in that order). Accepts any input and never throws.
 */
export function verifyProofBundle(text: TextInput, options: ProofBundleOptions): Outcome<BundleFacts> {
  return run((step) => {
    const { keys, witnesses } = trustOf(options.trustedKeys, options, step);
    step("bundle");
    const bundle = parseProofBundle(text);
    step("receipt");
    const receipt = parseReceipt(bundle.extra);
    step("checkpoint");
    const facts = checkpointFacts(bundle.checkpoint, keys, {
      requireTimestamp: options.requireTimestamp === true,
      firstLine: bundle.checkpointLine,
      ...(witnesses === undefined ? {} : { witnesses }),
    });
    step("inclusion proof");
    const computed = rootFromInclusionProof(bundle.index, facts.treeSize, leafHash(bundle.extra), bundle.proof);
    if (!bytesEqual(computed, facts.rootHash)) {
      throw new VerifyError(
        "INCLUSION_FAILED",
        `the receipt and the proof lead to root ${encodeBase64(computed)}, but the checkpoint signs root ` +
          `${encodeBase64(facts.rootHash)}: the receipt or the proof is not what the log committed to`,
      );
    }
    step("payload");
    if (options.payload !== undefined) {
      const digest = toHex(sha256(options.payload));
      if (digest !== receipt.payload_sha256) {
        throw new VerifyError(
          "PAYLOAD_MISMATCH",
          `the payload's SHA-256 is ${digest}, the receipt records ${receipt.payload_sha256}`,
        );
      }
    }
    return {
      ok: true,
      ...facts,
      receipt,
      receiptBytes: bundle.extra,
      index: bundle.index,
      payloadVerified: options.payload !== undefined,
    };
  });
}

/**
 * Verifies a signed checkpoint against trusted keys (ATTESTATION.md §5 steps 4–5): its origin
 * is a trusted key's name, a trusted key signed it, every line claiming a trusted key or a
 * policy witness verifies, and the witness quorum (if any) is met. Accepts any input and never
 * throws.
 */
export function verifyCheckpoint(
  text: TextInput,
  trustedKeys: readonly TrustedKey[],
  options: CheckpointOptions = {},
): Outcome<CheckpointFacts> {
  return run((step) => {
    const { keys, witnesses } = trustOf(trustedKeys, options, step);
    step("checkpoint");
    return {
      ok: true,
      ...checkpointFacts(text, keys, {
        requireTimestamp: options.requireTimestamp === true,
        ...(witnesses === undefined ? {} : { witnesses }),
      }),
    };
  });
}

/**
 * Verifies that `newCheckpoint`'s tree extends `oldCheckpoint`'s (ATTESTATION.md §6): both
 * checkpoints verify as in {@link verifyCheckpoint}, share an origin, and the RFC 9162
 * §2.1.4.2 proof (hashes, or text with one base64 hash a line) links their roots. Requires
 * `0 < old size <= new size` (else `PROOF_SHAPE`). Accepts any input and never throws.
 *
 * A witness quorum is required of the new checkpoint only: once the proof links the old tree
 * into the witnessed one, the old checkpoint is part of the history the witnesses vouch for.
 * Cosignature lines of policy witnesses on the old checkpoint must still verify.
 */
export function verifyConsistency(
  oldCheckpoint: TextInput,
  newCheckpoint: TextInput,
  proof: TextInput | readonly Uint8Array[],
  trustedKeys: readonly TrustedKey[],
  options: WitnessOptions = {},
): Outcome<ConsistencyFacts> {
  return run((step) => {
    const { keys, witnesses } = trustOf(trustedKeys, options, step);
    const witnessPolicy = witnesses === undefined ? {} : { witnesses };
    step("old checkpoint");
    const older = checkpointFacts(oldCheckpoint, keys, { ...witnessPolicy, requireQuorum: false });
    step("new checkpoint");
    const newer = checkpointFacts(newCheckpoint, keys, witnessPolicy);
    step("consistency proof");
    if (older.origin !== newer.origin) {
      throw new VerifyError(
        "ORIGIN_MISMATCH",
        `the checkpoints are from different logs ("${older.origin}" and "${newer.origin}")`,
      );
    }
    const hashes = Array.isArray(proof) ? (proof as readonly Uint8Array[]) : parseConsistencyProof(proof as TextInput);
    const result = verifyConsistencyProof(older.treeSize, newer.treeSize, hashes, older.rootHash, newer.rootHash);
    if (!result.ok) throw new VerifyError(result.code, result.message);
    return { ok: true, old: older, new: newer };
  });
}

function checkpointFacts(text: TextInput, keys: readonly VerifierKey[], policy: CheckpointPolicy): CheckpointFacts {
  const { checkpoint, signedBy, timestamp, cosignatures } = openCheckpoint(text, keys, policy);
  return factsOf(checkpoint, signedBy, timestamp, cosignatures);
}

function factsOf(
  checkpoint: Checkpoint,
  signedBy: VerifierKey,
  timestamp: bigint | null,
  cosignatures: readonly WitnessCosignature[],
): CheckpointFacts {
  return { origin: checkpoint.origin, treeSize: checkpoint.size, rootHash: checkpoint.rootHash, timestamp, signedBy, cosignatures };
}

/**
 * The log keys and witness policy a check trusts: the given keys plus the policy's `log` lines.
 * Throws `BAD_POLICY` for conflicting or malformed witness options, `BAD_KEY` for bad keys.
 */
function trustOf(
  trustedKeys: readonly TrustedKey[],
  options: WitnessOptions,
  step: (name: string) => void,
): { keys: VerifierKey[]; witnesses: WitnessPolicy | undefined } {
  step("witness policy");
  const witnesses = witnessPolicyOf(options);
  step("trusted keys");
  const keys = [...trustedKeys.map((key) => (typeof key === "string" ? parseVerifierKey(key) : key)), ...(witnesses?.logs ?? []).map((log) => log.key)];
  if (keys.length === 0) throw new VerifyError("BAD_KEY", "no trusted log key was given");
  return { keys, witnesses };
}

function witnessPolicyOf(options: WitnessOptions): WitnessPolicy | undefined {
  const { policy, witnesses, quorum } = options;
  if (policy !== undefined && (witnesses !== undefined || quorum !== undefined)) {
    throw new VerifyError("BAD_POLICY", "give either a policy or witnesses with a quorum, not both");
  }
  if (policy !== undefined) return typeof policy === "string" || policy instanceof Uint8Array ? parseWitnessPolicy(policy) : policy;
  if (witnesses === undefined || witnesses.length === 0) {
    if (quorum !== undefined) throw new VerifyError("BAD_POLICY", "a quorum needs witness keys");
    return undefined;
  }
  return quorumPolicy(witnesses.map((key) => (typeof key === "string" ? parseWitnessKey(key) : key)), quorum);
}

// Names of the checkpoint sub-steps, so "checkpoint signature: …" says which check of the
// checkpoint failed without the reader decoding the code.
const CHECKPOINT_STEP: Partial<Record<FailureCode, string>> = {
  ORIGIN_MISMATCH: "origin",
  NO_TRUSTED_SIGNATURE: "signature",
  BAD_SIGNATURE: "signature",
  BAD_TIMESTAMP: "signed time",
  TIMESTAMP_REQUIRED: "signed time",
  BAD_POLICY: "witnesses",
  BAD_COSIGNATURE: "witness cosignatures",
  QUORUM_NOT_MET: "witness cosignatures",
};

/**
 * Runs a check written as straight-line code that throws `VerifyError`, turning the first error
 * into a Failure whose message names the step reached. Other exceptions are bugs and propagate.
 */
function run<T extends object>(check: (step: (name: string) => void) => Outcome<T>): Outcome<T> {
  let current = "witness policy";
  try {
    return check((name) => {
      current = name;
    });
  } catch (error) {
    if (!(error instanceof VerifyError)) throw error;
    const sub = current.endsWith("checkpoint") ? CHECKPOINT_STEP[error.code] : undefined;
    return failure(error.code, `${sub === undefined ? current : `${current} ${sub}`}: ${error.message}`);
  }
}
