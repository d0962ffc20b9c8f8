// Standard Webhooks signing of outbound deliveries: `webhook-signature: v1,<base64 HMAC-SHA256 of
// "<id>.<timestamp>.<body>">`, keyed with the base64 part of the `whsec_` secret. After a rotation
// the previous secret signs too (space-separated), so receivers can roll over.
import { createHmac } from "node:crypto";

export function signatureFor(secret: string, id: string, timestampSeconds: number, body: Buffer): string {
  const key = Buffer.from(secret.startsWith("whsec_") ? secret.slice(6) : secret, "base64");
  return `v1,${createHmac("sha256", key).update(`${id}.${timestampSeconds}.`).update(body).digest("base64")}`;
}

export function signingHeaders(secrets: readonly string[], id: string, timestampSeconds: number, body: Buffer): Record<string, string> {
  return {
    "webhook-id": id,
    "webhook-timestamp": String(timestampSeconds),
    "webhook-signature": secrets.map((s) => signatureFor(s, id, timestampSeconds, body)).join(" "),
  };
}
