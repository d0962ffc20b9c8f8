// Retention windows: what applies to a tenant (its own choices over the operator's defaults) and
// who may choose what. Pure: the table and the RPCs are retention-policies.ts.
//
// Who decides: the tenant is the controller of its customers' data and must be able to keep it for
// less time (storage limitation) — so a tenant key with scope `manage` may choose any window from
// 1 second up to the operator's maximum. The operator pays for the storage, so lengthening beyond
// that maximum (or keeping until erased, 0) takes the admin token: a contract, not a self-service
// switch.
import { MAX_RETENTION_SECONDS } from "../config.ts";
import { KapselError } from "../errors.ts";

/** Seconds each kind of data is kept; 0 = until erased (or, for events, forever). */
export interface RetentionWindows {
  /** A message's payload and headers, after the last of its events reached a final state. */
  payloadSeconds: number;
  /** An attempt's response excerpt, after the attempt started. */
  responseSeconds: number;
  /** A final event and its attempts, after the event reached its final state. */
  eventSeconds: number;
}

/** A tenant's own choices; undefined follows the default. */
export type TenantChoices = { [K in keyof RetentionWindows]: number | undefined };

export const NO_CHOICES: TenantChoices = { payloadSeconds: undefined, responseSeconds: undefined, eventSeconds: undefined };

const FIELD: Record<keyof RetentionWindows, string> = {
  payloadSeconds: "payload_retention_seconds",
  responseSeconds: "response_retention_seconds",
  eventSeconds: "event_retention_seconds",
};
const KINDS = Object.keys(FIELD) as (keyof RetentionWindows)[];

export function effectiveWindows(defaults: RetentionWindows, choices: TenantChoices): RetentionWindows {
  return {
    payloadSeconds: choices.payloadSeconds ?? defaults.payloadSeconds,
    responseSeconds: choices.responseSeconds ?? defaults.responseSeconds,
    eventSeconds: choices.eventSeconds ?? defaults.eventSeconds,
  };
}

export interface PolicyChange {
  payloadSeconds?: number;
  responseSeconds?: number;
  eventSeconds?: number;
  /** Forget the tenant's choices before applying the fields set here. */
  reset: boolean;
}

/**
 * The tenant's choices after a change, checked: a tenant key stays within 1 … maxSeconds (no upper
 * limit when maxSeconds is 0), the admin within 0 … MAX_RETENTION_SECONDS; and the windows that
 * result must hold together (E1006 otherwise).
 */
export function applyChange(
  current: TenantChoices,
  change: PolicyChange,
  by: "admin" | "tenant",
  limits: { defaults: RetentionWindows; maxSeconds: number },
): TenantChoices {
  const next: TenantChoices = change.reset ? { ...NO_CHOICES } : { ...current };
  for (const kind of KINDS) {
    const value = change[kind];
    if (value === undefined) continue;
    const max = by === "admin" || limits.maxSeconds === 0 ? MAX_RETENTION_SECONDS : limits.maxSeconds;
    const min = by === "admin" ? 0 : 1;
    if (!Number.isInteger(value) || value < min || value > max) {
      const why = by === "tenant" && value === 0 ? " (keeping data until erased takes the admin token)" : "";
      throw new KapselError("E1006", `${FIELD[kind]} must be from ${min} to ${max}${why}`);
    }
    next[kind] = value;
  }
  checkWindows(effectiveWindows(limits.defaults, next));
  return next;
}

/** Events take their payload and excerpts with them: when events expire, the other windows must be
 * set and not longer, or the policy would promise what deletion breaks. */
export function checkWindows(w: RetentionWindows): void {
  if (w.eventSeconds === 0) return;
  for (const kind of ["payloadSeconds", "responseSeconds"] as const) {
    if (w[kind] === 0 || w[kind] > w.eventSeconds) {
      throw new KapselError("E1006", `${FIELD[kind]} (${w[kind] === 0 ? "until erased" : w[kind]}) must not outlast event_retention_seconds (${w.eventSeconds})`);
    }
  }
}
