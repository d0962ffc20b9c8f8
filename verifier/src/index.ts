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
  WitnessOptions,
} from "./verify.ts";
export { verifyCheckpoint, verifyConsistency, verifyProofBundle } from "./verify.ts";

export type { DeliveryOutcome, Receipt } from "./receipt.ts";
export { parseReceipt } from "./receipt.ts";
export { canonicalJson } from "./canonical-json.ts";

export type { ProofBundle } from "./bundle.ts";
export { PROOF_BUNDLE_HEADER, parseProofBundle } from "./bundle.ts";
export { parseConsistencyProof } from "./consistency-proof.ts";

export type { Checkpoint, CheckpointPolicy, VerifiedCheckpoint, WitnessCosignature } from "./checkpoint.ts";
export { openCheckpoint, parseCheckpointText } from "./checkpoint.ts";

export type { CheckedSignature, NoteSignature, NoteVerifier, OpenedNote, SignedNote } from "./note.ts";
export { ed25519NoteVerifier, openNote, parseNote, verifyNote } from "./note.ts";
export { signedTimeMessage, timeNoteVerifier } from "./signed-time.ts";
export { COSIGNATURE_SIZE, cosignatureMessage, cosignatureNoteVerifier, cosignatureTimeOf } from "./cosignature.ts";

export type { WitnessKey } from "./witness-key.ts";
export { parseWitnessKey, witnessNoteVerifier } from "./witness-key.ts";
export type { PolicyLog, PolicyWitness, Quorum, WitnessPolicy } from "./witness-policy.ts";
export { POLICY_LIMITS, explainQuorum, parseWitnessPolicy, quorumMet, quorumPolicy } from "./witness-policy.ts";

export type { Ed25519Vkey, VerifierKey } from "./vkey.ts";
export { decodeEd25519Vkey, parseVerifierKey, verifyEd25519 } from "./vkey.ts";
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

export type { TileSource } from "./tile-proofs.ts";
export { TILE_HEIGHT, TILE_WIDTH, consistencyProofFromTiles, tileHashes, tilePath } from "./tile-proofs.ts";

export type { Evidence, FollowedCheckpoint, LogReader, MonitorTrust, RoundResult } from "./monitor.ts";
export { followLog } from "./monitor.ts";
export type { InclusionFinding, InclusionOptions, InclusionReport, RpcCaller } from "./attempt-inclusion.ts";
export { checkRecentAttempts } from "./attempt-inclusion.ts";
export type { LogClientOptions, RpcAnswer } from "./log-client.ts";
export { LogAccessError, LogClient } from "./log-client.ts";

export type { TextInput } from "./utf8.ts";
export { decodeBase64, encodeBase64 } from "./base64.ts";
export { parseUint64 } from "./decimal.ts";
