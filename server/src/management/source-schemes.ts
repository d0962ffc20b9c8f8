// The inbound verification schemes as the contract names them (SourceScheme) and as the database
// and ingest do, and the checks a scheme's settings must pass — shared by endpoints (which verify
// senders on /ingest/{endpoint_id}) and sources.
import { SourceScheme } from "@kapsel/contracts/management";
import { KapselError } from "../errors.ts";
import { isHeaderName } from "../http/header-names.ts";
import type { SourceSchemeName } from "../ingest/source-verification.ts";

export const SCHEME_NAMES: Record<SourceScheme, SourceSchemeName> = {
  [SourceScheme.UNSPECIFIED]: "none",
  [SourceScheme.NONE]: "none",
  [SourceScheme.HMAC_SHA256]: "hmac_sha256",
  [SourceScheme.GITHUB]: "github",
  [SourceScheme.STRIPE]: "stripe",
  [SourceScheme.STANDARD_WEBHOOKS]: "standard_webhooks",
};

export const SCHEME_ENUMS = Object.fromEntries(
  Object.entries(SCHEME_NAMES).filter(([k]) => Number(k) !== SourceScheme.UNSPECIFIED).map(([k, v]) => [v, Number(k)]),
) as Record<SourceSchemeName, SourceScheme>;

/** The scheme a request names (E1006 for a number the contract does not know). */
export function schemeName(value: SourceScheme): SourceSchemeName {
  const name = SCHEME_NAMES[value];
  if (name === undefined) throw new KapselError("E1006", "source scheme is not valid");
  return name;
}

/** A scheme with its secret and header: a scheme other than none needs a secret, a Standard
 * Webhooks secret is `whsec_` + base64, and secrets and headers are bounded. */
export function checkSource(scheme: SourceSchemeName, secret: string, header: string, field = "source_secret"): void {
  if (scheme !== "none" && secret === "") throw new KapselError("E1006", `scheme ${scheme} needs a ${field}`);
  if (secret.length > 1024 || /[\0\r\n]/.test(secret)) throw new KapselError("E1006", `${field} must be at most 1024 characters, without control characters`);
  if (scheme === "standard_webhooks" && !/^(whsec_)?[A-Za-z0-9+/]+=*$/.test(secret)) {
    throw new KapselError("E1006", `a Standard Webhooks ${field} is whsec_ followed by base64`);
  }
  if (!isHeaderName(header)) throw new KapselError("E1006", "the signature header is not a valid header name");
}

/** A stored secret for checkSource. One that cannot be opened (undefined: damaged, or sealed under
 * another master key) is refused with E1006 saying how to replace it, unless the scheme needs none. */
export function storedSecret(scheme: SourceSchemeName, secret: string | undefined, howToReplace: string): string {
  if (secret !== undefined || scheme === "none") return secret ?? "";
  throw new KapselError("E1006", `the stored verification secret cannot be read (damaged, or sealed under another master key): ${howToReplace}`);
}

/** A timestamp tolerance in seconds (for Stripe and Standard Webhooks), 1 s to 1 day. */
export function checkTolerance(seconds: number | undefined): void {
  if (seconds !== undefined && seconds !== 0 && seconds > 86_400) throw new KapselError("E1006", "tolerance must be 1 to 86400 seconds");
}
