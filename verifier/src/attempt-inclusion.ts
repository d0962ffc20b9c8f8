// The tenant's side of monitoring: with its API key, a monitor checks that the tenant's own recent
// delivery attempts are leaves of the tree it has just verified as consistent, and that each
// leaf's receipt says what the management API says about the attempt. An attempt the API shows
// but the log does not hold — or holds with another outcome — is the log misbehaving.
import { decodeBase64 } from "./base64.ts";
import { VerifyError } from "./failure.ts";
import { LogAccessError, type RpcAnswer } from "./log-client.ts";
import { leafHash, verifyInclusionProof } from "./merkle.ts";
import type { FollowedCheckpoint } from "./monitor.ts";
import { parseReceipt, type Receipt } from "./receipt.ts";

/** Calls a Kapsel RPC with the tenant's key (see `LogClient.rpc`). */
export type RpcCaller = (service: string, method: string, request: unknown) => Promise<RpcAnswer>;

/** An attempt whose receipt is missing from the verified tree or contradicts the API. */
export interface InclusionFinding {
  readonly attemptId: string;
  readonly eventId: string;
  readonly message: string;
  /** The GetInclusionProof answer (JSON), for the record. */
  readonly answer: string;
}

export interface InclusionReport {
  /** Attempts whose receipts were proven to be leaves of the verified tree this round. */
  readonly verified: number;
  /** Attempts not yet in the verified tree (sequenced after it). */
  readonly pending: number;
  readonly findings: readonly InclusionFinding[];
}

export interface InclusionOptions {
  /** How many of the tenant's most recent events to look at (1..500). */
  readonly recentEvents: number;
  /**
   * Attempt ids proven in an earlier round. Consistency carries inclusion forward, so they are
   * not asked again; ids proven now are added.
   */
  readonly alreadyVerified: Set<string>;
}

const OUTCOMES: Readonly<Record<string, Receipt["outcome"]>> = {
  ATTEMPT_OUTCOME_DELIVERED: "delivered",
  ATTEMPT_OUTCOME_HTTP_ERROR: "http_error",
  ATTEMPT_OUTCOME_TIMEOUT: "timeout",
  ATTEMPT_OUTCOME_NETWORK_ERROR: "network_error",
};

// Not yet in the tree of that size (E3001), or sequenced after it (E3002): a later round checks.
const PENDING = new Set(["E3001", "E3002"]);

interface ApiAttempt {
  id: string;
  attempt: number;
  outcome?: string;
  statusCode?: number;
}

/**
 * Checks the attempts of the tenant's `recentEvents` newest events against `latest` (a
 * checkpoint already verified and accepted). Rejects with `LogAccessError` when an RPC fails for
 * any other reason than "not in this tree yet".
 */
export async function checkRecentAttempts(rpc: RpcCaller, latest: FollowedCheckpoint, options: InclusionOptions): Promise<InclusionReport> {
  const size = latest.facts.treeSize;
  const list = expectOk(await rpc("ManagementService", "ListEvents", { pageSize: options.recentEvents }), "ListEvents");
  const events = ((list as { events?: { id?: unknown }[] }).events ?? []).map((e) => String(e.id));
  let verified = 0;
  let pending = 0;
  const findings: InclusionFinding[] = [];
  for (const eventId of events) {
    const got = expectOk(await rpc("ManagementService", "GetEvent", { eventId }), "GetEvent");
    const attempts = ((got as { event?: { attempts?: ApiAttempt[] } }).event?.attempts ?? []).filter((a) => !options.alreadyVerified.has(a.id));
    for (const attempt of attempts) {
      const answer = await rpc("AttestationService", "GetInclusionProof", { attemptId: attempt.id, treeSize: String(size) });
      if (!answer.ok) {
        if (answer.reason !== undefined && PENDING.has(answer.reason)) {
          pending++;
          continue;
        }
        throw rpcError(answer, `GetInclusionProof for attempt ${attempt.id}`);
      }
      const problem = checkAnswer(answer.body, attempt, eventId, latest);
      if (problem === undefined) {
        verified++;
        options.alreadyVerified.add(attempt.id);
      } else {
        findings.push({ attemptId: attempt.id, eventId, message: problem, answer: JSON.stringify(answer.body) });
      }
    }
  }
  return { verified, pending, findings };
}

/** Why an inclusion answer does not prove this attempt in the verified tree, or undefined if it does. */
function checkAnswer(body: unknown, attempt: ApiAttempt, eventId: string, latest: FollowedCheckpoint): string | undefined {
  const answer = body as { leafIndex?: unknown; treeSize?: unknown; proof?: unknown; receipt?: unknown };
  const size = latest.facts.treeSize;
  if (String(answer.treeSize) !== String(size)) return `the proof is for a tree of size ${String(answer.treeSize)}, not the verified ${size}`;
  const index = typeof answer.leafIndex === "string" && /^(0|[1-9][0-9]*)$/.test(answer.leafIndex) ? BigInt(answer.leafIndex) : answer.leafIndex === undefined ? 0n : undefined;
  const receiptBytes = typeof answer.receipt === "string" ? decodeBase64(answer.receipt) : undefined;
  const proof = Array.isArray(answer.proof) ? answer.proof.map((h) => (typeof h === "string" ? decodeBase64(h) : undefined)) : answer.proof === undefined ? [] : undefined;
  if (index === undefined || receiptBytes === undefined || proof === undefined || proof.some((h) => h === undefined)) {
    return "the answer is not a well-formed inclusion proof";
  }
  let receipt: Receipt;
  try {
    receipt = parseReceipt(receiptBytes);
  } catch (error) {
    if (error instanceof VerifyError) return `the receipt is not valid: ${error.message}`;
    throw error;
  }
  const included = verifyInclusionProof(index, size, leafHash(receiptBytes), proof as Uint8Array[], latest.facts.rootHash);
  if (!included.ok) return `the receipt is not leaf ${index} of the verified tree of size ${size}: ${included.message}`;
  const says = (field: string, api: unknown, log: unknown) => `the API says ${field} ${String(api)}, the logged receipt says ${String(log)}`;
  if (receipt.attempt_id !== attempt.id) return says("attempt id", attempt.id, receipt.attempt_id);
  if (receipt.event_id !== eventId) return says("event", eventId, receipt.event_id);
  if (receipt.attempt !== attempt.attempt) return says("attempt number", attempt.attempt, receipt.attempt);
  if (attempt.outcome !== undefined && OUTCOMES[attempt.outcome] !== receipt.outcome) return says("outcome", attempt.outcome, receipt.outcome);
  const status = attempt.statusCode ?? 0;
  if (status !== (receipt.status_code ?? 0)) return says("status code", status, receipt.status_code);
  return undefined;
}

function expectOk(answer: RpcAnswer, method: string): unknown {
  if (!answer.ok) throw rpcError(answer, method);
  return answer.body;
}

function rpcError(answer: Extract<RpcAnswer, { ok: false }>, what: string): LogAccessError {
  const refusedCredential = answer.code === "unauthenticated" || answer.code === "permission_denied";
  return new LogAccessError(`${what}: ${answer.code} ${answer.reason ?? ""} ${answer.message}`.replace(/ +/g, " ").trim(), { refusedCredential });
}
