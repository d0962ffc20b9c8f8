// Where the event type of an inbound webhook comes from: a header, a field of its JSON body, or a
// well-known sender's convention. The result is normalised (subscriptions.ts) and is empty when
// the sender gave nothing usable: a webhook is never refused for its type.
import type { IncomingHttpHeaders } from "node:http";
import { KapselError } from "../errors.ts";
import { normalizeEventType } from "./subscriptions.ts";

export type EventTypeFromName = "none" | "header" | "json_pointer" | "github" | "stripe" | "shopify" | "standard_webhooks";

export interface EventTypeOrigin {
  from: EventTypeFromName;
  /** The header name for `header`. */
  header: string;
  /** The RFC 6901 pointer for `json_pointer`. */
  pointer: string;
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The string at an RFC 6901 pointer in a JSON body; undefined when the body is not JSON or the
 * pointer leads to anything but a string. */
export function jsonPointerString(body: Buffer, pointer: string): string | undefined {
  // Only bodies that can be a JSON object or array are parsed at all.
  const first = body.find((b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09);
  if (first !== 0x7b && first !== 0x5b) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8"));
  } catch {
    return undefined;
  }
  if (pointer === "") return typeof value === "string" ? value : undefined;
  for (const raw of pointer.slice(1).split("/")) {
    const token = raw.replaceAll("~1", "/").replaceAll("~0", "~");
    if (Array.isArray(value) && /^(0|[1-9]\d*)$/.test(token)) value = value[Number(token)];
    else if (value !== null && typeof value === "object" && !Array.isArray(value) && Object.hasOwn(value, token)) value = (value as Record<string, unknown>)[token];
    else return undefined;
  }
  return typeof value === "string" ? value : undefined;
}

/** Checks a JSON pointer's syntax (E1006): empty, or `/`-separated tokens with valid escapes. */
export function checkJsonPointer(pointer: string): string {
  if (pointer.length > 256 || (pointer !== "" && (!pointer.startsWith("/") || /~[^01]|~$/.test(pointer)))) {
    throw new KapselError("E1006", "event_type_pointer must be an RFC 6901 JSON pointer such as /type");
  }
  return pointer;
}

/** The type a source's configuration finds in an inbound webhook. */
export function eventTypeFrom(origin: EventTypeOrigin, headers: IncomingHttpHeaders, body: Buffer): string {
  switch (origin.from) {
    case "none":
      return "";
    case "header":
      return normalizeEventType(header(headers, origin.header));
    case "json_pointer":
      return normalizeEventType(jsonPointerString(body, origin.pointer));
    case "github":
      return normalizeEventType(header(headers, "x-github-event"));
    case "shopify":
      return normalizeEventType(header(headers, "x-shopify-topic"));
    case "stripe":
    case "standard_webhooks":
      return normalizeEventType(jsonPointerString(body, "/type"));
  }
}

/** For `/ingest/{endpoint_id}`, which has no configuration: the type of a well-known sender, told
 * apart by its own headers (GitHub, Shopify, Stripe, Standard Webhooks), else empty. */
export function wellKnownEventType(headers: IncomingHttpHeaders, body: Buffer): string {
  if (headers["x-github-event"] !== undefined) return eventTypeFrom({ from: "github", header: "", pointer: "" }, headers, body);
  if (headers["x-shopify-topic"] !== undefined) return eventTypeFrom({ from: "shopify", header: "", pointer: "" }, headers, body);
  if (headers["stripe-signature"] !== undefined || headers["webhook-signature"] !== undefined) {
    return eventTypeFrom({ from: "stripe", header: "", pointer: "" }, headers, body);
  }
  return "";
}
