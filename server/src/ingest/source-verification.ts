// Checks that an inbound webhook came from its sender, per the endpoint's scheme. Pure functions
// with an injected clock; every comparison is constant-time.
import { createHmac, timingSafeEqual } from "node:crypto";

/** How an inbound webhook proves its sender (SourceScheme in the contract). */
export type SourceSchemeName = "none" | "hmac_sha256" | "github" | "stripe" | "standard_webhooks";

export interface SourceConfig {
  scheme: SourceSchemeName;
  /** Undefined when the stored secret cannot be opened (damaged, or sealed under another master
   * key): nothing verifies until a new one is set. */
  secret: string | undefined;
  /** The secret before a rotation, while it still verifies (sources keep it for 24 hours). */
  previousSecret?: string | undefined;
  /** Header holding the hex signature for the generic scheme (lower case). */
  header: string;
  toleranceSeconds: number;
}

export type Headers = Record<string, string | string[] | undefined>;

/** Why a check failed, for the E1002 message (never echoes secrets or expected values). */
export type SourceFailure = string;

function header(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function hmac(secret: string | Buffer, ...parts: (string | Buffer)[]): Buffer {
  const h = createHmac("sha256", secret);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Constant-time equality of a presented hex/base64 string against the expected bytes. */
function equalsEncoded(presented: string, expected: Buffer, encoding: "hex" | "base64"): boolean {
  const valid = encoding === "hex" ? /^[0-9a-fA-F]+$/.test(presented) : /^[A-Za-z0-9+/]+=*$/.test(presented);
  if (!valid) return false;
  const bytes = Buffer.from(presented, encoding);
  return bytes.length === expected.length && timingSafeEqual(bytes, expected);
}

function withinTolerance(timestamp: string, toleranceSeconds: number, nowMs: number): boolean {
  if (!/^\d{1,12}$/.test(timestamp)) return false;
  return Math.abs(nowMs / 1000 - Number(timestamp)) <= toleranceSeconds;
}

/** Returns undefined when the request verifies (with the secret, or the previous one while it
 * still counts), else the reason. */
export function verifySource(config: SourceConfig, headers: Headers, body: Buffer, nowMs = Date.now()): SourceFailure | undefined {
  if (config.scheme === "none") return undefined;
  const failure = config.secret === undefined ? cannotCheck(config) : verifyWith(config, config.secret, headers, body, nowMs);
  if (failure === undefined || config.previousSecret === undefined) return failure;
  return verifyWith(config, config.previousSecret, headers, body, nowMs) === undefined ? undefined : failure;
}

/** Why no request can verify (the secret is unusable, which is no sender's doing), or undefined. */
export function cannotCheck(config: SourceConfig): SourceFailure | undefined {
  if (config.scheme === "none" || config.secret !== undefined) return undefined;
  return "the signature cannot be checked: the target's verification secret is unusable until its owner sets a new one";
}

function verifyWith(config: SourceConfig, secret: string, headers: Headers, body: Buffer, nowMs: number): SourceFailure | undefined {
  switch (config.scheme) {
    case "none":
      return undefined;
    case "hmac_sha256": {
      const sig = header(headers, config.header);
      if (!sig) return `missing ${config.header} header`;
      const hex = sig.startsWith("sha256=") ? sig.slice(7) : sig;
      return equalsEncoded(hex.trim(), hmac(secret, body), "hex") ? undefined : `${config.header} does not match the body`;
    }
    case "github": {
      const sig = header(headers, "x-hub-signature-256");
      if (!sig) return "missing X-Hub-Signature-256 header";
      if (!sig.startsWith("sha256=")) return "X-Hub-Signature-256 must start with sha256=";
      return equalsEncoded(sig.slice(7), hmac(secret, body), "hex") ? undefined : "X-Hub-Signature-256 does not match the body";
    }
    case "stripe": {
      const sig = header(headers, "stripe-signature");
      if (!sig) return "missing Stripe-Signature header";
      let t: string | undefined;
      const v1: string[] = [];
      for (const part of sig.split(",")) {
        const eq = part.indexOf("=");
        const k = part.slice(0, eq).trim();
        const v = part.slice(eq + 1).trim();
        if (k === "t") t = v;
        else if (k === "v1") v1.push(v);
      }
      if (t === undefined || v1.length === 0) return "Stripe-Signature needs t= and v1=";
      if (!withinTolerance(t, config.toleranceSeconds, nowMs)) return "Stripe-Signature timestamp outside the tolerance";
      const expected = hmac(secret, t, ".", body);
      // Check every v1 so timing does not reveal which one matched.
      let ok = false;
      for (const s of v1) ok = equalsEncoded(s, expected, "hex") || ok;
      return ok ? undefined : "Stripe-Signature does not match the body";
    }
    case "standard_webhooks": {
      const id = header(headers, "webhook-id");
      const ts = header(headers, "webhook-timestamp");
      const sig = header(headers, "webhook-signature");
      if (!id || !ts || !sig) return "missing webhook-id, webhook-timestamp or webhook-signature header";
      if (!withinTolerance(ts, config.toleranceSeconds, nowMs)) return "webhook-timestamp outside the tolerance";
      const key = Buffer.from(secret.startsWith("whsec_") ? secret.slice(6) : secret, "base64");
      const expected = hmac(key, id, ".", ts, ".", body);
      let ok = false;
      for (const entry of sig.split(" ")) {
        const comma = entry.indexOf(",");
        if (entry.slice(0, comma) !== "v1") continue;
        ok = equalsEncoded(entry.slice(comma + 1), expected, "base64") || ok;
      }
      return ok ? undefined : "webhook-signature does not match";
    }
  }
}

/** The sender's own delivery id, used as the idempotency key when none is given explicitly, so a
 * sender's retries of one delivery are stored once. */
export function senderDeliveryId(scheme: SourceSchemeName, headers: Headers): string | undefined {
  if (scheme === "standard_webhooks") return header(headers, "webhook-id");
  if (scheme === "github") return header(headers, "x-github-delivery");
  return undefined;
}
