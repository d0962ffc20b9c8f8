// Public surface of @kapsel/verify. The three verify* functions are what auditors need; the rest
// is the low-level RFC 9162 and C2SP machinery for tools that build on it. `parse*` functions
// throw VerifyError for bad input; `verify*` functions return values and never throw.
export type { Failure, FailureCode, Outcome } from "./failure.ts";
export { FAILURE_CODES, VerifyError } from "./failure.ts";

export type {
  BundleFacts,
  CheckpointFacts,
  CheckpointOptions,
  ConsistencyFacts,
  ProofBundleOptions,
  TrustedKey,
} from "./verify.ts";
export { verifyCheckpoint, verifyConsistency, verifyProofBundle } from "./verify.ts";

export type { DeliveryOutcome, Receipt } from "./receipt.ts";
export { parseReceipt } from "./receipt.ts";
export { canonicalJson } from "./canonical-json.ts";

export type { ProofBundle } from "./bundle.ts";
export { PROOF_BUNDLE_HEADER, parseProofBundle } from "./bundle.ts";
export { parseConsistencyProof } from "./consistency-proof.ts";

export type { Checkpoint, CheckpointPolicy, VerifiedCheckpoint } from "./checkpoint.ts";
export { openCheckpoint, parseCheckpointText } from "./checkpoint.ts";

export type { CheckedSignature, NoteSignature, NoteVerifier, OpenedNote, SignedNote } from "./note.ts";
export { ed25519NoteVerifier, openNote, parseNote, verifyNote } from "./note.ts";
export { signedTimeMessage, timeNoteVerifier } from "./signed-time.ts";

export type { VerifierKey } from "./vkey.ts";
export { parseVerifierKey } from "./vkey.ts";
export { SIGNATURE_TYPE_COSIGNATURE, SIGNATURE_TYPE_ED25519, computeKeyId, keyIdHex } from "./key-id.ts";

export {
  HASH_SIZE,
  MAX_PROOF_HASHES,
  consistencyProofLength,
  emptyRoot,
  inclusionProofLength,
  leafHash,
  nodeHash,
  rootFromInclusionProof,
  verifyConsistencyProof,
  verifyInclusionProof,
} from "./merkle.ts";

export type { TextInput } from "./utf8.ts";
export { decodeBase64, encodeBase64 } from "./base64.ts";
