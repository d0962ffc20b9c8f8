// Fan-out as a backend uses it: send once by event type, and every enabled endpoint of the tenant
// subscribed to that type (exact or prefix.*) and sharing one of its channels gets its own event,
// delivered and signed like any other; a message that matches nothing is still stored.
import { createHmac } from "node:crypto";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addEndpoint, eventReaching, getEvent, until } from "../../test/support/delivery.ts";
import { connect } from "../../test/support/database.ts";
import { createTenant, errorCode, rpc } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";
import { startSink, type Sink } from "../../test/support/sink.ts";

let server: TestServer;
let db: pg.Client;
let sink: Sink;
beforeAll(async () => {
  server = await startTestServer();
  db = await connect(server.databaseUrl);
  sink = await startSink();
});
afterAll(async () => {
  await db?.end();
  await server?.stop();
  await sink?.close();
});

const b64 = (s: string) => Buffer.from(s).toString("base64");

async function send(apiKey: string, fields: Record<string, unknown>) {
  return rpc(server.url, "Ingest", { payload: b64('{"hello":"fan-out"}'), ...fields }, apiKey);
}

/** A new tenant with endpoints subscribed as given, each at its own path on the shared sink. */
async function tenantWith(subscriptions: { eventTypes?: string[]; channels?: string[]; disabled?: boolean }[]) {
  const tenant = await createTenant(server.url, ADMIN_TOKEN, "fan-out");
  const endpoints: string[] = [];
  for (const [i, s] of subscriptions.entries()) {
    endpoints.push((await addEndpoint(server.url, tenant.apiKey, `${sink.url}?e=${i}`, s)).endpointId);
  }
  return { apiKey: tenant.apiKey, tenantId: tenant.id, endpoints };
}

describe("fan-out ingest", () => {
  it("one message reaches exactly the enabled endpoints subscribed to its type and channels, each with its own event", async () => {
    const t = await tenantWith([
      {},                                                      // 0: every type
      { eventTypes: ["invoice.paid"] },                        // 1: exact
      { eventTypes: ["invoice.*"] },                           // 2: wildcard
      { eventTypes: ["order.*"] },                             // 3: other types
      { eventTypes: ["invoice.*"], channels: ["acme"] },       // 4: channel it carries
      { eventTypes: ["invoice.*"], channels: ["globex"] },     // 5: channel it does not carry
      { eventTypes: ["invoice.paid"], disabled: true },        // 6: disabled
      { eventTypes: ["invoice"] },                             // 7: a type that is only a prefix
    ]);
    const r = await send(t.apiKey, { eventType: "invoice.paid", channels: ["acme", "other"] });
    expect(r.status).toBe(200);
    expect([r.body.eventId ?? "", r.body.messageId]).toEqual(["", expect.any(String)]);
    const events = await Promise.all((r.body.eventIds as string[]).map((id) => getEvent(server.url, t.apiKey, id)));
    expect(events.map((e) => e.endpointId).sort()).toEqual([t.endpoints[0], t.endpoints[1], t.endpoints[2], t.endpoints[4]].sort());
    for (const e of events) expect(e).toMatchObject({ messageId: r.body.messageId, eventType: "invoice.paid", channels: ["acme", "other"] });
    // Each is delivered on its own, signed with its own id.
    for (const id of r.body.eventIds as string[]) await eventReaching(server.url, t.apiKey, id, "EVENT_STATUS_DELIVERED");
    for (const id of r.body.eventIds as string[]) expect(sink.forEvent(id)).toHaveLength(1);
    // The payload is stored once.
    const rows = await db.query("SELECT count(*)::int AS n FROM messages WHERE id = $1", [r.body.messageId]);
    expect(rows.rows[0].n).toBe(1);
  });

  it("a message that matches no endpoint is accepted and visible with no events", async () => {
    const t = await tenantWith([{ eventTypes: ["order.*"] }]);
    const r = await send(t.apiKey, { eventType: "invoice.paid" });
    expect([r.status, r.body.eventIds ?? []]).toEqual([200, []]);
    const m = await rpc(server.url, "GetMessage", { messageId: r.body.messageId }, t.apiKey);
    expect(m.body.message).toMatchObject({ id: r.body.messageId, eventType: "invoice.paid" });
    expect(m.body.message.eventCount ?? 0).toBe(0);
    expect(m.body.message.events ?? []).toEqual([]);
    expect(Buffer.from(m.body.message.payload, "base64").toString()).toBe('{"hello":"fan-out"}');
  });

  it("to one endpoint and to fifty, with mixed types, wildcards and channels", async () => {
    const one = await tenantWith([{ eventTypes: ["a.b"] }]);
    const r1 = await send(one.apiKey, { eventType: "a.b" });
    expect(r1.body.eventIds).toHaveLength(1);

    // 50 that take it (empty, exact, two wildcard depths, channel), 25 that do not.
    const takes = Array.from({ length: 50 }, (_, i) => [{}, { eventTypes: ["user.signed_up"] }, { eventTypes: ["user.*"] }, { eventTypes: ["x.y", "user.*"] }, { channels: ["c-7"] }][i % 5]!);
    const refuses = Array.from({ length: 25 }, (_, i) => [{ eventTypes: ["user.deleted"] }, { eventTypes: ["users.*"] }, { channels: ["c-8"] }, { eventTypes: ["kapsel.*"] }, { disabled: true }][i % 5]!);
    const fifty = await tenantWith([...takes, ...refuses]);
    const r = await send(fifty.apiKey, { eventType: "user.signed_up", channels: ["c-7"] });
    expect(r.body.eventIds).toHaveLength(50);
    const listed = await rpc(server.url, "ListEvents", { messageId: r.body.messageId, pageSize: 100 }, fifty.apiKey);
    expect(listed.body.events.map((e: any) => e.endpointId).sort()).toEqual(fifty.endpoints.slice(0, 50).sort());
    await until("all fifty delivered", async () => {
      const m = await rpc(server.url, "GetMessage", { messageId: r.body.messageId }, fifty.apiKey);
      return m.body.message.events.every((e: any) => e.status === "EVENT_STATUS_DELIVERED") ? true : undefined;
    });
  });

  it("a repeated idempotency key answers the first message and its events, per tenant", async () => {
    const t = await tenantWith([{}, {}]);
    const first = await send(t.apiKey, { eventType: "order.created", idempotencyKey: "order-9" });
    const again = await send(t.apiKey, { eventType: "order.created", idempotencyKey: "order-9", payload: b64("{}") });
    expect(again.body).toEqual({ messageId: first.body.messageId, eventIds: first.body.eventIds, duplicate: true });
    // Another tenant's equal key is its own.
    const other = await tenantWith([{}]);
    const theirs = await send(other.apiKey, { eventType: "order.created", idempotencyKey: "order-9" });
    expect([theirs.body.duplicate ?? false, theirs.body.messageId === first.body.messageId]).toEqual([false, false]);
  });

  it("IngestBatch fans out per item and answers each", async () => {
    const t = await tenantWith([{ eventTypes: ["a.*"] }, { eventTypes: ["b.*"] }]);
    const r = await rpc(server.url, "IngestBatch", {
      events: [
        { eventType: "a.one", payload: b64("1") },
        { eventType: "b.two", payload: b64("2") },
        { eventType: "c.three", payload: b64("3") },
        { eventType: "Not Valid", payload: b64("4") },
        { payload: b64("5") },
      ],
    }, t.apiKey);
    expect(r.body.results.map((x: any) => [x.status, x.eventIds?.length ?? 0, x.errorCode ?? ""])).toEqual([
      ["INGEST_RESULT_STATUS_ACCEPTED", 1, ""],
      ["INGEST_RESULT_STATUS_ACCEPTED", 1, ""],
      ["INGEST_RESULT_STATUS_ACCEPTED", 0, ""],
      ["INGEST_RESULT_STATUS_ERROR", 0, "E1006"],
      ["INGEST_RESULT_STATUS_ERROR", 0, "E1006"],
    ]);
  });

  it("refuses malformed types and channels with E1006 and never crosses tenants", async () => {
    const t = await tenantWith([{}]);
    for (const fields of [{ eventType: "" }, { eventType: "UPPER.case" }, { eventType: "a".repeat(129) }, { eventType: "ok", channels: ["has space"] }, { eventType: "ok", channels: Array.from({ length: 11 }, (_, i) => `c${i}`) }]) {
      const r = await send(t.apiKey, fields);
      expect([r.status, errorCode(r.body)], JSON.stringify(fields).slice(0, 80)).toEqual([400, "E1006"]);
    }
    const other = await tenantWith([{}]);
    const mine = await send(t.apiKey, { eventType: "x.y" });
    expect(mine.body.eventIds).toHaveLength(1);
    expect((await rpc(server.url, "GetMessage", { messageId: mine.body.messageId }, other.apiKey)).status).toBe(404);
  });

  it("ListEndpoints by type, ListEvents and ListMessages by type (wildcards too), RecoverEvents by type", async () => {
    const t = await tenantWith([{ eventTypes: ["invoice.*"] }, { eventTypes: ["order.created"] }, {}]);
    const byType = await rpc(server.url, "ListEndpoints", { eventType: "invoice.paid" }, t.apiKey);
    expect(byType.body.endpoints.map((e: any) => e.id).sort()).toEqual([t.endpoints[0], t.endpoints[2]].sort());
    const a = await send(t.apiKey, { eventType: "invoice.paid" });
    const b = await send(t.apiKey, { eventType: "order.created" });
    for (const id of [...a.body.eventIds, ...b.body.eventIds]) await eventReaching(server.url, t.apiKey, id, "EVENT_STATUS_DELIVERED");
    const invoices = await rpc(server.url, "ListEvents", { eventType: "invoice.*" }, t.apiKey);
    expect(invoices.body.events.map((e: any) => e.id).sort()).toEqual([...a.body.eventIds].sort());
    const messages = await rpc(server.url, "ListMessages", { eventType: "order.created" }, t.apiKey);
    expect(messages.body.messages.map((m: any) => m.id)).toEqual([b.body.messageId]);
    expect(errorCode((await rpc(server.url, "ListEvents", { eventType: "bad type" }, t.apiKey)).body)).toBe("E1006");
    // RecoverEvents by type re-queues only that type's failed events.
    await db.query("UPDATE events SET status = 'failed' WHERE id = ANY($1::uuid[])", [[...a.body.eventIds, ...b.body.eventIds]]);
    const since = new Date(Date.now() - 60_000).toISOString();
    const recovered = await rpc(server.url, "RecoverEvents", { eventType: "invoice.*", since }, t.apiKey);
    expect(recovered.body.count).toBe(a.body.eventIds.length);
    for (const id of b.body.eventIds) expect((await getEvent(server.url, t.apiKey, id)).status).toBe("EVENT_STATUS_FAILED");
    expect(errorCode((await rpc(server.url, "RecoverEvents", { since }, t.apiKey)).body)).toBe("E1006");
  });

  it("endpoint subscriptions are validated and updated, and take effect for the next message", async () => {
    const t = await tenantWith([{ eventTypes: ["a.*"] }]);
    for (const bad of [{ eventTypes: ["*"] }, { eventTypes: ["A.B"] }, { channels: ["no spaces"] }, { eventTypes: Array.from({ length: 101 }, (_, i) => `t${i}`) }]) {
      const r = await rpc(server.url, "CreateEndpoint", { url: sink.url, allowHttp: true, ...bad }, t.apiKey);
      expect(errorCode(r.body)).toBe("E1006");
    }
    expect((await send(t.apiKey, { eventType: "b.one" })).body.eventIds ?? []).toHaveLength(0);
    const u = await rpc(server.url, "UpdateEndpoint", { endpointId: t.endpoints[0], eventTypes: ["b.*"], updateEventTypes: true }, t.apiKey);
    expect(u.body.endpoint.eventTypes).toEqual(["b.*"]);
    expect((await send(t.apiKey, { eventType: "b.one" })).body.eventIds).toHaveLength(1);
    // Channels set and cleared.
    await rpc(server.url, "UpdateEndpoint", { endpointId: t.endpoints[0], channels: ["x"], updateChannels: true }, t.apiKey);
    expect((await send(t.apiKey, { eventType: "b.one" })).body.eventIds ?? []).toHaveLength(0);
    await rpc(server.url, "UpdateEndpoint", { endpointId: t.endpoints[0], channels: [], updateChannels: true }, t.apiKey);
    expect((await send(t.apiKey, { eventType: "b.one" })).body.eventIds).toHaveLength(1);
  });
});

describe("the event type on /ingest/{endpoint_id}", () => {
  it("comes from well-known senders' headers and bodies", async () => {
    const t = await tenantWith([{}]);
    const post = async (headers: Record<string, string>, body: string) => {
      const res = await fetch(`${server.url}/ingest/${t.endpoints[0]}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
      const { event_id } = (await res.json()) as { event_id: string };
      return (await getEvent(server.url, t.apiKey, event_id)).eventType ?? "";
    };
    expect(await post({ "x-github-event": "pull_request" }, "{}")).toBe("pull_request");
    expect(await post({ "x-shopify-topic": "orders/create" }, "{}")).toBe("orders.create");
    expect(await post({ "stripe-signature": "t=1,v1=00" }, '{"type":"invoice.paid"}')).toBe("invoice.paid");
    expect(await post({ "webhook-id": "msg_1", "webhook-signature": "v1,x", "webhook-timestamp": "1" }, '{"type":"user.created","data":{}}')).toBe("user.created");
    expect(await post({}, '{"type":"ignored.without.sender"}')).toBe("");
    expect(await post({ "x-github-event": "***" }, "{}")).toBe("");
  });
});

describe("sources", () => {
  /** A signed request as each sender makes it, computed here from the senders' specs. */
  const signers: Record<string, (secret: string, body: string) => Record<string, string>> = {
    SOURCE_SCHEME_HMAC_SHA256: (secret, body) => ({ "x-signature": createHmac("sha256", secret).update(body).digest("hex") }),
    SOURCE_SCHEME_GITHUB: (secret, body) => ({ "x-hub-signature-256": `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`, "x-github-event": "issues", "x-github-delivery": crypto.randomUUID() }),
    SOURCE_SCHEME_STRIPE: (secret, body) => {
      const t = Math.floor(Date.now() / 1000);
      return { "stripe-signature": `t=${t},v1=${createHmac("sha256", secret).update(`${t}.${body}`).digest("hex")}` };
    },
    SOURCE_SCHEME_STANDARD_WEBHOOKS: (secret, body) => {
      const id = `msg_${crypto.randomUUID()}`;
      const t = Math.floor(Date.now() / 1000);
      const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
      return { "webhook-id": id, "webhook-timestamp": String(t), "webhook-signature": `v1,${createHmac("sha256", key).update(`${id}.${t}.${body}`).digest("base64")}` };
    },
    SOURCE_SCHEME_NONE: () => ({}),
  };
  const types: Record<string, string> = {
    SOURCE_SCHEME_HMAC_SHA256: "",
    SOURCE_SCHEME_GITHUB: "issues",
    SOURCE_SCHEME_STRIPE: "invoice.paid",
    SOURCE_SCHEME_STANDARD_WEBHOOKS: "invoice.paid",
    SOURCE_SCHEME_NONE: "",
  };

  it.each(Object.keys(signers))("%s: a signed request fans out to the two subscribed endpoints; a wrong signature is E1002 and stores nothing", async (scheme) => {
    const t = await tenantWith([{}, {}, { eventTypes: ["unrelated.*"] }]);
    const created = await rpc(server.url, "CreateSource", { name: `src-${scheme}`, scheme }, t.apiKey);
    expect(created.status).toBe(200);
    const { source, secret } = created.body;
    expect(source.ingestPath).toBe(`/ingest/sources/${source.id}`);
    const body = '{"type":"invoice.paid","data":{"id":"in_1"}}';
    const res = await fetch(`${server.url}${source.ingestPath}`, { method: "POST", headers: { "content-type": "application/json", ...signers[scheme]!(secret ?? "", body) }, body });
    expect(res.status).toBe(202);
    const answer = (await res.json()) as { message_id: string; event_ids: string[] };
    expect(answer.event_ids).toHaveLength(2);
    const events = await Promise.all(answer.event_ids.map((id) => eventReaching(server.url, t.apiKey, id, "EVENT_STATUS_DELIVERED")));
    expect(events.map((e) => e.endpointId).sort()).toEqual([t.endpoints[0], t.endpoints[1]].sort());
    expect(events.every((e) => (e.eventType ?? "") === types[scheme])).toBe(true);
    for (const id of answer.event_ids) expect(sink.forEvent(id)[0]!.body.toString()).toBe(body);
    const message = await rpc(server.url, "GetMessage", { messageId: answer.message_id }, t.apiKey);
    expect(message.body.message.sourceId).toBe(source.id);
    if (scheme !== "SOURCE_SCHEME_NONE") {
      const bad = await fetch(`${server.url}${source.ingestPath}`, { method: "POST", headers: { "content-type": "application/json", ...signers[scheme]!("wrong-secret-0000", body) }, body });
      expect([bad.status, ((await bad.json()) as { code: string }).code]).toEqual([401, "E1002"]);
    }
    const count = await db.query("SELECT count(*)::int AS n FROM messages WHERE source_id = $1", [source.id]);
    expect(count.rows[0].n).toBe(1);
  });

  it("event type from a header or a JSON pointer, fixed channels, a sender's retry stored once", async () => {
    const t = await tenantWith([{ eventTypes: ["deploy.*"], channels: ["prod"] }, { eventTypes: ["deploy.*"], channels: ["staging"] }]);
    const viaPointer = (await rpc(server.url, "CreateSource", { name: "ci", eventTypeFrom: "EVENT_TYPE_FROM_JSON_POINTER", eventTypePointer: "/meta/kind", channels: ["prod"] }, t.apiKey)).body.source;
    const post = (path: string, body: string, headers: Record<string, string> = {}) =>
      fetch(`${server.url}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));
    const a = await post(viaPointer.ingestPath, '{"meta":{"kind":"Deploy/Finished"}}', { "idempotency-key": "run-1" });
    expect([a.status, a.body.event_ids.length]).toEqual([202, 1]);
    expect((await getEvent(server.url, t.apiKey, a.body.event_ids[0])).eventType).toBe("deploy.finished");
    const retry = await post(viaPointer.ingestPath, '{"meta":{"kind":"Deploy/Finished"}}', { "idempotency-key": "run-1" });
    expect([retry.status, retry.body]).toEqual([200, { message_id: a.body.message_id, event_ids: a.body.event_ids, duplicate: true }]);
    const viaHeader = (await rpc(server.url, "CreateSource", { name: "hdr", eventTypeFrom: "EVENT_TYPE_FROM_HEADER", eventTypeHeader: "X-Kind", channels: ["staging"] }, t.apiKey)).body.source;
    const b = await post(viaHeader.ingestPath, "{}", { "x-kind": "deploy.started" });
    expect((await getEvent(server.url, t.apiKey, b.body.event_ids[0])).endpointId).toBe(t.endpoints[1]);
    expect(errorCode((await rpc(server.url, "CreateSource", { name: "x", eventTypeFrom: "EVENT_TYPE_FROM_JSON_POINTER", eventTypePointer: "type" }, t.apiKey)).body)).toBe("E1006");
  });

  it("rotation keeps the previous secret verifying for a day; a deleted source's URL is E2005; another tenant's source is not found", async () => {
    const t = await tenantWith([{}]);
    const { source, secret } = (await rpc(server.url, "CreateSource", { name: "gh", scheme: "SOURCE_SCHEME_GITHUB" }, t.apiKey)).body;
    const rotated = await rpc(server.url, "RotateSourceSecret", { sourceId: source.id, secret: "chosen-by-github" }, t.apiKey);
    expect(rotated.body.secret).toBe("chosen-by-github");
    const body = "{}";
    for (const s of [secret, "chosen-by-github"]) {
      const res = await fetch(`${server.url}${source.ingestPath}`, { method: "POST", headers: signers.SOURCE_SCHEME_GITHUB!(s, body), body });
      expect(res.status).toBe(202);
    }
    const other = await tenantWith([{}]);
    expect(errorCode((await rpc(server.url, "GetSource", { sourceId: source.id }, other.apiKey)).body)).toBe("E2005");
    expect((await rpc(server.url, "ListSources", {}, t.apiKey)).body.sources.map((s: any) => s.id)).toEqual([source.id]);
    await rpc(server.url, "DeleteSource", { sourceId: source.id }, t.apiKey);
    const gone = await fetch(`${server.url}${source.ingestPath}`, { method: "POST", headers: signers.SOURCE_SCHEME_GITHUB!("chosen-by-github", body), body });
    expect([gone.status, ((await gone.json()) as { code: string }).code]).toEqual([404, "E2005"]);
    const malformed = await fetch(`${server.url}/ingest/sources/not-a-uuid`, { method: "POST", body });
    expect([malformed.status, ((await malformed.json()) as { code: string }).code]).toEqual([400, "E1006"]);
  });
});
