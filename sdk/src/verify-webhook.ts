// Checks a delivery from Kapsel on the receiving side: Standard Webhooks v1
// (https://www.standardwebhooks.com). The signature is base64 HMAC-SHA256 over
// `<webhook-id>.<webhook-timestamp>.<raw body>` with the endpoint's `whsec_…` secret. Web Crypto
// does the HMAC, so the same function runs in Node, browsers, Deno, Bun and edge workers.

export type WebhookFailureReason =
  /** webhook-id, webhook-timestamp or webhook-signature is absent or empty. */
  | "missing_headers"
  /** webhook-timestamp is not a whole number of seconds. */
  | "invalid_timestamp"
  /** The timestamp is older than the tolerance: possibly a replay. */
  | "timestamp_too_old"
  /** The timestamp is further in the future than the tolerance. */
  | "timestamp_too_new"
  /** No `v1,` signature matches any of the secrets. */
  | "no_matching_signature"
  /** A secret is not `whsec_` followed by base64 (a configuration error, not a bad request). */
  | "malformed_secret";

export type WebhookVerification =
  | {
      readonly ok: true;
      /** The webhook-id: Kapsel's event id, the same on every retry. Use it to deduplicate. */
      readonly id: string;
      /** When this attempt was signed. */
      readonly timestamp: Date;
      /** Which of the given secrets matched (after a rotation: is the old one still in use?). */
      readonly secretIndex: number;
    }
  | { readonly ok: false; readonly reason: WebhookFailureReason; readonly message: string };

export interface VerifyWebhookOptions {
  /** How far the timestamp may be from now, either way (default 300 s). */
  toleranceSeconds?: number;
  /** The current time, as a Date or milliseconds since the epoch (default: the clock). */
  now?: Date | number;
}

/** Fetch's Headers, or a plain object such as Node's `req.headers` (names in any case). */
export type WebhookHeaders = Headers | Readonly<Record<string, string | readonly string[] | undefined>>;

/** The raw request body: exactly the bytes received, not re-serialised JSON. */
export type WebhookBody = string | Uint8Array | ArrayBuffer;

const TIMESTAMP = /^\d{1,15}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2,3})?$/;

/**
 * Verifies a webhook against one or more secrets (several during a rotation). Returns a result
 * value and never throws for bad input. Requires Web Crypto (`crypto.subtle`; in browsers only in
 * secure contexts: https or localhost).
 */
export async function verifyWebhook(
  headers: WebhookHeaders,
  rawBody: WebhookBody,
  secrets: string | readonly string[],
  options: VerifyWebhookOptions = {},
): Promise<WebhookVerification> {
  const keys: Uint8Array<ArrayBuffer>[] = [];
  const list = typeof secrets === "string" ? [secrets] : secrets;
  if (list.length === 0) return failure("malformed_secret", "no secret given");
  for (const [i, secret] of list.entries()) {
    const key = parseSecret(secret);
    if (!key) return failure("malformed_secret", `secret ${i} is not whsec_ followed by base64`);
    keys.push(key);
  }

  const id = header(headers, "webhook-id");
  const timestamp = header(headers, "webhook-timestamp");
  const signatures = header(headers, "webhook-signature");
  if (!id || !timestamp || !signatures) {
    return failure("missing_headers", "webhook-id, webhook-timestamp and webhook-signature are required");
  }
  if (!TIMESTAMP.test(timestamp)) return failure("invalid_timestamp", "webhook-timestamp is not a number of seconds");
  const tolerance = options.toleranceSeconds ?? 300;
  const nowMs = options.now === undefined ? Date.now() : typeof options.now === "number" ? options.now : options.now.getTime();
  const now = Math.floor(nowMs / 1000);
  const seconds = Number(timestamp);
  if (now - seconds > tolerance) return failure("timestamp_too_old", `webhook-timestamp is more than ${tolerance} s old`);
  if (seconds - now > tolerance) return failure("timestamp_too_new", `webhook-timestamp is more than ${tolerance} s in the future`);

  const candidates = signatures
    .split(" ")
    .filter((s) => s.startsWith("v1,"))
    .map((s) => s.slice(3));
  const signed = concat(new TextEncoder().encode(`${id}.${timestamp}.`), bodyBytes(rawBody));
  for (const [secretIndex, key] of keys.entries()) {
    const hmacKey = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    const expected = toBase64(new Uint8Array(await crypto.subtle.sign("HMAC", hmacKey, signed)));
    for (const candidate of candidates) {
      if (constantTimeEqual(candidate, expected)) return { ok: true, id, timestamp: new Date(seconds * 1000), secretIndex };
    }
  }
  return failure("no_matching_signature", "no v1 signature matches the secret(s)");
}

function failure(reason: WebhookFailureReason, message: string): WebhookVerification {
  return { ok: false, reason, message };
}

function header(headers: WebhookHeaders, name: string): string | undefined {
  let value: string | readonly string[] | null | undefined;
  if (typeof (headers as Headers).get === "function" && !Array.isArray(headers)) {
    value = (headers as Headers).get(name);
  } else {
    const record = headers as Readonly<Record<string, string | readonly string[] | undefined>>;
    const key = Object.keys(record).find((k) => k.toLowerCase() === name);
    value = key === undefined ? undefined : record[key];
  }
  // A header repeated on several lines: signatures are space-separated anyway.
  const text = typeof value === "string" ? value : value?.join(" ");
  return text?.trim() || undefined;
}

/** The HMAC key of a `whsec_<base64>` secret (the prefix is optional, as in standardwebhooks). */
function parseSecret(secret: string): Uint8Array<ArrayBuffer> | undefined {
  const b64 = secret.startsWith("whsec_") ? secret.slice(6) : secret;
  if (b64.length === 0 || !BASE64.test(b64)) return undefined;
  const binary = atob(b64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function bodyBytes(body: WebhookBody): Uint8Array {
  if (typeof body === "string") return new TextEncoder().encode(body);
  return body instanceof Uint8Array ? body : new Uint8Array(body);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/** Compares without an early exit, so timing does not tell how much of a guess was right. */
function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
