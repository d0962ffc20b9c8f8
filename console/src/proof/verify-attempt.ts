// "Verify" for one delivery attempt, entirely in the page: download the attempt's proof bundle,
// check it with @kapsel/verify against the pinned log keys only (and against a payload file when
// the user gives one), make sure it is about this attempt, then link its checkpoint to the last
// one this browser verified. The result says exactly what was proven, or why not.
import { parseProofBundle, verifyProofBundle, type BundleFacts, type FailureCode } from "@kapsel/verify";
import { linkToLast, type LinkResult, type ProofSource } from "./log-consistency.ts";

export interface VerifyInput {
  attemptId: string;
  eventId: string;
  logName: string;
  pinned: readonly string[];
  /** The payload bytes the user supplied, if any. */
  payload?: Uint8Array;
  payloadName?: string;
  fetchBundle: (attemptId: string) => Promise<string>;
  proofs: ProofSource;
}

export type VerifyReport =
  | { ok: true; text: string; facts: BundleFacts; link: LinkResult; bundle: string; ms: number }
  | { ok: false; text: string; code: string; bundle?: string; ms?: number };

/** What each failure means for a reader who is not a cryptographer. */
const MEANING: Record<FailureCode, string> = {
  BAD_KEY: "A pinned log key is malformed.",
  PARSE_ERROR: "The proof bundle is not in the tlog-proof format.",
  RECEIPT_NOT_CANONICAL: "The receipt inside the bundle was altered (it is not in canonical form).",
  RECEIPT_SCHEMA: "The receipt inside the bundle is not a Kapsel delivery receipt.",
  ORIGIN_MISMATCH: "The bundle's checkpoint names a different log than the one whose key you pinned.",
  NO_TRUSTED_SIGNATURE: "The bundle's checkpoint is not signed by a key you pinned.",
  BAD_SIGNATURE: "The checkpoint's signature does not verify: the checkpoint was altered or forged.",
  BAD_TIMESTAMP: "The checkpoint's signed time does not verify.",
  TIMESTAMP_REQUIRED: "The checkpoint carries no signed time.",
  PROOF_SHAPE: "The inclusion proof has the wrong shape for the claimed position and tree size.",
  INCLUSION_FAILED: "The receipt is not in the signed log: the receipt or the proof was altered.",
  CONSISTENCY_FAILED: "The log's checkpoints are inconsistent.",
  PAYLOAD_MISMATCH: "The payload file is not the body that was delivered in this attempt.",
  BAD_POLICY: "The witness policy is malformed.",
  BAD_COSIGNATURE: "A witness cosignature on the checkpoint does not verify: the checkpoint was altered or the cosignature forged.",
  QUORUM_NOT_MET: "Too few of the required witnesses cosigned the checkpoint.",
};

function describeOutcome(facts: BundleFacts): string {
  const r = facts.receipt;
  const status = r.status_code === null ? "no HTTP response" : `HTTP ${r.status_code}`;
  const outcome = { delivered: "delivered", http_error: "refused by the destination", timeout: "timed out", network_error: "network error" }[r.outcome];
  return `${outcome} (${status}, ${r.duration_ms} ms)`;
}

function signedAt(facts: BundleFacts): string {
  return facts.timestamp === null ? "without a signed time" : `at ${new Date(Number(facts.timestamp) * 1000).toISOString()}`;
}

export async function verifyAttempt(input: VerifyInput): Promise<VerifyReport> {
  let bundle: string;
  try {
    bundle = await input.fetchBundle(input.attemptId);
  } catch (err) {
    return { ok: false, code: "DOWNLOAD", text: `FAILED: the proof bundle could not be downloaded: ${(err as Error).message}` };
  }
  const started = performance.now();
  const result = verifyProofBundle(bundle, { trustedKeys: input.pinned, payload: input.payload });
  const ms = performance.now() - started;
  if (!result.ok) {
    return { ok: false, code: result.code, bundle, ms, text: `FAILED (${result.code}): ${MEANING[result.code]} ${result.message}` };
  }
  const r = result.receipt;
  // A valid bundle about another attempt proves nothing about this one.
  if (r.attempt_id !== input.attemptId || r.event_id !== input.eventId) {
    return {
      ok: false,
      code: "WRONG_ATTEMPT",
      bundle,
      ms,
      text: `FAILED (WRONG_ATTEMPT): the bundle is a valid proof, but of attempt ${r.attempt_id} of event ${r.event_id}, not of attempt ${input.attemptId} of event ${input.eventId}.`,
    };
  }
  const link = await linkToLast(input.logName, parseProofBundle(bundle).checkpoint, input.pinned, input.proofs);
  if (link.kind === "fork") {
    return {
      ok: false,
      code: "FORK",
      bundle,
      ms,
      text: `FAILED (FORK): the bundle verifies on its own, but its checkpoint contradicts one this browser verified before: ${link.alarm.reason}. The log has shown two different histories.`,
    };
  }
  const payload = result.payloadVerified
    ? ` The payload file${input.payloadName ? ` ${input.payloadName}` : ""} is exactly the body sent (SHA-256 ${r.payload_sha256}).`
    : ` No payload file was given: the body's SHA-256 is recorded as ${r.payload_sha256}.`;
  const history =
    link.kind === "extends" ? ` The checkpoint extends the one of size ${link.from} verified before.`
    : link.kind === "older" ? ` The checkpoint is an earlier state of the log of size ${link.latest} verified before.`
    : link.kind === "unchecked" ? ` Its consistency with earlier checkpoints was not checked: ${link.reason}.`
    : "";
  const text =
    `VERIFIED: attempt ${r.attempt} of event ${r.event_id} was sent to ${r.url} at ${r.started_at} and ${describeOutcome(result)}. ` +
    `This receipt is entry ${result.index} of the log ${result.origin}, whose checkpoint of ${result.treeSize} entries ` +
    `was signed ${signedAt(result)} by your pinned key ${result.signedBy.keyId.toString(16).padStart(8, "0")}.${payload}${history}`;
  return { ok: true, text, facts: result, link, bundle, ms };
}
