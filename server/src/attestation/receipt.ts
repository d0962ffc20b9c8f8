// The receipt of one delivery attempt (ATTESTATION.md §1), serialised canonically (RFC 8785): the
// members sorted by key, no whitespace, strings escaped as JSON.stringify does, integers only.
// These bytes are the leaf; the verifier re-serialises and compares, so they must be exact.
import type { AttemptOutcome } from "../delivery/attempt-outcome.ts";

export interface ReceiptFields {
  attempt_id: string;
  event_id: string;
  tenant_id: string;
  endpoint_id: string;
  url: string;
  attempt: number;
  payload_sha256: string;
  started_at: Date;
  duration_ms: number;
  outcome: AttemptOutcome;
  status_code: number | null;
  response_sha256: string | null;
}

const json = JSON.stringify;

export function receiptBytes(f: ReceiptFields): Buffer {
  // The members in JCS order (keys sorted by UTF-16 code units), which is fixed for this schema:
  // written directly, without building, sorting and re-escaping an object per receipt, since the
  // sequencer does this for every leaf.
  return Buffer.from(
    `{"attempt":${json(f.attempt)},"attempt_id":${json(f.attempt_id)},"duration_ms":${json(f.duration_ms)},` +
      `"endpoint_id":${json(f.endpoint_id)},"event_id":${json(f.event_id)},"outcome":${json(f.outcome)},` +
      `"payload_sha256":${json(f.payload_sha256)},"response_sha256":${json(f.response_sha256)},` +
      `"started_at":${json(f.started_at.toISOString())},"status_code":${json(f.status_code)},` +
      `"tenant_id":${json(f.tenant_id)},"url":${json(f.url)},"v":1}`,
  );
}
