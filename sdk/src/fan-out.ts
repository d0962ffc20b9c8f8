// Typed helpers for the two ways in that fan out: sending a message once by event type to every
// subscribed endpoint (Svix-style), and sources, the inbound URLs to give Stripe, GitHub or any
// webhook sender (Hookdeck-style). They build on the generated clients; nothing here is needed to
// call the RPCs directly.
import { EventTypeFrom, SourceScheme, type Source } from "@kapsel/contracts/management";
import type { KapselClient } from "./kapsel-client.ts";

export interface SendMessageInput {
  /** The event type, `[a-z0-9_.-]`, e.g. `invoice.paid`. */
  eventType: string;
  /** A JSON-serialisable value (sent as `application/json`), a string or raw bytes. */
  payload: unknown;
  /** Channels the message carries (an endpoint with channels receives only messages sharing one). */
  channels?: string[];
  /** Makes retrying the call safe: the same key within the tenant's window yields the first message. */
  idempotencyKey?: string;
  /** Extra headers delivered with every event of the message. */
  headers?: Record<string, string>;
  /** Defaults to `application/json` for values and strings, `application/octet-stream` for bytes. */
  contentType?: string;
}

export interface SentMessage {
  messageId: string;
  /** One event per endpoint the message goes to; empty when no endpoint is subscribed. */
  eventIds: string[];
  /** True when the idempotency key matched an earlier message (its ids are returned). */
  duplicate: boolean;
}

/** Sends a message once; Kapsel delivers it to every enabled endpoint subscribed to its type. */
export async function sendMessage(client: KapselClient, input: SendMessageInput, options?: { timeoutMs?: number; signal?: AbortSignal }): Promise<SentMessage> {
  const bytes = input.payload instanceof Uint8Array;
  const payload = bytes ? (input.payload as Uint8Array) : new TextEncoder().encode(typeof input.payload === "string" ? input.payload : JSON.stringify(input.payload));
  const r = await client.ingest.ingest({
    eventType: input.eventType,
    payload,
    channels: input.channels ?? [],
    idempotencyKey: input.idempotencyKey ?? "",
    headers: input.headers ?? {},
    contentType: input.contentType ?? (bytes ? "application/octet-stream" : "application/json"),
  }, options);
  return { messageId: r.messageId, eventIds: r.eventIds, duplicate: r.duplicate };
}

export type SourceSchemeName = "none" | "hmac_sha256" | "github" | "stripe" | "standard_webhooks";
export type EventTypeOrigin =
  | { from: "none" | "github" | "stripe" | "shopify" | "standard_webhooks" }
  | { from: "header"; header: string }
  | { from: "json_pointer"; pointer: string };

const SCHEMES: Record<SourceSchemeName, SourceScheme> = {
  none: SourceScheme.NONE,
  hmac_sha256: SourceScheme.HMAC_SHA256,
  github: SourceScheme.GITHUB,
  stripe: SourceScheme.STRIPE,
  standard_webhooks: SourceScheme.STANDARD_WEBHOOKS,
};
const ORIGINS: Record<EventTypeOrigin["from"], EventTypeFrom> = {
  none: EventTypeFrom.NONE,
  header: EventTypeFrom.HEADER,
  json_pointer: EventTypeFrom.JSON_POINTER,
  github: EventTypeFrom.GITHUB,
  stripe: EventTypeFrom.STRIPE,
  shopify: EventTypeFrom.SHOPIFY,
  standard_webhooks: EventTypeFrom.STANDARD_WEBHOOKS,
};

export interface CreateSourceInput {
  name: string;
  /** How the sender signs; the type origin defaults to the scheme's own convention. */
  scheme: SourceSchemeName;
  /** The sender's secret (Stripe's `whsec_…`, the one you typed into GitHub); omitted: Kapsel makes one. */
  secret?: string;
  /** Header holding the signature for `hmac_sha256` (default `x-signature`). */
  header?: string;
  /** Clock skew allowed for Stripe and Standard Webhooks, in seconds (default 300). */
  toleranceSeconds?: number;
  eventType?: EventTypeOrigin;
  /** Channels every message of this source carries. */
  channels?: string[];
}

export interface CreatedSource {
  source: Source;
  /** The verification secret: configure the sender with it. Shown only now. */
  secret: string;
  /** The URL to give the sender. */
  url: string;
}

/** Creates a source and answers the URL to give its sender. */
export async function createSource(client: KapselClient, baseUrl: string, input: CreateSourceInput): Promise<CreatedSource> {
  const origin = input.eventType;
  const r = await client.management.createSource({
    name: input.name,
    scheme: SCHEMES[input.scheme],
    secret: input.secret ?? "",
    header: input.header ?? "",
    toleranceSeconds: input.toleranceSeconds ?? 0,
    eventTypeFrom: origin ? ORIGINS[origin.from] : EventTypeFrom.UNSPECIFIED,
    eventTypeHeader: origin?.from === "header" ? origin.header : "",
    eventTypePointer: origin?.from === "json_pointer" ? origin.pointer : "",
    channels: input.channels ?? [],
  });
  return { source: r.source!, secret: r.secret, url: sourceUrl(baseUrl, r.source!) };
}

/** The full URL of a source, to give its sender. */
export function sourceUrl(baseUrl: string, source: Pick<Source, "ingestPath">): string {
  return `${baseUrl.replace(/\/+$/, "")}${source.ingestPath}`;
}
