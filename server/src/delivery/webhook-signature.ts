// Standard Webhooks signing of outbound deliveries: `webhook-signature: v1,<base64 HMAC-SHA256 of
// "<id>.<timestamp>.<body>">`, keyed with the base64 part of the `whsec_` secret. After a rotation
// the previous secret signs too (space-separated), so receivers can roll over.
import { createHmac, createSecretKey, type KeyObject } from "node:crypto";

// createHmac with a Buffer key builds a key object on every call (about 5x the cost of the HMAC
// of a 1 KiB body); endpoints are few and their secrets long-lived, so keep the key objects.
const keys = new Map<string, KeyObject>();

function keyFor(secret: string): KeyObject {
  let key = keys.get(secret);
  if (key === undefined) {
    if (keys.size >= 10_000) keys.clear();
    key = createSecretKey(Buffer.from(secret.startsWith("whsec_") ? secret.slice(6) : secret, "base64"));
    keys.set(secret, key);
  }
  return key;
}

export function signatureFor(secret: string, id: string, timestampSeconds: number, body: Buffer): string {
  return `v1,${createHmac("sha256", keyFor(secret)).update(`${id}.${timestampSeconds}.`).update(body).digest("base64")}`;
}

export function signingHeaders(secrets: readonly string[], id: string, timestampSeconds: number, body: Buffer): Record<string, string> {
  return {
    "webhook-id": id,
    "webhook-timestamp": String(timestampSeconds),
    "webhook-signature": secrets.map((s) => signatureFor(s, id, timestampSeconds, body)).join(" "),
  };
}
