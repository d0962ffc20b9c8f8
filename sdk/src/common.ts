// What both entry points export besides createKapselClient. Platform-neutral only.
export { Code, ConnectError } from "@connectrpc/connect";
export type { KapselClient, CommonClientOptions } from "./kapsel-client.ts";
export type { ApiKeySource } from "./bearer-auth.ts";
export { KapselError } from "./kapsel-error.ts";
export type { RetryEvent, RetryOptions } from "./retry-policy.ts";
export { idempotencyKey, idempotencyKeyFrom } from "./idempotency-key.ts";
export {
  createSource,
  sendMessage,
  sourceUrl,
  type CreatedSource,
  type CreateSourceInput,
  type EventTypeOrigin,
  type SendMessageInput,
  type SentMessage,
  type SourceSchemeName,
} from "./fan-out.ts";
export {
  verifyWebhook,
  type VerifyWebhookOptions,
  type WebhookBody,
  type WebhookFailureReason,
  type WebhookHeaders,
  type WebhookVerification,
} from "./verify-webhook.ts";
export { getVerifiedProof, ProofVerificationError, type GetVerifiedProofOptions, type ReceiptMismatch, type VerifiedProof } from "./get-verified-proof.ts";
export type { TrustedKey } from "@kapsel/verify";
export * from "./services.ts";
