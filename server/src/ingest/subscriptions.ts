// Who receives a fanned-out message: the rule, in one place. An endpoint subscribes to event types
// (exact names, or `prefix.*` wildcards; none = every type except Kapsel's operational `kapsel.*`
// ones, which are only for endpoints that name them) and may narrow itself to channels (then only
// messages carrying one of them reach it). Also the syntax of types and channels, and how a
// type named by a webhook sender (a header, a JSON field) becomes one.
import { sql } from "slonik";
import { KapselError } from "../errors.ts";

/** `[a-z0-9_.-]`, at most 128 characters. */
const EVENT_TYPE = /^[a-z0-9_.-]{1,128}$/;
/** An exact type, or a non-empty prefix followed by `.*`. */
const PATTERN = /^[a-z0-9_.-]{1,126}(\.\*)?$/;
const CHANNEL = /^[A-Za-z0-9_.:-]{1,128}$/;

export const MAX_MESSAGE_CHANNELS = 10;
export const MAX_SUBSCRIPTIONS = 100;

export interface Subscription {
  eventTypes: readonly string[];
  channels: readonly string[];
}

/** Kapsel's own operational event types (`kapsel.*`) reach only endpoints that name them. */
const OPERATIONAL = "kapsel.";

/** Whether a subscription list takes a type: empty takes every type but Kapsel's own
 * operational ones (which must be asked for, so no endpoint receives them by surprise); `a.*`
 * takes every type under `a.`. */
export function takesType(patterns: readonly string[], eventType: string): boolean {
  if (patterns.length === 0) return !eventType.startsWith(OPERATIONAL);
  for (const p of patterns) {
    if (p.endsWith(".*") ? eventType.startsWith(p.slice(0, -1)) : p === eventType) return true;
  }
  return false;
}

/** Whether an endpoint's subscription takes a message of this type and these channels. */
export function subscribes(s: Subscription, eventType: string, channels: readonly string[]): boolean {
  if (!takesType(s.eventTypes, eventType)) return false;
  return s.channels.length === 0 || s.channels.some((c) => channels.includes(c));
}

/** The same type rule as a condition on the endpoints table's `event_types`, for listing
 * endpoints by the type they take (server/test/subscriptions.test.ts holds the two together). */
export function takesTypeSql(eventType: string) {
  return sql.fragment`((cardinality(event_types) = 0 AND NOT starts_with(${eventType}, ${OPERATIONAL})) OR ${eventType} = ANY(event_types)
    OR EXISTS (SELECT 1 FROM unnest(event_types) t WHERE right(t, 2) = '.*' AND starts_with(${eventType}, left(t, -1))))`;
}

/** Checks a message's event type (E1006); empty is allowed where the caller says so. */
export function checkEventType(value: string, field = "event_type"): string {
  if (!EVENT_TYPE.test(value)) throw new KapselError("E1006", `${field} must be 1 to 128 characters of a-z 0-9 _ . -`);
  return value;
}

/** Checks a message's channels (E1006). */
export function checkMessageChannels(values: readonly string[]): string[] {
  const unique = [...new Set(values)];
  if (unique.length > MAX_MESSAGE_CHANNELS) throw new KapselError("E1006", `a message carries at most ${MAX_MESSAGE_CHANNELS} channels`);
  for (const c of unique) if (!CHANNEL.test(c)) throw new KapselError("E1006", "channels must be 1 to 128 characters of A-Z a-z 0-9 _ . : -");
  return unique;
}

/** Checks an endpoint's (or source's) subscription lists (E1006). */
export function checkSubscription(eventTypes: readonly string[], channels: readonly string[]): Subscription {
  const types = [...new Set(eventTypes)];
  const chans = [...new Set(channels)];
  if (types.length > MAX_SUBSCRIPTIONS || chans.length > MAX_SUBSCRIPTIONS) {
    throw new KapselError("E1006", `at most ${MAX_SUBSCRIPTIONS} event types and ${MAX_SUBSCRIPTIONS} channels`);
  }
  for (const t of types) if (!PATTERN.test(t)) throw new KapselError("E1006", `event type ${JSON.stringify(t.slice(0, 140))} is not a name or a prefix.* pattern`);
  for (const c of chans) if (!CHANNEL.test(c)) throw new KapselError("E1006", "channels must be 1 to 128 characters of A-Z a-z 0-9 _ . : -");
  return { eventTypes: types, channels: chans };
}

/** A type as a sender names it, made into one of ours: lower case, `/` and other separators
 * become `.` (Shopify's `orders/create` → `orders.create`). Empty when nothing usable is left, so a
 * sender's odd type never refuses its webhook. */
export function normalizeEventType(raw: string | undefined): string {
  if (raw === undefined) return "";
  const t = raw.trim().toLowerCase().replace(/[^a-z0-9_.-]+/g, ".").replace(/^\.+|\.+$/g, "");
  return EVENT_TYPE.test(t) ? t : "";
}
