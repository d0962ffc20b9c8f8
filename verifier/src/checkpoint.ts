// Kapsel checkpoints (ATTESTATION.md §3): a C2SP tlog-checkpoint whose text is exactly origin,
// tree size and root hash, signed by the log's Ed25519 key (0x01), usually carrying the log's
// signed time (0x04), and possibly cosigned by witnesses (0x04 lines of their own keys).
// Extension lines are refused: Kapsel never writes them and the tlog-checkpoint spec notes no
// monitor can audit them.
import { decodeBase64 } from "./base64.ts";
import { parseUint64 } from "./decimal.ts";
import { VerifyError } from "./failure.ts";
import { SIGNATURE_TYPE_COSIGNATURE, SIGNATURE_TYPE_ED25519, isValidKeyName, keyIdHex } from "./key-id.ts";
import { HASH_SIZE } from "./merkle.ts";
import { bytesEqual } from "./bytes.ts";
import { cosignatureTimeOf } from "./cosignature.ts";
import { ed25519NoteVerifier, openNote, parseNote, type CheckedSignature, type NoteVerifier } from "./note.ts";
import { timeNoteVerifier } from "./signed-time.ts";
import type { TextInput } from "./utf8.ts";
import type { VerifierKey } from "./vkey.ts";
import { witnessNoteVerifier, type WitnessKey } from "./witness-key.ts";
import { explainQuorum, quorumMet, type PolicyWitness, type WitnessPolicy } from "./witness-policy.ts";

/** The signed tree head a checkpoint states. */
export interface Checkpoint {
  /** The log's identity; equals the name of the log's key. */
  readonly origin: string;
  /** Number of leaves. */
  readonly size: bigint;
  /** RFC 6962 root hash of the first `size` leaves. */
  readonly rootHash: Uint8Array;
  /** The signed note text (three lines, final newline included). */
  readonly text: string;
}

/** A checkpoint whose log signature has been verified. */
export interface VerifiedCheckpoint {
  readonly checkpoint: Checkpoint;
  /** The trusted key whose 0x01 signature verified. */
  readonly signedBy: VerifierKey;
  /** POSIX seconds from that key's verified 0x04 line, or `null` if it has none. */
  readonly timestamp: bigint | null;
  /** The verified cosignatures of the policy's witnesses (none without a policy). */
  readonly cosignatures: readonly WitnessCosignature[];
}

/** A witness cosignature that verified. */
export interface WitnessCosignature {
  /** The witness's name in the policy. */
  readonly witness: string;
  readonly key: WitnessKey;
  /** POSIX seconds at which the witness cosigned. */
  readonly timestamp: bigint;
}

/** Policy for {@link openCheckpoint}. */
export interface CheckpointPolicy {
  /** Fail with `TIMESTAMP_REQUIRED` unless the signing key also signed a time. */
  readonly requireTimestamp?: boolean;
  /** Line number of the checkpoint's first line inside a larger file, for messages. */
  readonly firstLine?: number;
  /** Witnesses whose cosignature lines are checked; a line of theirs that fails rejects the checkpoint. */
  readonly witnesses?: WitnessPolicy;
  /** Whether the witnesses' quorum must be met (default true when `witnesses` is given). */
  readonly requireQuorum?: boolean;
}

/**
 * Parses a checkpoint's note text. Accepts any string; throws `VerifyError` `PARSE_ERROR`
 * unless it is exactly three newline-terminated lines: an origin that is a valid key name, a u64
 * in canonical decimal, and the base64 of a 32-byte hash.
 */
export function parseCheckpointText(text: string, firstLine = 1): Checkpoint {
  const lines = text.split("\n");
  if (lines.length !== 4 || lines[3] !== "") {
    throw new VerifyError(
      "PARSE_ERROR",
      `line ${firstLine}: checkpoint text must be exactly three lines (origin, size, root), found ${lines.length - 1}`,
    );
  }
  const [origin, sizeText, rootText] = lines as [string, string, string];
  if (!isValidKeyName(origin)) {
    throw new VerifyError("PARSE_ERROR", `line ${firstLine}: origin "${origin}" is empty or has a space or "+"`);
  }
  const size = parseUint64(sizeText);
  if (size === undefined) {
    throw new VerifyError("PARSE_ERROR", `line ${firstLine + 1}: tree size "${sizeText}" is not a decimal u64 without leading zeros`);
  }
  const rootHash = decodeBase64(rootText);
  if (rootHash === undefined || rootHash.length !== HASH_SIZE) {
    throw new VerifyError("PARSE_ERROR", `line ${firstLine + 2}: root hash is not base64 of 32 bytes`);
  }
  return { origin, size, rootHash, text };
}

/**
 * Opens a signed checkpoint under ATTESTATION.md §5 steps 4–5, then checks witness
 * cosignatures against `policy.witnesses` if given. Requires parsed trusted keys (possibly
 * several, for key rotation); throws `VerifyError` with `PARSE_ERROR`, `ORIGIN_MISMATCH` (no
 * trusted key is named like the origin), `BAD_SIGNATURE` (a 0x01 line of a trusted key does not
 * verify), `BAD_TIMESTAMP` (a 0x04 line of a trusted key does not verify),
 * `NO_TRUSTED_SIGNATURE`, `TIMESTAMP_REQUIRED`, `BAD_POLICY` (a witness key is a trusted log
 * key), `BAD_COSIGNATURE` (a line claiming a policy witness's key does not verify) or
 * `QUORUM_NOT_MET`.
 */
export function openCheckpoint(
  input: TextInput,
  trustedKeys: readonly VerifierKey[],
  policy: CheckpointPolicy = {},
): VerifiedCheckpoint {
  const firstLine = policy.firstLine ?? 1;
  const note = parseNote(input, { firstLine });
  const checkpoint = parseCheckpointText(note.text, firstLine);
  const logKeys = trustedKeys.filter((key) => key.name === checkpoint.origin);
  if (logKeys.length === 0) {
    const names = [...new Set(trustedKeys.map((key) => key.name))].join(", ");
    throw new VerifyError("ORIGIN_MISMATCH", `checkpoint origin "${checkpoint.origin}" is not the trusted log (${names})`);
  }
  const witnesses = policy.witnesses?.witnesses ?? [];
  for (const witness of witnesses) {
    if (trustedKeys.some((key) => bytesEqual(key.publicKey, witness.key.publicKey))) {
      throw new VerifyError("BAD_POLICY", `witness ${witness.name} (${witness.key.vkey}) uses a trusted log key: a log cannot witness itself`);
    }
  }

  const logVerifiers = trustedKeys.flatMap((key) => [ed25519NoteVerifier(key), timeNoteVerifier(key)]);
  const witnessOf = new Map<NoteVerifier, PolicyWitness>(witnesses.map((w) => [witnessNoteVerifier(w.key), w]));
  const opened = openNote(note, [...logVerifiers, ...witnessOf.keys()]);
  // A bad log signature is reported before a bad time line: if the text itself was edited, both
  // fail, and the log signature is the one that says so. Witness lines come last for the same reason.
  const logFailures = opened.failed.filter((c) => !witnessOf.has(c.verifier));
  const badSignature = logFailures.find((c) => c.verifier.type === SIGNATURE_TYPE_ED25519);
  if (badSignature !== undefined) {
    throw new VerifyError("BAD_SIGNATURE", `${describe(badSignature)} does not verify over the checkpoint text`);
  }
  const badTime = logFailures.find((c) => c.verifier.type === SIGNATURE_TYPE_COSIGNATURE);
  if (badTime !== undefined) {
    throw new VerifyError("BAD_TIMESTAMP", `${describe(badTime)} (signed time, type 0x04) does not verify`);
  }

  const signers = logKeys.filter((key) =>
    opened.verified.some((c) => c.verifier.type === SIGNATURE_TYPE_ED25519 && c.verifier.keyId === key.keyId),
  );
  if (signers.length === 0) {
    throw new VerifyError(
      "NO_TRUSTED_SIGNATURE",
      `no signature line of checkpoint "${checkpoint.origin}" is from a trusted key (${logKeys.map((k) => k.vkey).join(", ")})`,
    );
  }
  // With several trusted keys (rotation), report the first signer that also signed a time.
  const timed = signers
    .map((key) => ({
      key,
      time: opened.verified.find(
        (c) => !witnessOf.has(c.verifier) && c.verifier.type === SIGNATURE_TYPE_COSIGNATURE && c.verifier.keyId === key.timeKeyId && c.verifier.name === key.name,
      ),
    }))
    .find((candidate) => candidate.time !== undefined);
  if (timed === undefined && policy.requireTimestamp === true) {
    throw new VerifyError("TIMESTAMP_REQUIRED", "the checkpoint has no signed time (0x04 line) from its signing key");
  }

  const badCosignature = opened.failed.find((c) => witnessOf.has(c.verifier));
  if (badCosignature !== undefined) {
    const witness = witnessOf.get(badCosignature.verifier)!;
    throw new VerifyError(
      "BAD_COSIGNATURE",
      `line ${badCosignature.signature.line} claims witness ${witness.name} (${witness.key.vkey}) but does not verify`,
    );
  }
  const cosignatures = opened.verified.flatMap((c): WitnessCosignature[] => {
    const witness = witnessOf.get(c.verifier);
    return witness === undefined ? [] : [{ witness: witness.name, key: witness.key, timestamp: cosignatureTimeOf(c.signature.signature) }];
  });
  if (policy.witnesses !== undefined && policy.requireQuorum !== false) {
    const cosigned = new Set(cosignatures.map((c) => c.witness));
    if (!quorumMet(policy.witnesses.quorum, cosigned)) {
      throw new VerifyError("QUORUM_NOT_MET", explainQuorum(policy.witnesses.quorum, cosigned));
    }
  }
  return {
    checkpoint,
    signedBy: timed?.key ?? signers[0]!,
    timestamp: timed === undefined ? null : cosignatureTimeOf(timed.time!.signature.signature),
    cosignatures,
  };
}

function describe(checked: CheckedSignature): string {
  return `line ${checked.signature.line} from trusted key ${checked.verifier.name} (key ID ${keyIdHex(checked.verifier.keyId)})`;
}
