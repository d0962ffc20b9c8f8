// The three checks an auditor runs (ATTESTATION.md §5, §6, §8). Each returns a value, never
// throws for bad input, and on failure carries a stable code plus a message that starts with the
// step that failed, in the order §5 prescribes.
import { sha256 } from "@noble/hashes/sha2.js";
import { parseProofBundle } from "./bundle.ts";
import { encodeBase64 } from "./base64.ts";
import { bytesEqual, toHex } from "./bytes.ts";
import { openCheckpoint, type Checkpoint } from "./checkpoint.ts";
import { parseConsistencyProof } from "./consistency-proof.ts";
import { VerifyError, failure, type FailureCode, type Outcome } from "./failure.ts";
import { leafHash, rootFromInclusionProof, verifyConsistencyProof } from "./merkle.ts";
import { parseReceipt, type Receipt } from "./receipt.ts";
import type { TextInput } from "./utf8.ts";
import { parseVerifierKey, type VerifierKey } from "./vkey.ts";

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

/** Options of {@link verifyProofBundle}. */
export interface ProofBundleOptions {
  /** The log keys to trust, obtained out of band. */
  readonly trustedKeys: readonly TrustedKey[];
  /** Fail unless the checkpoint carries the signing key's signed time. */
  readonly requireTimestamp?: boolean;
  /** The body bytes that were delivered; if given, their SHA-256 must match the receipt. */
  readonly payload?: Uint8Array;
}

/** Options of {@link verifyCheckpoint}. */
export interface CheckpointOptions {
  readonly requireTimestamp?: boolean;
}

/**
 * Verifies a tlog-proof bundle: parse, receipt form and schema, checkpoint origin and signature,
 * signed time, inclusion of the receipt at `index` under the signed size and root, and the
 * payload if given (ATTESTATION.md §5, in that order). Accepts any input and never throws.
 */
export function verifyProofBundle(text: TextInput, options: ProofBundleOptions): Outcome<BundleFacts> {
  return run((step) => {
    const keys = trustedKeysOf(options.trustedKeys);
    step("bundle");
    const bundle = parseProofBundle(text);
    step("receipt");
    const receipt = parseReceipt(bundle.extra);
    step("checkpoint");
    const facts = checkpointFacts(
      bundle.checkpoint,
      keys,
      options.requireTimestamp === true,
      bundle.checkpointLine,
    );
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
 * is a trusted key's name, a trusted key signed it, and every line claiming a trusted key
 * verifies. Accepts any input and never throws.
 */
export function verifyCheckpoint(
  text: TextInput,
  trustedKeys: readonly TrustedKey[],
  options: CheckpointOptions = {},
): Outcome<CheckpointFacts> {
  return run((step) => {
    const keys = trustedKeysOf(trustedKeys);
    step("checkpoint");
    return { ok: true, ...checkpointFacts(text, keys, options.requireTimestamp === true, 1) };
  });
}

/**
 * Verifies that `newCheckpoint`'s tree extends `oldCheckpoint`'s (ATTESTATION.md §6): both
 * checkpoints verify as in {@link verifyCheckpoint}, share an origin, and the RFC 9162
 * §2.1.4.2 proof (hashes, or text with one base64 hash a line) links their roots. Requires
 * `0 < old size <= new size` (else `PROOF_SHAPE`). Accepts any input and never throws.
 */
export function verifyConsistency(
  oldCheckpoint: TextInput,
  newCheckpoint: TextInput,
  proof: TextInput | readonly Uint8Array[],
  trustedKeys: readonly TrustedKey[],
): Outcome<ConsistencyFacts> {
  return run((step) => {
    const keys = trustedKeysOf(trustedKeys);
    step("old checkpoint");
    const older = checkpointFacts(oldCheckpoint, keys, false, 1);
    step("new checkpoint");
    const newer = checkpointFacts(newCheckpoint, keys, false, 1);
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

function checkpointFacts(
  text: TextInput,
  keys: readonly VerifierKey[],
  requireTimestamp: boolean,
  firstLine: number,
): CheckpointFacts {
  const { checkpoint, signedBy, timestamp } = openCheckpoint(text, keys, { requireTimestamp, firstLine });
  return factsOf(checkpoint, signedBy, timestamp);
}

function factsOf(checkpoint: Checkpoint, signedBy: VerifierKey, timestamp: bigint | null): CheckpointFacts {
  return { origin: checkpoint.origin, treeSize: checkpoint.size, rootHash: checkpoint.rootHash, timestamp, signedBy };
}

function trustedKeysOf(keys: readonly TrustedKey[]): VerifierKey[] {
  if (keys.length === 0) throw new VerifyError("BAD_KEY", "no trusted log key was given");
  return keys.map((key) => (typeof key === "string" ? parseVerifierKey(key) : key));
}

// Names of the checkpoint sub-steps, so "checkpoint signature: …" says which check of the
// checkpoint failed without the reader decoding the code.
const CHECKPOINT_STEP: Partial<Record<FailureCode, string>> = {
  ORIGIN_MISMATCH: "origin",
  NO_TRUSTED_SIGNATURE: "signature",
  BAD_SIGNATURE: "signature",
  BAD_TIMESTAMP: "signed time",
  TIMESTAMP_REQUIRED: "signed time",
};

/**
 * Runs a check written as straight-line code that throws `VerifyError`, turning the first error
 * into a Failure whose message names the step reached. Other exceptions are bugs and propagate.
 */
function run<T extends object>(check: (step: (name: string) => void) => Outcome<T>): Outcome<T> {
  let current = "trusted keys";
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
