// How a delivery attempt ended: the one list, shared by the sender, the retry policy, the receipt
// (ATTESTATION.md §1) and every reader of delivery_attempts.outcome.
export const ATTEMPT_OUTCOMES = ["delivered", "http_error", "timeout", "network_error"] as const;

export type AttemptOutcome = (typeof ATTEMPT_OUTCOMES)[number];
