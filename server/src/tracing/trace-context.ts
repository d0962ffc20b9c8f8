// W3C Trace Context (https://www.w3.org/TR/trace-context/) as Kapsel accepts it from strangers:
// a traceparent is kept only when it is exactly one well-formed version-00 value (55 characters),
// a tracestate only alongside it and only when it is a well-formed list of at most 32 members in
// at most 512 bytes. Anything else is ignored, never an error: a sender's broken tracing must not
// cost it its webhook. Node joins repeated header lines with ", ", so several traceparent headers
// make one value that is not 55 characters long and is ignored, as the spec asks.

/** What is stored with a message and sent on its deliveries: the context the message's trace
 * continues from. */
export interface CarriedContext {
  /** `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, exactly 55 characters. */
  traceparent: string;
  /** At most MAX_TRACESTATE_BYTES; undefined when absent or not acceptable. */
  tracestate: string | undefined;
}

export const TRACEPARENT_LENGTH = 55;
export const MAX_TRACESTATE_BYTES = 512;
const MAX_TRACESTATE_MEMBERS = 32;

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const ZERO_TRACE = "0".repeat(32);
const ZERO_SPAN = "0".repeat(16);
/** A list member: `key=value`, keys simple or `tenant@system`, values printable without `,` `=`. */
const MEMBER = /^(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;

/** The traceparent header value if it is one valid version-00 traceparent, else undefined. Cheap
 * for the common case of no header: one typeof test. */
export function validTraceparent(value: unknown): string | undefined {
  if (typeof value !== "string" || value.length !== TRACEPARENT_LENGTH) return undefined;
  const m = TRACEPARENT.exec(value);
  if (!m || m[1] === ZERO_TRACE || m[2] === ZERO_SPAN) return undefined;
  return value;
}

/** The tracestate header value trimmed of empty members, if it is well formed and within the
 * bounds, else undefined (the whole of it: a partial list could misattribute vendors' state). */
export function validTracestate(value: unknown): string | undefined {
  if (typeof value !== "string" || value.length === 0 || value.length > MAX_TRACESTATE_BYTES) return undefined;
  const members = value.split(",").map((m) => m.trim()).filter((m) => m !== "");
  if (members.length === 0 || members.length > MAX_TRACESTATE_MEMBERS) return undefined;
  const keys = new Set<string>();
  for (const member of members) {
    if (!MEMBER.test(member)) return undefined;
    const key = member.slice(0, member.indexOf("="));
    if (keys.has(key)) return undefined;
    keys.add(key);
  }
  const joined = members.join(",");
  return Buffer.byteLength(joined) <= MAX_TRACESTATE_BYTES ? joined : undefined;
}

/** The context carried by a request's headers, or undefined without a valid traceparent. */
export function carriedContext(traceparent: unknown, tracestate: unknown): CarriedContext | undefined {
  const parent = validTraceparent(traceparent);
  if (parent === undefined) return undefined;
  return { traceparent: parent, tracestate: validTracestate(tracestate) };
}

/** A valid traceparent's parts. */
export function traceparentParts(traceparent: string): { traceId: string; spanId: string; flags: number } {
  return { traceId: traceparent.slice(3, 35), spanId: traceparent.slice(36, 52), flags: parseInt(traceparent.slice(53, 55), 16) };
}

/** A traceparent for a span context's parts. */
export function formatTraceparent(traceId: string, spanId: string, flags: number): string {
  return `00-${traceId}-${spanId}-${flags & 0xff ? (flags & 0xff).toString(16).padStart(2, "0") : "00"}`;
}
