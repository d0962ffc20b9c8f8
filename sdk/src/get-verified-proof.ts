// Fetches an attempt's proof bundle from AttestationService and verifies it offline with
// @kapsel/verify against keys the caller already trusts (the server is not trusted to say what
// the right key is). The SDK depends on the verifier, never the reverse, so auditors can keep
// running the verifier alone.
import { Code } from "@connectrpc/connect";
import { verifyProofBundle, type BundleFacts, type FailureCode, type TrustedKey } from "@kapsel/verify";
import { KapselError } from "./kapsel-error.ts";
import type { KapselClient } from "./kapsel-client.ts";
import { pause } from "./pause.ts";

export interface GetVerifiedProofOptions {
  /** The log's verifier keys (vkeys), obtained out of band. */
  trustedKeys: readonly TrustedKey[];
  /** Fail unless the checkpoint carries the log's signed time. */
  requireTimestamp?: boolean;
  /** The body that was delivered; when given, its SHA-256 must match the receipt. */
  payload?: Uint8Array;
  /**
   * How long to keep asking while the attempt is not yet in a signed checkpoint (E3001), pausing
   * as the server's RetryInfo says (default 0: fail at once with that KapselError).
   */
  maxWaitMs?: number;
  /** When given, the receipt must be this tenant's (a tenant checking its own attempts). */
  tenantId?: string;
  signal?: AbortSignal;
}

/** What a verified proof establishes, and the bundle itself to store or hand to an auditor. */
export interface VerifiedProof extends BundleFacts {
  /** The `.tlog-proof` text; `kapsel-verify proof FILE --key VKEY` checks it again offline. */
  readonly bundle: string;
}

/**
 * Why a bundle that verifies is still not the proof asked for: a valid proof of another attempt
 * (or of another tenant's) proves nothing about this one.
 */
export type ReceiptMismatch = "WRONG_ATTEMPT" | "WRONG_TENANT";

/** The bundle arrived but does not verify, or is not about the attempt asked for: do not trust what it says. */
export class ProofVerificationError extends Error {
  override readonly name = "ProofVerificationError";
  /** The verifier's failure code (`BAD_SIGNATURE`, `INCLUSION_FAILED`, …), or a ReceiptMismatch. */
  readonly code: FailureCode | ReceiptMismatch;
  readonly attemptId: string;
  /** The bundle that failed, for a bug report or an auditor. */
  readonly bundle: string;

  constructor(code: FailureCode | ReceiptMismatch, message: string, attemptId: string, bundle: string) {
    super(`${code}: ${message}`);
    this.code = code;
    this.attemptId = attemptId;
    this.bundle = bundle;
  }
}

/**
 * Returns the verified facts of a delivery attempt's proof. Throws KapselError when the call
 * fails (E3003 unknown attempt, E3001 not yet signed after `maxWaitMs`) and
 * ProofVerificationError when the bundle does not verify against `trustedKeys`, or verifies but
 * its receipt is for another attempt (or, with `tenantId`, another tenant).
 */
export async function getVerifiedProof(
  client: Pick<KapselClient, "attestation">,
  attemptId: string,
  options: GetVerifiedProofOptions,
): Promise<VerifiedProof> {
  const deadline = Date.now() + (options.maxWaitMs ?? 0);
  let bundle: string;
  for (;;) {
    try {
      ({ bundle } = await client.attestation.getProofBundle({ attemptId }, { signal: options.signal }));
      break;
    } catch (err) {
      const notYetSigned = err instanceof KapselError && err.code === Code.FailedPrecondition && err.kapselCode === "E3001";
      const pauseMs = err instanceof KapselError ? (err.retryAfterMs ?? 250) : 0;
      if (!notYetSigned || Date.now() + pauseMs > deadline) throw err;
      await pause(pauseMs, options.signal);
    }
  }
  const result = verifyProofBundle(bundle, {
    trustedKeys: options.trustedKeys,
    requireTimestamp: options.requireTimestamp,
    payload: options.payload,
  });
  if (!result.ok) throw new ProofVerificationError(result.code, result.message, attemptId, bundle);
  const { receipt } = result;
  if (receipt.attempt_id !== attemptId) {
    throw new ProofVerificationError("WRONG_ATTEMPT", `the bundle proves attempt ${receipt.attempt_id}, not ${attemptId}`, attemptId, bundle);
  }
  if (options.tenantId !== undefined && receipt.tenant_id !== options.tenantId) {
    throw new ProofVerificationError("WRONG_TENANT", `the bundle proves an attempt of tenant ${receipt.tenant_id}, not ${options.tenantId}`, attemptId, bundle);
  }
  const { ok: _ok, ...facts } = result;
  return { ...facts, bundle };
}
