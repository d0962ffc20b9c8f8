// How the console prints what the contracts carry: times, enums, sizes.
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { AttemptOutcome, CircuitState, EventStatus, EventTypeFrom, Scope, SourceScheme } from "@kapsel/sdk/web";

export function formatTime(t: Timestamp | undefined): string {
  if (!t) return "—";
  return timestampDate(t).toISOString().replace("T", " ").replace(/\.(\d{3})Z$/, ".$1Z");
}

export function relativeTime(t: Timestamp | undefined, now = Date.now()): string {
  if (!t) return "";
  const s = Math.round((now - timestampDate(t).getTime()) / 1000);
  if (s < 0) return `in ${formatDuration(-s)}`;
  return `${formatDuration(s)} ago`;
}

function formatDuration(s: number): string {
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86_400)} d`;
}

export const STATUS_LABEL: Record<number, string> = {
  [EventStatus.UNSPECIFIED]: "unknown",
  [EventStatus.PENDING]: "pending",
  [EventStatus.DELIVERING]: "delivering",
  [EventStatus.DELIVERED]: "delivered",
  [EventStatus.FAILED]: "failed",
};

export const OUTCOME_LABEL: Record<number, string> = {
  [AttemptOutcome.UNSPECIFIED]: "unknown",
  [AttemptOutcome.DELIVERED]: "delivered",
  [AttemptOutcome.HTTP_ERROR]: "HTTP error",
  [AttemptOutcome.TIMEOUT]: "timeout",
  [AttemptOutcome.NETWORK_ERROR]: "network error",
};

export const CIRCUIT_LABEL: Record<number, string> = {
  [CircuitState.UNSPECIFIED]: "unknown",
  [CircuitState.CLOSED]: "closed",
  [CircuitState.OPEN]: "open",
  [CircuitState.HALF_OPEN]: "half-open",
};

export const SCOPE_LABEL: Record<number, string> = {
  [Scope.UNSPECIFIED]: "?",
  [Scope.INGEST]: "ingest",
  [Scope.MANAGE]: "manage",
  [Scope.READ]: "read",
};

export const SCHEME_LABEL: Record<number, string> = {
  [SourceScheme.UNSPECIFIED]: "none",
  [SourceScheme.NONE]: "none (the URL is the secret)",
  [SourceScheme.HMAC_SHA256]: "HMAC-SHA256 (hex, in a header)",
  [SourceScheme.GITHUB]: "GitHub (X-Hub-Signature-256)",
  [SourceScheme.STRIPE]: "Stripe (Stripe-Signature)",
  [SourceScheme.STANDARD_WEBHOOKS]: "Standard Webhooks",
};

export const TYPE_FROM_LABEL: Record<number, string> = {
  [EventTypeFrom.UNSPECIFIED]: "default for the scheme",
  [EventTypeFrom.NONE]: "none",
  [EventTypeFrom.HEADER]: "a header",
  [EventTypeFrom.JSON_POINTER]: "a JSON pointer into the body",
  [EventTypeFrom.GITHUB]: "GitHub (X-GitHub-Event)",
  [EventTypeFrom.STRIPE]: "Stripe (body type)",
  [EventTypeFrom.SHOPIFY]: "Shopify (X-Shopify-Topic)",
  [EventTypeFrom.STANDARD_WEBHOOKS]: "Standard Webhooks (body type)",
};

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** "a, b, c" ⇄ ["a","b","c"] for list fields edited as text. */
export function splitList(text: string): string[] {
  return text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
}

/** A `<input type="datetime-local">` value (local time) as a Date, or undefined when empty. */
export function fromLocalInput(value: string): Date | undefined {
  if (!value) return undefined;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

export function toLocalInput(d: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** Payload bytes as text when they are UTF-8, else a hex preview. */
export function payloadPreview(bytes: Uint8Array, max = 64 * 1024): string {
  const slice = bytes.slice(0, max);
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(slice);
    try {
      return JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      return text + (bytes.length > max ? "\n…" : "");
    }
  } catch {
    return Array.from(slice.slice(0, 512), (b) => b.toString(16).padStart(2, "0")).join(" ") + (bytes.length > 512 ? " …" : "");
  }
}

/** An event type filter as the server applies it: exact name, or `prefix.*` for its sub-types. */
export function matchesType(pattern: string, type: string): boolean {
  if (pattern === "") return true;
  if (pattern.endsWith(".*")) return type.startsWith(pattern.slice(0, -1));
  return type === pattern;
}
