// Kapsel's own events about a tenant's endpoints (operational webhooks): messages of the tenant,
// of types `kapsel.*`, fanned out to its endpoints subscribed to them like any other message —
// signed, retried and attested the same way. They are written in the transaction of the change
// they report, so an event exists exactly when its change committed.
//
// No loops: an event about an endpoint is never delivered to that endpoint, and an event that
// failed is reported (kapsel.event.failed) only when it was not itself an operational event. A
// failing endpoint therefore cannot feed on reports about itself; two failing subscribers report
// each other at most once per circuit transition, which the open timeout spaces out.
import type { CommonQueryMethods } from "slonik";
import { sql } from "slonik";
import { z } from "zod";
import { uuidv7 } from "../uuid.ts";
import { insertMessages, type NewMessage } from "./message-insert.ts";
import { subscribes } from "./subscriptions.ts";

export const OPERATIONAL_PREFIX = "kapsel.";

export type OperationalEvent =
  | { type: "kapsel.endpoint.disabled"; tenantId: string; endpointId: string; reason: string }
  | { type: "kapsel.endpoint.circuit_opened"; tenantId: string; endpointId: string; consecutiveFailures: number; retryAt: Date | undefined }
  | { type: "kapsel.endpoint.circuit_closed"; tenantId: string; endpointId: string }
  | { type: "kapsel.endpoint.secret_rotated"; tenantId: string; endpointId: string; previousSecretExpiresAt: Date }
  | {
      type: "kapsel.event.failed";
      tenantId: string;
      endpointId: string;
      eventId: string;
      messageId: string;
      eventType: string;
      attempts: number;
      lastOutcome: string;
      lastStatusCode: number | undefined;
      reason: string;
    };

/** Writes operational events, in the caller's transaction. */
export type EmitOperationalEvents = (tx: CommonQueryMethods, events: readonly OperationalEvent[]) => Promise<void>;

/** Whether an event type is one of Kapsel's own. */
export function isOperational(eventType: string): boolean {
  return eventType.startsWith(OPERATIONAL_PREFIX);
}

/** The JSON body delivered: Standard Webhooks' `{type, timestamp, data}` shape. */
export function operationalPayload(e: OperationalEvent, at: Date): Buffer {
  let data: Record<string, unknown>;
  switch (e.type) {
    case "kapsel.endpoint.disabled":
      data = { endpoint_id: e.endpointId, reason: e.reason };
      break;
    case "kapsel.endpoint.circuit_opened":
      data = { endpoint_id: e.endpointId, consecutive_failures: e.consecutiveFailures, retry_at: e.retryAt?.toISOString() ?? null };
      break;
    case "kapsel.endpoint.circuit_closed":
      data = { endpoint_id: e.endpointId };
      break;
    case "kapsel.endpoint.secret_rotated":
      data = { endpoint_id: e.endpointId, previous_secret_expires_at: e.previousSecretExpiresAt.toISOString() };
      break;
    case "kapsel.event.failed":
      data = {
        event_id: e.eventId, message_id: e.messageId, endpoint_id: e.endpointId, event_type: e.eventType,
        attempts: e.attempts, last_outcome: e.lastOutcome, last_status_code: e.lastStatusCode ?? null, reason: e.reason,
      };
      break;
  }
  return Buffer.from(JSON.stringify({ type: e.type, timestamp: at.toISOString(), data }));
}

const subscriberRow = z.object({ tenant_id: z.string(), id: z.string(), event_types: z.array(z.string()), channels: z.array(z.string()) });

/** Fans each event out to its tenant's enabled endpoints subscribed to its type (never to the
 * endpoint it is about), read in the same transaction. */
export const emitOperationalEvents: EmitOperationalEvents = async (tx, events) => {
  const reportable = events.filter((e) => e.type !== "kapsel.event.failed" || !isOperational(e.eventType));
  if (reportable.length === 0) return;
  const tenants = [...new Set(reportable.map((e) => e.tenantId))];
  const rows = await tx.any(sql.type(subscriberRow)`
    SELECT tenant_id, id, event_types, channels FROM endpoints
    WHERE tenant_id = ANY(${sql.array(tenants, "uuid")}) AND enabled AND deleted_at IS NULL ORDER BY seq`);
  const now = new Date();
  const messages: NewMessage[] = reportable.map((e) => {
    const endpointIds = rows
      .filter((r) => r.tenant_id === e.tenantId && r.id !== e.endpointId && subscribes({ eventTypes: r.event_types, channels: r.channels }, e.type, []))
      .map((r) => r.id);
    return {
      id: uuidv7(),
      tenantId: e.tenantId,
      scopeId: e.endpointId,
      eventType: e.type,
      channels: [],
      payload: operationalPayload(e, now),
      contentType: "application/json",
      headers: {},
      idempotencyKey: undefined,
      sourceId: undefined,
      requestId: "",
      events: endpointIds.map((endpointId) => ({ id: uuidv7(), endpointId })),
    };
  });
  // No idempotency key: the window plays no part.
  await insertMessages(tx, messages, 0);
};
