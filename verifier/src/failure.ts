/**
 * Why a verification failed, as a stable machine-readable code. Callers branch on the code and
 * show the message; codes never change meaning between versions, messages may.
 *
 * | code                    | the check that failed                                                    |
 * |-------------------------|--------------------------------------------------------------------------|
 * | `BAD_KEY`               | a trusted key (vkey) is malformed, has a wrong key ID, or none was given |
 * | `PARSE_ERROR`           | bundle, note, checkpoint or proof text is not in the exact format        |
 * | `RECEIPT_NOT_CANONICAL` | the receipt bytes are not RFC 8785 canonical JSON                        |
 * | `RECEIPT_SCHEMA`        | the receipt is canonical JSON but not a version-1 Kapsel receipt         |
 * | `ORIGIN_MISMATCH`       | the checkpoint's origin is not the name of any trusted key               |
 * | `NO_TRUSTED_SIGNATURE`  | no signature line comes from a trusted key                               |
 * | `BAD_SIGNATURE`         | a signature line claiming a trusted key does not verify                  |
 * | `BAD_TIMESTAMP`         | a signed-time (0x04) line of a trusted key does not verify or is invalid |
 * | `TIMESTAMP_REQUIRED`    | the policy requires a signed time and the signing key gave none          |
 * | `PROOF_SHAPE`           | index/sizes out of range, or the proof has the wrong number of hashes    |
 * | `INCLUSION_FAILED`      | the leaf and the proof do not lead to the signed root                    |
 * | `CONSISTENCY_FAILED`    | the consistency proof does not link the two signed roots                 |
 * | `PAYLOAD_MISMATCH`      | the payload's SHA-256 differs from the receipt's `payload_sha256`        |
 * | `BAD_POLICY`            | a witness policy (file, or witnesses and quorum) is malformed            |
 * | `BAD_COSIGNATURE`       | a cosignature line claiming a policy witness's key does not verify       |
 * | `QUORUM_NOT_MET`        | the checkpoint lacks the cosignatures the witness policy requires        |
 *
 * An edited receipt and an edited proof hash both surface as `INCLUSION_FAILED`, and an edited
 * checkpoint body and a corrupted log signature both as `BAD_SIGNATURE`: a verifier sees only
 * that the hashes or the signature no longer match, not which side was changed.
 */
export type FailureCode =
  | "BAD_KEY"
  | "PARSE_ERROR"
  | "RECEIPT_NOT_CANONICAL"
  | "RECEIPT_SCHEMA"
  | "ORIGIN_MISMATCH"
  | "NO_TRUSTED_SIGNATURE"
  | "BAD_SIGNATURE"
  | "BAD_TIMESTAMP"
  | "TIMESTAMP_REQUIRED"
  | "PROOF_SHAPE"
  | "INCLUSION_FAILED"
  | "CONSISTENCY_FAILED"
  | "PAYLOAD_MISMATCH"
  | "BAD_POLICY"
  | "BAD_COSIGNATURE"
  | "QUORUM_NOT_MET";

/** Every failure code, for callers that enumerate them (CLI help, exhaustive tests). */
export const FAILURE_CODES: readonly FailureCode[] = [
  "BAD_KEY",
  "PARSE_ERROR",
  "RECEIPT_NOT_CANONICAL",
  "RECEIPT_SCHEMA",
  "ORIGIN_MISMATCH",
  "NO_TRUSTED_SIGNATURE",
  "BAD_SIGNATURE",
  "BAD_TIMESTAMP",
  "TIMESTAMP_REQUIRED",
  "PROOF_SHAPE",
  "INCLUSION_FAILED",
  "CONSISTENCY_FAILED",
  "PAYLOAD_MISMATCH",
  "BAD_POLICY",
  "BAD_COSIGNATURE",
  "QUORUM_NOT_MET",
];

/**
 * A failed check as a value. The message starts with the step that failed ("checkpoint
 * signature: …") because auditors read it without the code table at hand.
 */
export interface Failure {
  readonly ok: false;
  readonly code: FailureCode;
  readonly message: string;
}

/** A check's result: the success fields with `ok: true`, or a {@link Failure}. */
export type Outcome<T extends object> = ({ readonly ok: true } & T) | Failure;

/**
 * The one error type of this package. Parsers (`parse*`, `rootFrom*`) throw it for bad input; the
 * `verify*` functions catch it and return it as a {@link Failure}, so their callers never need
 * try/catch.
 */
export class VerifyError extends Error {
  readonly code: FailureCode;

  constructor(code: FailureCode, message: string) {
    super(message);
    this.name = "VerifyError";
    this.code = code;
  }
}

/** Builds a {@link Failure} value. */
export function failure(code: FailureCode, message: string): Failure {
  return { ok: false, code, message };
}
