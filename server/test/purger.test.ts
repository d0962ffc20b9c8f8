// The purger's rules, exactly, on a database with rows placed at known ages (the windows are days;
// the rows are written as if received and finished that long ago): what goes and what stays for
// payloads, response excerpts, events, messages and idempotency keys; events in flight and
// attempts not yet in the log are never touched; tiny batches still cover everything; another
// process's purge or a locked row makes it skip, never wait.
import { randomUUID } from "node:crypto";
import type pg from "pg";
import { Registry } from "prom-client";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createDatabasePool, type DatabasePool } from "../src/db/pool.ts";
import { createLogger } from "../src/logger.ts";
import { Purger, PURGE_LOCK, type PassReport } from "../src/retention/purger.ts";
import { RetentionMetrics } from "../src/retention/retention-metrics.ts";
import { RetentionPolicies } from "../src/retention/retention-policies.ts";
import { connect, createTestDatabase } from "../../test/support/database.ts";

const DAY = 86_400;
const DEFAULTS = { payloadSeconds: 30 * DAY, responseSeconds: 30 * DAY, eventSeconds: 90 * DAY };

let url: string;
let pool: DatabasePool;
let db: pg.Client;
let registry: Registry;

beforeAll(async () => {
  url = await createTestDatabase();
  pool = await createDatabasePool(url, { maximumPoolSize: 4 });
  db = await connect(url);
});
afterAll(async () => {
  await db?.end();
  await pool?.end();
});

function purger(batchSize = 2): Purger {
  registry = new Registry();
  const policies = new RetentionPolicies(pool, { defaults: DEFAULTS, maxSeconds: 365 * DAY });
  return new Purger(
    { pool, tenants: () => policies.all(), metrics: new RetentionMetrics(registry), log: createLogger("silent") },
    { intervalMs: 3_600_000, batchSize, idempotencyWindowMs: DAY * 1000 },
  );
}

async function tenant(windows?: { payload: number; response: number; event: number }): Promise<string> {
  const id = (await db.query<{ id: string }>("INSERT INTO tenants (name) VALUES ('purge') RETURNING id")).rows[0]!.id;
  if (windows) {
    await db.query("INSERT INTO retention_policies (tenant_id, payload_seconds, response_seconds, event_seconds) VALUES ($1, $2, $3, $4)",
      [id, windows.payload, windows.response, windows.event]);
  }
  return id;
}

interface EventSpec {
  status: "pending" | "delivering" | "delivered" | "failed";
  /** Days since it reached its final state (or last changed). */
  finalDays: number;
  /** Days since its one attempt started; no attempt when undefined. */
  attemptDays?: number;
  /** Leave the attempt in log_queue, as if the sequencer had not taken it yet. */
  unsequenced?: boolean;
}

interface Placed {
  messageId: string;
  eventIds: string[];
}

/** A message received `receivedDays` ago with the given events (in-flight ones get a job). */
async function place(tenantId: string, receivedDays: number, events: EventSpec[]): Promise<Placed> {
  const messageId = randomUUID();
  const endpointId = randomUUID();
  await db.query(
    `INSERT INTO messages (id, tenant_id, payload, content_type, headers, event_count, received_at)
     VALUES ($1, $2, convert_to('{"email":"someone@example.com"}', 'UTF8'), 'application/json', '{"x-customer":"someone"}', $3, now() - $4 * interval '1 day')`,
    [messageId, tenantId, events.length, receivedDays],
  );
  const eventIds: string[] = [];
  for (const e of events) {
    const id = randomUUID();
    eventIds.push(id);
    const status = e.status === "delivering" ? "pending" : e.status;
    await db.query(
      `INSERT INTO events (id, tenant_id, endpoint_id, message_id, status, received_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, now() - $6 * interval '1 day', now() - $7 * interval '1 day')`,
      [id, tenantId, endpointId, messageId, status, receivedDays, e.finalDays],
    );
    if (e.status === "pending" || e.status === "delivering") {
      await db.query(
        "INSERT INTO delivery_jobs (event_id, endpoint_id, run_at, lease_until) VALUES ($1, $2, now() + interval '1 hour', $3)",
        [id, endpointId, e.status === "delivering" ? new Date(Date.now() + 3_600_000) : null],
      );
    }
    if (e.attemptDays !== undefined) {
      const attemptId = randomUUID();
      await db.query(
        `INSERT INTO delivery_attempts (id, event_id, tenant_id, endpoint_id, url, attempt, payload_sha256, started_at, duration_ms, outcome, status_code, response_excerpt)
         VALUES ($1, $2, $3, $4, 'https://hooks.example.com/in', 1, repeat('a', 64), now() - $5 * interval '1 day', 10, 'delivered', 200, 'hello someone@example.com')`,
        [attemptId, id, tenantId, endpointId, e.attemptDays],
      );
      if (!e.unsequenced) await db.query("DELETE FROM log_queue WHERE attempt_id = $1", [attemptId]);
    }
  }
  return { messageId, eventIds };
}

async function messageState(id: string): Promise<"kept" | "erased" | "deleted"> {
  const { rows } = await db.query<{ payload: Buffer; headers: object; erased: boolean }>(
    "SELECT payload, headers, payload_erased_at IS NOT NULL AS erased FROM messages WHERE id = $1", [id]);
  if (rows.length === 0) return "deleted";
  const { payload, headers, erased } = rows[0]!;
  if (erased) {
    expect([payload.length, headers]).toEqual([0, {}]);
    return "erased";
  }
  expect(payload.length).toBeGreaterThan(0);
  return "kept";
}

async function eventState(id: string): Promise<"kept" | "erased" | "deleted"> {
  const { rows } = await db.query<{ erased: boolean }>("SELECT payload_erased_at IS NOT NULL AS erased FROM events WHERE id = $1", [id]);
  return rows.length === 0 ? "deleted" : rows[0]!.erased ? "erased" : "kept";
}

async function excerpt(eventId: string): Promise<string | undefined> {
  const { rows } = await db.query<{ response_excerpt: string }>("SELECT response_excerpt FROM delivery_attempts WHERE event_id = $1", [eventId]);
  return rows[0]?.response_excerpt;
}

async function metric(name: string, labels: string): Promise<number> {
  const line = (await registry.metrics()).split("\n").find((l) => l.startsWith(`${name}{${labels}}`));
  return Number(line?.split(" ").at(-1));
}

beforeEach(async () => {
  await db.query("TRUNCATE messages, events, delivery_jobs, delivery_attempts, log_queue, idempotency_keys, retention_policies");
});

describe("a purge pass", () => {
  it("removes exactly what each window says, and never what is in flight or not yet in the log", async () => {
    const a = await tenant({ payload: DAY, response: 2 * DAY, event: 3 * DAY });
    const b = await tenant();
    // Old in-flight messages first in every walk, more of them than a batch holds.
    const stragglers: Placed[] = [];
    for (let i = 0; i < 5; i++) stragglers.push(await place(a, 6, [{ status: i % 2 ? "pending" : "delivering", finalDays: 6, attemptDays: 6 }]));
    const recent = await place(a, 1.5, [{ status: "delivered", finalDays: 1.5, attemptDays: 1.5 }]);
    const failed = await place(a, 2.5, [{ status: "failed", finalDays: 2.5, attemptDays: 2.5 }]);
    const old = await place(a, 4, [{ status: "delivered", finalDays: 4, attemptDays: 4 }]);
    const pending = await place(a, 5, [{ status: "pending", finalDays: 5, attemptDays: 5 }]);
    const fanned = await place(a, 4, [{ status: "delivered", finalDays: 4, attemptDays: 4 }, { status: "delivering", finalDays: 4, attemptDays: 4 }]);
    const unsubscribed = await place(a, 1.5, []);
    const unsubscribedOld = await place(a, 4, []);
    const retried = await place(a, 5, [{ status: "delivered", finalDays: 0.5, attemptDays: 0.5 }]);
    const notLogged = await place(a, 4, [{ status: "delivered", finalDays: 4, attemptDays: 4, unsequenced: true }]);
    const otherTenant = await place(b, 10, [{ status: "delivered", finalDays: 10, attemptDays: 10 }]);
    await db.query(`INSERT INTO idempotency_keys (tenant_id, scope_id, key, message_id, created_at)
      SELECT $1::uuid, $1::uuid, 'old-' || g, $2::uuid, now() - interval '2 days' FROM generate_series(1, 5) g
      UNION ALL SELECT $1::uuid, $1::uuid, 'new-' || g, $2::uuid, now() - interval '1 hour' FROM generate_series(1, 2) g`, [a, recent.messageId]);

    const p = purger(2);
    const first = await p.runOnce();
    expect(first).toEqual<PassReport>({ payloads: 6, responseExcerpts: 4, events: 2, attempts: 2, messages: 2, idempotencyKeys: 5, complete: true });

    expect(await messageState(recent.messageId)).toBe("erased");
    expect(await eventState(recent.eventIds[0]!)).toBe("erased");
    expect(await excerpt(recent.eventIds[0]!)).toBe("hello someone@example.com");
    expect(await messageState(failed.messageId)).toBe("erased");
    expect(await excerpt(failed.eventIds[0]!)).toBe("");
    expect(await eventState(failed.eventIds[0]!)).toBe("erased");
    expect([await messageState(old.messageId), await eventState(old.eventIds[0]!), await excerpt(old.eventIds[0]!)]).toEqual(["deleted", "deleted", undefined]);
    expect([await messageState(pending.messageId), await eventState(pending.eventIds[0]!), await excerpt(pending.eventIds[0]!)]).toEqual(["kept", "kept", "hello someone@example.com"]);
    for (const s of stragglers) expect([await messageState(s.messageId), await excerpt(s.eventIds[0]!)]).toEqual(["kept", "hello someone@example.com"]);
    // The finished event of a message still in flight: its own row may go, the shared payload may not.
    expect([await messageState(fanned.messageId), await eventState(fanned.eventIds[0]!), await eventState(fanned.eventIds[1]!)]).toEqual(["kept", "deleted", "kept"]);
    expect(await excerpt(fanned.eventIds[1]!)).toBe("hello someone@example.com");
    expect([await messageState(unsubscribed.messageId), await messageState(unsubscribedOld.messageId)]).toEqual(["erased", "deleted"]);
    expect([await messageState(retried.messageId), await excerpt(retried.eventIds[0]!)]).toEqual(["kept", "hello someone@example.com"]);
    expect([await messageState(notLogged.messageId), await eventState(notLogged.eventIds[0]!), await excerpt(notLogged.eventIds[0]!)]).toEqual(["erased", "erased", ""]);
    expect([await messageState(otherTenant.messageId), await excerpt(otherTenant.eventIds[0]!)]).toEqual(["kept", "hello someone@example.com"]);
    expect((await db.query("SELECT key FROM idempotency_keys ORDER BY key")).rows.map((r) => r.key)).toEqual(["new-1", "new-2"]);

    expect(await metric("kapsel_retention_purged_total", 'kind="payload"')).toBe(6);
    expect(await metric("kapsel_retention_purged_total", 'kind="idempotency_key"')).toBe(5);
    expect(await metric("kapsel_retention_purge_batches_total", 'result="error"')).toBe(0);
    expect(await metric("kapsel_retention_purge_batches_total", 'result="done"')).toBeGreaterThan(10);

    // Once the sequencer has taken its attempt, the last old event goes too; nothing else changes.
    await db.query("DELETE FROM log_queue");
    expect(await p.runOnce()).toEqual<PassReport>({ payloads: 0, responseExcerpts: 0, events: 1, attempts: 1, messages: 1, idempotencyKeys: 0, complete: true });
    expect(await messageState(notLogged.messageId)).toBe("deleted");
  });

  it("with windows of 0 keeps everything", async () => {
    const a = await tenant({ payload: 0, response: 0, event: 0 });
    const ancient = await place(a, 3000, [{ status: "delivered", finalDays: 3000, attemptDays: 3000 }]);
    expect(await purger().runOnce()).toMatchObject({ payloads: 0, responseExcerpts: 0, events: 0, messages: 0 });
    expect([await messageState(ancient.messageId), await excerpt(ancient.eventIds[0]!)]).toEqual(["kept", "hello someone@example.com"]);
  });

  it("skips rows another transaction holds, instead of waiting for them", async () => {
    const a = await tenant({ payload: DAY, response: 2 * DAY, event: 3 * DAY });
    const held = await place(a, 2, [{ status: "delivered", finalDays: 2, attemptDays: 2 }]);
    const free = await place(a, 2, [{ status: "delivered", finalDays: 2, attemptDays: 2 }]);
    const other = await connect(url);
    try {
      await other.query("BEGIN");
      // As a RetryEvent in progress would: the event row is locked.
      await other.query("SELECT 1 FROM events WHERE id = $1 FOR UPDATE", [held.eventIds[0]]);
      expect((await purger().runOnce()).payloads).toBe(1);
      expect([await messageState(held.messageId), await messageState(free.messageId)]).toEqual(["kept", "erased"]);
      await other.query("COMMIT");
      expect((await purger().runOnce()).payloads).toBe(1);
      expect(await messageState(held.messageId)).toBe("erased");
    } finally {
      await other.end();
    }
  });

  it("stops when another process is purging, and the next pass does the work", async () => {
    const a = await tenant({ payload: DAY, response: 2 * DAY, event: 3 * DAY });
    const m = await place(a, 2, [{ status: "delivered", finalDays: 2, attemptDays: 2 }]);
    const other = await connect(url);
    try {
      await other.query("BEGIN");
      await other.query("SELECT pg_advisory_xact_lock($1)", [PURGE_LOCK]);
      const p = purger();
      expect(await p.runOnce()).toMatchObject({ payloads: 0, complete: false });
      expect(await metric("kapsel_retention_purge_batches_total", 'result="busy"')).toBe(1);
      expect(await messageState(m.messageId)).toBe("kept");
      await other.query("COMMIT");
      expect(await p.runOnce()).toMatchObject({ payloads: 1, complete: true });
    } finally {
      await other.end();
    }
  });
});
