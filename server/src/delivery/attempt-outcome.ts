// How a delivery attempt ended: the one list, shared by the sender, the retry policy, the receipt
// (ATTESTATION.md §1) and every reader of delivery_attempts.outcome.
export const ATTEMPT_OUTCOMES = ["delivered", "http_error", "timeout", "network_error"] as const;

export type AttemptOutcome = (typeof ATTEMPT_OUTCOMES)[number];

/** Why an attempt failed before a byte of it left this process (its outcome is network_error):
 * the request itself cannot be written as HTTP (a stored header or URL that the client refuses —
 * it never will be), or the destination policy refused every address the host resolved to (which
 * DNS may change). Either says nothing about the destination's health, so neither counts against
 * its circuit. */
export type LocalRefusal = "request" | "destination";
