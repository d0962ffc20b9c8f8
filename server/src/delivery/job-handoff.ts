// Hand-off: new jobs go from ingest's group commit straight to this process's dispatcher, without
// a claim. Before the statement, the dispatcher reserves room for some of the batch's events (its free
// worker slots, the bound on what it holds in memory); the statement inserts those jobs
// already leased to this process, as a claim would have (lease id, lease time, attempt 1), but only
// where the endpoint is enabled and its circuit closed — the claim's own conditions, checked in the
// same statement — and reads back the few endpoint columns a delivery needs. After the commit the
// dispatcher sends them from the payload, headers and ids ingest already holds in memory: no claim
// statement, no payload read back, no NOTIFY for them. An endpoint's concurrency limit is kept
// when they are sent: beyond it they wait in the dispatcher, in order, as claimed jobs do.
//
// Guarantees are the claim's: durable before the acknowledgement (the jobs are in the same
// statement as the messages); at-least-once (if this process dies, the leases run out after
// KAPSEL_DELIVERY_LEASE_MS plus the endpoint's timeout and any process's claim takes the jobs);
// when the dispatcher is saturated, stopping or stopped nothing is reserved and the jobs take the
// normal path (unleased, announced on the jobs channel). Jobs handed over after stop() began are
// released at once.
import { sql } from "slonik";
import type { ClaimedRow } from "./job-queue.ts";

/** Room the dispatcher set aside for one group-commit statement's events. */
export interface HandOffReservation {
  /** The lease every handed-over job of the statement gets. */
  leaseId: string;
  /** KAPSEL_DELIVERY_LEASE_MS: the lease lasts this plus the endpoint's timeout. */
  leaseMs: number;
  /** Taken before the statement is sent: an attempt that starts by then ends within its lease. */
  sendByMs: number;
  /** The events to insert leased (when their endpoint allows it). */
  eventIds: ReadonlySet<string>;
}

/** What a delivery needs of its endpoint, read in the ingest statement. */
export interface HandedEndpoint {
  url: string;
  /** Sealed (secrets/secret-box.ts); the dispatcher opens them as a claim does. */
  signing_secret: Buffer;
  previous_secret: Buffer | null;
  max_attempts: number;
  timeout_ms: number;
}

/** The dispatcher's side, as ingest sees it. */
export interface JobHandOff {
  /** Reserves room for some of these events, or undefined when there is none (saturated,
   * stopping). Every reservation must end in handOver or cancel. */
  reserve(events: readonly { id: string; endpointId: string }[]): HandOffReservation | undefined;
  /** The statement committed: these jobs (a subset of the reservation) are leased to this process. */
  handOver(reservation: HandOffReservation, jobs: readonly ClaimedRow[]): void;
  /** The statement failed, or its outcome is unknown: nothing to send (any leases it took expire). */
  cancel(reservation: HandOffReservation): void;
}

/** The endpoints of `source`'s rows marked `handoff` that may be sent to now: enabled, not
 * deleted, circuit closed (the claim's conditions). A CTE body for ingest's statement. */
export function handOffEndpointsSql(source: string) {
  return sql.fragment`
    SELECT p.id, p.url, p.signing_secret,
      CASE WHEN p.previous_secret_expires_at > now() THEN p.previous_signing_secret END AS previous_secret,
      p.max_attempts, p.timeout_ms
    FROM endpoints p
    WHERE p.id IN (SELECT endpoint_id FROM ${sql.identifier([source])} WHERE handoff)
      AND p.enabled AND p.deleted_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM circuit_breakers cb WHERE cb.endpoint_id = p.id AND cb.state <> 'closed')`;
}
