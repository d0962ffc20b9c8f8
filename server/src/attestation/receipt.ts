// The receipt of one delivery attempt (ATTESTATION.md §1), serialised canonically (RFC 8785): the
// members sorted by key, no whitespace, strings escaped as JSON.stringify does, integers only.
// These bytes are the leaf; the verifier re-serialises and compares, so they must be exact.

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
  outcome: "delivered" | "http_error" | "timeout" | "network_error";
  status_code: number | null;
  response_sha256: string | null;
}

export function receiptBytes(f: ReceiptFields): Buffer {
  const receipt: Record<string, string | number | null> = {
    v: 1,
    attempt_id: f.attempt_id,
    event_id: f.event_id,
    tenant_id: f.tenant_id,
    endpoint_id: f.endpoint_id,
    url: f.url,
    attempt: f.attempt,
    payload_sha256: f.payload_sha256,
    started_at: f.started_at.toISOString(),
    duration_ms: f.duration_ms,
    outcome: f.outcome,
    status_code: f.status_code,
    response_sha256: f.response_sha256,
  };
  // Default sort compares UTF-16 code units, which is exactly JCS's member order.
  const members = Object.keys(receipt).sort().map((k) => `${JSON.stringify(k)}:${JSON.stringify(receipt[k])}`);
  return Buffer.from(`{${members.join(",")}}`);
}
