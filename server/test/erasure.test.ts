// EraseEvents against a running server with real deliveries: each selector (event ids, a message,
// an endpoint, a time range, both), paging, fan-out (one payload for all of a message's events),
// events in flight left alone, the erasure record, replay refused with E2006, and proofs of the
// erased attempts that still verify — with @kapsel/verify and with the kapsel-verify command, with
// and without the payload the tenant kept. Then every way a caller could misuse it.
import type pg from "pg";
import { verifyProofBundle } from "@kapsel/verify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleFor, kapselCli, sha256, vkeysOf } from "../../test/support/attestation.ts";
import { connect } from "../../test/support/database.ts";
import { addEndpoint, createDestination, eventReaching, getEvent, ingest, until } from "../../test/support/delivery.ts";
import { createTenant, errorCode, rpc } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";
import { alwaysFail, hang, startSink, type Behaviour, type Sink } from "../../test/support/sink.ts";
import { kapselVerifyProof } from "../../test/support/verify-cli.ts";

let server: TestServer;
let db: pg.Client;
const sinks: Sink[] = [];

beforeAll(async () => {
  server = await startTestServer({ KAPSEL_CHECKPOINT_INTERVAL_MS: "100", KAPSEL_CIRCUIT_CONSECUTIVE_FAILURES: "1000", KAPSEL_CIRCUIT_MIN_ATTEMPTS: "1000" });
  db = await connect(server.databaseUrl);
});
afterAll(async () => {
  await db?.end();
  await server?.stop();
  await Promise.all(sinks.map((s) => s.close()));
});

/** A receiver that answers with what it was sent, as many do: the excerpt then holds personal data. */
const echo: Behaviour = (req) => ({ status: 200, body: `received ${req.body.toString()}` });

async function sink(behaviour: Behaviour = echo): Promise<Sink> {
  const s = await startSink(behaviour);
  sinks.push(s);
  return s;
}

const personal = (i: number | string) => JSON.stringify({ type: "customer.updated", email: `person-${i}@example.com`, name: `Person ${i}` });
const b64 = (s: string) => Buffer.from(s).toString("base64");

async function erase(apiKey: string, request: Record<string, unknown>) {
  const r = await rpc(server.url, "EraseEvents", request, apiKey);
  if (r.status !== 200) throw new Error(`EraseEvents: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body as { erasure: any; nextPageToken?: string };
}

/** The erasure record's counts (Connect JSON leaves zeros out). */
const counts = (e: any) => ({
  matched: e.eventsMatched ?? 0, erased: e.eventsErased ?? 0, messages: e.messagesErased ?? 0, attempts: e.attemptsErased ?? 0, skipped: e.eventsSkipped ?? 0,
});

/** Fan-out through IngestService: one message, one event per subscribed endpoint. */
async function fanOut(apiKey: string, eventType: string, payload: string): Promise<{ messageId: string; eventIds: string[] }> {
  const r = await rpc(server.url, "Ingest", { payload: b64(payload), contentType: "application/json", eventType, headers: { "x-customer": "person" } }, apiKey);
  if (r.status !== 200) throw new Error(`Ingest: ${r.status} ${JSON.stringify(r.body)}`);
  return { messageId: r.body.messageId, eventIds: r.body.eventIds };
}

/** Rows anywhere in the tables erasure cleans that still contain `text`. */
async function stored(text: string): Promise<number> {
  const { rows } = await db.query<{ n: string }>(
    `SELECT (SELECT count(*) FROM messages WHERE position(convert_to($1, 'UTF8') IN payload) > 0 OR headers::text LIKE '%' || $1 || '%')
          + (SELECT count(*) FROM delivery_attempts WHERE response_excerpt LIKE '%' || $1 || '%')
          + (SELECT count(*) FROM erasures e WHERE row_to_json(e)::text LIKE '%' || $1 || '%') AS n`,
    [text],
  );
  return Number(rows[0]!.n);
}

describe("EraseEvents by event ids", () => {
  it("removes payload, headers and response excerpts at once, records who asked, and leaves the rest", async () => {
    const s = await sink();
    const d = await createDestination(server.url, s.url);
    const bodies = [0, 1, 2].map((i) => personal(`ids-${i}`));
    const ids: string[] = [];
    for (const body of bodies) ids.push(await ingest(server.url, d.endpointId, body, { "x-github-event": "push" }));
    for (const id of ids) await eventReaching(server.url, d.apiKey, id, "EVENT_STATUS_DELIVERED");
    const before = await getEvent(server.url, d.apiKey, ids[0]!);
    expect(before.headers).toEqual({ "x-github-event": "push" });
    expect(before.attempts[0].responseExcerpt).toContain("person-ids-0@example.com");
    expect(before.payloadErasedAt).toBeUndefined();
    expect(await stored("person-ids-0@example.com")).toBeGreaterThan(0);

    const { erasure, nextPageToken } = await erase(d.apiKey, { eventIds: [ids[0], ids[1], ids[0]] });
    expect(nextPageToken ?? "").toBe("");
    expect(counts(erasure)).toEqual({ matched: 2, erased: 2, messages: 2, attempts: 2, skipped: 0 });
    const key = (await rpc(server.url, "ListApiKeys", {}, d.apiKey)).body.apiKeys[0];
    expect(erasure).toMatchObject({ apiKeyId: key.id, eventIds: [ids[0], ids[1]] });
    expect(Date.parse(erasure.erasedAt)).toBeGreaterThan(0);

    for (const [i, id] of [ids[0]!, ids[1]!].entries()) {
      const after = await getEvent(server.url, d.apiKey, id);
      expect(after).toMatchObject({ id, status: "EVENT_STATUS_DELIVERED", erasureId: erasure.id, payloadErasedAt: erasure.erasedAt });
      expect([after.payload, after.headers, after.attempts[0].responseExcerpt]).toEqual([undefined, undefined, undefined]);
      // What the receipt commits to stays visible: the tenant can still match a payload it kept.
      expect(after.attempts[0].payloadSha256).toBe(sha256(bodies[i]!).toString("hex"));
      const message = (await rpc(server.url, "GetMessage", { messageId: after.messageId }, d.apiKey)).body.message;
      expect(message).toMatchObject({ erasureId: erasure.id, payloadErasedAt: erasure.erasedAt });
      expect(message.payload).toBeUndefined();
    }
    const listed = (await rpc(server.url, "ListEvents", { endpointId: d.endpointId }, d.apiKey)).body.events;
    expect(listed.filter((e: any) => e.payloadErasedAt !== undefined).map((e: any) => e.id).sort()).toEqual([ids[0], ids[1]].sort());
    const kept = await getEvent(server.url, d.apiKey, ids[2]!);
    expect([kept.payload, kept.headers, kept.payloadErasedAt]).toEqual([b64(bodies[2]!), { "x-github-event": "push" }, undefined]);

    expect(await stored("person-ids-0@example.com")).toBe(0);
    expect(await stored("person-ids-1@example.com")).toBe(0);
    expect(await stored("person-ids-2@example.com")).toBe(2);

    // Erasing again changes nothing and says so.
    expect(counts((await erase(d.apiKey, { eventIds: [ids[0]] })).erasure)).toEqual({ matched: 1, erased: 0, messages: 0, attempts: 0, skipped: 0 });
  });

  it("proofs of the erased attempts still download and verify, with and without the payload the tenant kept", async () => {
    const s = await sink();
    const d = await createDestination(server.url, s.url);
    const body = personal("proof");
    const id = await ingest(server.url, d.endpointId, body);
    const delivered = await eventReaching(server.url, d.apiKey, id, "EVENT_STATUS_DELIVERED");
    const attemptId = delivered.attempts[0].id;
    await bundleFor(server.url, d.apiKey, attemptId);
    await erase(d.apiKey, { eventIds: [id] });

    const bundle = await bundleFor(server.url, d.apiKey, attemptId);
    const keys = await vkeysOf(server.url, d.apiKey);
    expect(verifyProofBundle(bundle, { trustedKeys: keys, requireTimestamp: true })).toMatchObject({ ok: true, payloadVerified: false });
    expect(verifyProofBundle(bundle, { trustedKeys: keys, payload: Buffer.from(body) })).toMatchObject({ ok: true, payloadVerified: true });
    expect(verifyProofBundle(bundle, { trustedKeys: keys, payload: Buffer.from(personal("someone else")) })).toMatchObject({ ok: false, code: "PAYLOAD_MISMATCH" });

    const withPayload = await kapselVerifyProof(bundle, keys, Buffer.from(body));
    expect([withPayload.code, withPayload.stdout]).toEqual([0, expect.stringContaining(`attempt id ${attemptId}`)]);
    expect(withPayload.stdout).toMatch(/payload\s+matches payload_sha256/);
    const without = await kapselVerifyProof(bundle, keys);
    expect([without.code, without.stdout]).toEqual([0, expect.stringMatching(/payload\s+not checked/)]);
    const other = await kapselVerifyProof(bundle, keys, Buffer.from(personal("someone else")));
    expect([other.code, other.stdout + other.stderr]).toEqual([1, expect.stringContaining("PAYLOAD_MISMATCH")]);

    // The plain download route serves the same bundle.
    const res = await fetch(`${server.url}/v1/attempts/${attemptId}/proof`, { headers: { authorization: `Bearer ${d.apiKey}` } });
    expect([res.status, await res.text()]).toEqual([200, bundle]);
  });

  it("an erased event cannot be replayed: RetryEvent and RecoverEvents answer E2006", async () => {
    const s = await sink(alwaysFail(500));
    const d = await createDestination(server.url, s.url, { maxAttempts: 1 });
    const since = new Date(Date.now() - 60_000).toISOString();
    const erased = await ingest(server.url, d.endpointId, personal("replay"));
    await eventReaching(server.url, d.apiKey, erased, "EVENT_STATUS_FAILED");
    await erase(d.apiKey, { eventIds: [erased] });

    const retry = await rpc(server.url, "RetryEvent", { eventId: erased }, d.apiKey);
    expect([retry.body.code, errorCode(retry.body)]).toEqual(["failed_precondition", "E2006"]);
    expect(retry.body.message).toMatch(/^E2006: .*erased/);
    const recover = await rpc(server.url, "RecoverEvents", { endpointId: d.endpointId, since }, d.apiKey);
    expect([recover.body.code, errorCode(recover.body)]).toEqual(["failed_precondition", "E2006"]);
    expect((await getEvent(server.url, d.apiKey, erased)).status).toBe("EVENT_STATUS_FAILED");

    // With a failed event that still has its payload, recovery re-queues that one and counts the other.
    const keptId = await ingest(server.url, d.endpointId, personal("replay-kept"));
    await eventReaching(server.url, d.apiKey, keptId, "EVENT_STATUS_FAILED");
    const mixed = await rpc(server.url, "RecoverEvents", { endpointId: d.endpointId, since }, d.apiKey);
    expect([mixed.status, mixed.body]).toEqual([200, { count: 1, erased: 1 }]);
    await until("the recovered event's second attempt", async () => ((await getEvent(server.url, d.apiKey, keptId)).attemptCount === 2 ? true : undefined));
    expect(s.forEvent(erased)).toHaveLength(1);
    // The sender never saw the erased event again, and its job table row never came back.
    const jobs = await db.query("SELECT 1 FROM delivery_jobs WHERE event_id = $1", [erased]);
    expect(jobs.rowCount).toBe(0);
  });
});

describe("fan-out: one stored payload for all of a message's events", () => {
  it("erasing one event of a fanned-out message erases the message for every one of its events", async () => {
    const [a, b] = [await sink(), await sink()];
    const d = await createDestination(server.url, a.url, { eventTypes: ["order.*"] });
    const second = await addEndpoint(server.url, d.apiKey, b.url, { eventTypes: ["order.paid"] });
    const { messageId, eventIds } = await fanOut(d.apiKey, "order.paid", personal("fan"));
    expect(eventIds).toHaveLength(2);
    for (const id of eventIds) await eventReaching(server.url, d.apiKey, id, "EVENT_STATUS_DELIVERED");

    const { erasure } = await erase(d.apiKey, { eventIds: [eventIds[0]] });
    expect(counts(erasure)).toEqual({ matched: 1, erased: 2, messages: 1, attempts: 2, skipped: 0 });
    for (const id of eventIds) expect(await getEvent(server.url, d.apiKey, id)).toMatchObject({ payloadErasedAt: erasure.erasedAt, erasureId: erasure.id });
    expect(await stored("person-fan@example.com")).toBe(0);
    const message = (await rpc(server.url, "GetMessage", { messageId }, d.apiKey)).body.message;
    expect([message.payload, message.headers, message.erasureId]).toEqual([undefined, undefined, erasure.id]);
    expect(second.endpointId).not.toBe(d.endpointId);
  });

  it("by message id: every event of the message", async () => {
    const [a, b] = [await sink(), await sink()];
    const d = await createDestination(server.url, a.url, { eventTypes: ["invoice.paid"] });
    await addEndpoint(server.url, d.apiKey, b.url, { eventTypes: ["invoice.*"] });
    const one = await fanOut(d.apiKey, "invoice.paid", personal("message-1"));
    const two = await fanOut(d.apiKey, "invoice.paid", personal("message-2"));
    for (const id of [...one.eventIds, ...two.eventIds]) await eventReaching(server.url, d.apiKey, id, "EVENT_STATUS_DELIVERED");

    const { erasure } = await erase(d.apiKey, { messageId: one.messageId });
    expect(counts(erasure)).toEqual({ matched: 2, erased: 2, messages: 1, attempts: 2, skipped: 0 });
    expect(erasure.messageId).toBe(one.messageId);
    expect(await stored("person-message-1@example.com")).toBe(0);
    expect(await stored("person-message-2@example.com")).toBeGreaterThan(0);
    for (const id of two.eventIds) expect((await getEvent(server.url, d.apiKey, id)).payloadErasedAt).toBeUndefined();
  });

  it("a message with an event still in flight is left alone, and counted as skipped", async () => {
    const [fast, stuck] = [await sink(), await sink(hang)];
    const d = await createDestination(server.url, fast.url, { eventTypes: ["order.*"] });
    const slow = await addEndpoint(server.url, d.apiKey, stuck.url, { eventTypes: ["order.shipped"], timeoutMs: 60_000 });
    const { messageId, eventIds } = await fanOut(d.apiKey, "order.shipped", personal("in-flight"));
    const events = await Promise.all(eventIds.map((id) => getEvent(server.url, d.apiKey, id)));
    const deliveredId = events.find((e) => e.endpointId === d.endpointId)!.id;
    const stuckId = events.find((e) => e.endpointId === slow.endpointId)!.id;
    await eventReaching(server.url, d.apiKey, deliveredId, "EVENT_STATUS_DELIVERED");
    await stuck.waitFor(1);
    const direct = await ingest(server.url, slow.endpointId, personal("in-flight-direct"));
    await stuck.waitFor(2);

    const { erasure } = await erase(d.apiKey, { eventIds: [deliveredId, stuckId, direct] });
    expect(counts(erasure)).toEqual({ matched: 3, erased: 0, messages: 0, attempts: 0, skipped: 3 });
    expect((await getEvent(server.url, d.apiKey, deliveredId)).payload).toBe(b64(personal("in-flight")));
    expect((await rpc(server.url, "GetMessage", { messageId }, d.apiKey)).body.message.payloadErasedAt).toBeUndefined();
    expect((await getEvent(server.url, d.apiKey, direct)).status).toBe("EVENT_STATUS_DELIVERING");
  });
});

describe("EraseEvents by endpoint and time", () => {
  it("an endpoint's events, a bounded number per call, continued with next_page_token", async () => {
    const s = await sink();
    const d = await createDestination(server.url, s.url);
    const other = await addEndpoint(server.url, d.apiKey, s.url);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await ingest(server.url, d.endpointId, personal(`page-${i}`)));
    const untouched = await ingest(server.url, other.endpointId, personal("other-endpoint"));
    for (const id of [...ids, untouched]) await eventReaching(server.url, d.apiKey, id, "EVENT_STATUS_DELIVERED");

    const matched: number[] = [];
    let total = 0;
    let pageToken = "";
    for (let call = 0; call < 5; call++) {
      const r = await erase(d.apiKey, { endpointId: d.endpointId, limit: 2, pageToken });
      expect(r.erasure.endpointId).toBe(d.endpointId);
      matched.push(counts(r.erasure).matched);
      total += counts(r.erasure).erased;
      pageToken = r.nextPageToken ?? "";
      if (pageToken === "") break;
    }
    expect([matched, total]).toEqual([[2, 2, 1], 5]);
    for (const id of ids) expect((await getEvent(server.url, d.apiKey, id)).payloadErasedAt).toBeDefined();
    expect((await getEvent(server.url, d.apiKey, untouched)).payloadErasedAt).toBeUndefined();
  });

  it("a time range, alone or with an endpoint, takes only the events received in it", async () => {
    const s = await sink();
    const d = await createDestination(server.url, s.url);
    const other = await addEndpoint(server.url, d.apiKey, s.url);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push(await ingest(server.url, d.endpointId, personal(`range-${i}`)));
    const elsewhere = await ingest(server.url, other.endpointId, personal("range-elsewhere"));
    const events = [];
    for (const id of [...ids, elsewhere]) events.push(await eventReaching(server.url, d.apiKey, id, "EVENT_STATUS_DELIVERED"));

    // [event 1, event 3) on this endpoint: events 1 and 2; the other endpoint's event came later.
    const both = await erase(d.apiKey, { endpointId: d.endpointId, receivedAfter: events[1].receivedAt, receivedBefore: events[3].receivedAt });
    expect(counts(both.erasure)).toMatchObject({ matched: 2, erased: 2 });
    expect(both.erasure).toMatchObject({ receivedAfter: events[1].receivedAt, receivedBefore: events[3].receivedAt });
    const erasedNow = async () => {
      const out: string[] = [];
      for (const id of [...ids, elsewhere]) if ((await getEvent(server.url, d.apiKey, id)).payloadErasedAt) out.push(id);
      return out;
    };
    expect(await erasedNow()).toEqual([ids[1], ids[2]]);

    // A range alone covers every endpoint of the tenant: from event 3 on.
    const range = await erase(d.apiKey, { receivedAfter: events[3].receivedAt });
    expect(counts(range.erasure)).toMatchObject({ matched: 2, erased: 2 });
    expect(await erasedNow()).toEqual([ids[1], ids[2], ids[3], elsewhere]);
  });
});

describe("erasure records", () => {
  it("ListErasures pages through a tenant's records, newest first, with no content in them", async () => {
    const s = await sink();
    const d = await createDestination(server.url, s.url);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await ingest(server.url, d.endpointId, personal(`record-${i}`)));
    for (const id of ids) await eventReaching(server.url, d.apiKey, id, "EVENT_STATUS_DELIVERED");
    const made: string[] = [];
    for (const id of ids) made.push((await erase(d.apiKey, { eventIds: [id] })).erasure.id);

    const first = await rpc(server.url, "ListErasures", { pageSize: 2 }, d.apiKey);
    expect(first.body.erasures.map((e: any) => e.id)).toEqual([made[2], made[1]]);
    const second = await rpc(server.url, "ListErasures", { pageSize: 2, pageToken: first.body.nextPageToken }, d.apiKey);
    expect([second.body.erasures.map((e: any) => e.id), second.body.nextPageToken]).toEqual([[made[0]], undefined]);
    expect(second.body.erasures[0]).toMatchObject({ eventIds: [ids[0]], eventsMatched: 1, eventsErased: 1, messagesErased: 1, attemptsErased: 1 });

    // The operator can read them for a tenant; another tenant cannot.
    const asAdmin = await rpc(server.url, "ListErasures", { tenantId: d.tenantId }, ADMIN_TOKEN);
    expect(asAdmin.body.erasures.map((e: any) => e.id)).toEqual([...made].reverse());
    const stranger = await createTenant(server.url, ADMIN_TOKEN, "stranger");
    const peek = await rpc(server.url, "ListErasures", { tenantId: d.tenantId }, stranger.apiKey);
    expect([peek.status, errorCode(peek.body)]).toEqual([404, "E1008"]);
    expect((await rpc(server.url, "ListErasures", {}, stranger.apiKey)).body.erasures).toBeUndefined();
    expect(await stored("person-record-0@example.com")).toBe(0);
  });
});

describe("refusals", () => {
  let d: Awaited<ReturnType<typeof createDestination>>;
  let eventId: string;
  beforeAll(async () => {
    const s = await sink();
    d = await createDestination(server.url, s.url);
    eventId = await ingest(server.url, d.endpointId, personal("refusals"));
    await eventReaching(server.url, d.apiKey, eventId, "EVENT_STATUS_DELIVERED");
  });

  const code = async (request: Record<string, unknown>, token?: string) => {
    const r = await rpc(server.url, "EraseEvents", request, token);
    return [r.status, errorCode(r.body)];
  };

  it("needs a tenant key with scope manage", async () => {
    expect(await code({ eventIds: [eventId] })).toEqual([401, "E1004"]);
    expect(await code({ eventIds: [eventId] }, "ksk_not-a-key")).toEqual([401, "E1004"]);
    expect(await code({ eventIds: [eventId] }, ADMIN_TOKEN)).toEqual([403, "E1004"]);
    for (const scopes of [["SCOPE_READ"], ["SCOPE_INGEST"]]) {
      const key = (await rpc(server.url, "CreateApiKey", { name: "limited", scopes }, d.apiKey)).body.secret;
      expect(await code({ eventIds: [eventId] }, key)).toEqual([403, "E1004"]);
    }
    expect((await getEvent(server.url, d.apiKey, eventId)).payloadErasedAt).toBeUndefined();
  });

  it("another tenant's ids are not found, and nothing of theirs is erased", async () => {
    const stranger = await createTenant(server.url, ADMIN_TOKEN, "stranger");
    const message = (await getEvent(server.url, d.apiKey, eventId)).messageId;
    expect(await code({ eventIds: [eventId] }, stranger.apiKey)).toEqual([404, "E2002"]);
    expect(await code({ messageId: message }, stranger.apiKey)).toEqual([404, "E2004"]);
    expect(await code({ endpointId: d.endpointId }, stranger.apiKey)).toEqual([404, "E1003"]);
    // A range selects only the caller's own events.
    const all = await erase(stranger.apiKey, { receivedAfter: "2000-01-01T00:00:00Z" });
    expect(counts(all.erasure).matched).toBe(0);
    expect(await code({ eventIds: [eventId, "0190b6d0-0000-7000-8000-000000000000"] }, d.apiKey)).toEqual([404, "E2002"]);
    expect((await getEvent(server.url, d.apiKey, eventId)).payloadErasedAt).toBeUndefined();
  });

  it("malformed selections are E1006, before anything is erased", async () => {
    const id = eventId;
    const cases: Record<string, unknown>[] = [
      {},
      { eventIds: [id], messageId: id },
      { eventIds: [id], endpointId: d.endpointId },
      { messageId: id, receivedAfter: "2020-01-01T00:00:00Z" },
      { eventIds: ["not-a-uuid"] },
      { eventIds: Array.from({ length: 101 }, () => id) },
      { messageId: "x" },
      { endpointId: "../etc" },
      { eventIds: [id], limit: 1001 },
      { eventIds: [id], pageToken: "garbage" },
      { eventIds: [id], pageToken: Buffer.from(JSON.stringify(["99999999999999999999", id])).toString("base64url") },
    ];
    for (const request of cases) expect([JSON.stringify(request).slice(0, 80), ...(await code(request, d.apiKey))]).toEqual([JSON.stringify(request).slice(0, 80), 400, "E1006"]);
    expect((await getEvent(server.url, d.apiKey, eventId)).payloadErasedAt).toBeUndefined();
  });

  it("ListErasures refuses bad page tokens and page sizes with E1006", async () => {
    for (const request of [{ pageToken: "garbage" }, { pageToken: Buffer.from(JSON.stringify(["99999999999999999999"])).toString("base64url") }, { pageSize: 501 }]) {
      const r = await rpc(server.url, "ListErasures", request, d.apiKey);
      expect([r.status, errorCode(r.body)]).toEqual([400, "E1006"]);
    }
    const admin = await rpc(server.url, "ListErasures", {}, ADMIN_TOKEN);
    expect([admin.status, errorCode(admin.body)]).toEqual([400, "E1006"]);
  });
});

describe("the log across erasures", () => {
  it("kapsel log verify still passes", async () => {
    await until("every recorded attempt in the log", async () => {
      const { rows } = await db.query<{ q: string; a: string; s: string }>(
        "SELECT (SELECT count(*) FROM log_queue) AS q, (SELECT count(*) FROM delivery_attempts) AS a, (SELECT tree_size FROM log_state) AS s");
      return rows[0]!.q === "0" && rows[0]!.a === rows[0]!.s ? true : undefined;
    });
    const r = await kapselCli(["log", "verify"], { DATABASE_URL: server.databaseUrl });
    expect([r.code, r.stdout]).toEqual([0, expect.stringMatching(/^log verified: \d+ leaves/)]);
  });
});
