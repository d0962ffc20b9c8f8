// Events that could never be sent: header fields the delivery client (undici) refuses to write —
// characters beyond Latin-1, control characters, `expect`, hop-by-hop and framing headers — are
// refused when they arrive (E1006), over the Ingest RPC and in kept-header lists, instead of being
// stored and failing every attempt. And an event that does fail before a byte leaves Kapsel (a row
// stored before this check existed) fails at once without counting against the circuit of a
// destination that is perfectly healthy.
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/config.ts";
import { connect } from "../../test/support/database.ts";
import { addEndpoint, eventReaching, getEvent, ingest, until } from "../../test/support/delivery.ts";
import { INGEST_ONLY } from "../../test/support/ingest.ts";
import { createTenant, errorCode, rpc } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";
import { startSink, type Sink } from "../../test/support/sink.ts";

let ingestOnly: TestServer;
let delivering: TestServer | undefined;
let sink: Sink;
let apiKey: string;
let endpointId: string;
beforeAll(async () => {
  sink = await startSink();
  ingestOnly = await startTestServer(INGEST_ONLY);
  ({ apiKey } = await createTenant(ingestOnly.url, ADMIN_TOKEN));
  ({ endpointId } = await addEndpoint(ingestOnly.url, apiKey, sink.url, { maxAttempts: 5 }));
});
afterAll(async () => {
  await delivering?.stop();
  await ingestOnly?.stop();
  await sink?.close();
});

const ingestWith = (headers: Record<string, string>) =>
  rpc(ingestOnly.url, "Ingest", { endpointId, payload: Buffer.from('{"type":"h"}').toString("base64"), headers }, apiKey);

describe("header fields are checked as RFC 9110 fields when they arrive", () => {
  it.each([
    ["a value beyond Latin-1", { "x-note": "price in \u20ac" }],
    ["an emoji", { "x-note": "\u{1F600}" }],
    ["a control character", { "x-note": "a\u0001b" }],
    ["DEL", { "x-note": "a\u007fb" }],
    ["a line feed", { "x-note": "a\nb" }],
    ["leading whitespace", { "x-note": " padded" }],
    ["trailing whitespace", { "x-note": "padded\t" }],
    ["expect", { expect: "100-continue" }],
    ["connection", { connection: "close" }],
    ["keep-alive", { "keep-alive": "timeout=5" }],
    ["transfer-encoding", { "transfer-encoding": "chunked" }],
    ["upgrade", { upgrade: "websocket" }],
    ["te", { te: "trailers" }],
    ["trailer", { trailer: "x-checksum" }],
    ["proxy-connection", { "proxy-connection": "keep-alive" }],
    ["http2-settings", { "http2-settings": "AAMAAABkAAQAAP__" }],
    ["host", { host: "elsewhere.example" }],
    ["content-length", { "content-length": "4096" }],
    ["a name with a space", { "x note": "v" }],
    ["a pseudo-header name", { ":path": "/admin" }],
    ["a name beyond ASCII", { "x-caf\u00e9": "v" }],
  ])("the Ingest RPC refuses %s with E1006 and stores nothing", async (_kind, headers) => {
    const db = await connect(ingestOnly.databaseUrl);
    try {
      const before = Number((await db.query("SELECT count(*) AS n FROM messages")).rows[0].n);
      const r = await ingestWith(headers);
      expect(r.status, JSON.stringify(r.body)).toBe(400);
      expect(errorCode(r.body)).toBe("E1006");
      // The reason names the field, never the value.
      const [name, value] = Object.entries(headers)[0]!;
      if (value.trim().length > 3) expect(r.body.message).not.toContain(value.trim());
      expect(r.body.message).toContain(JSON.stringify(name.slice(0, 100)).slice(1, -1).toLowerCase());
      expect(Number((await db.query("SELECT count(*) AS n FROM messages")).rows[0].n)).toBe(before);
    } finally {
      await db.end();
    }
  });

  it("IngestBatch refuses the bad item alone", async () => {
    const payload = Buffer.from("{}").toString("base64");
    const r = await rpc(ingestOnly.url, "IngestBatch", {
      events: [{ endpointId, payload, headers: { "x-ok": "fine" } }, { endpointId, payload, headers: { expect: "100-continue" } }],
    }, apiKey);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const [good, bad] = r.body.results;
    expect(good.status).toBe("INGEST_RESULT_STATUS_ACCEPTED");
    expect(bad.status).toBe("INGEST_RESULT_STATUS_ERROR");
    expect(bad.errorCode).toBe("E1006");
  });

  it("Latin-1 values, inner spaces and tabs are valid fields and are kept", async () => {
    const r = await ingestWith({ "x-note": "caf\u00e9 au\tlait", "x-empty": "" });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const db = await connect(ingestOnly.databaseUrl);
    try {
      const row = (await db.query("SELECT m.headers FROM events e JOIN messages m ON m.id = e.message_id WHERE e.id = $1", [r.body.eventId])).rows[0];
      expect(row.headers).toEqual({ "x-note": "caf\u00e9 au\tlait", "x-empty": "" });
    } finally {
      await db.end();
    }
  });

  it.each(["expect", "transfer-encoding", "connection", "upgrade", "host", "content-length", "webhook-signature", "x bad"])(
    "an endpoint cannot keep %s from its senders (CreateEndpoint and UpdateEndpoint answer E1006)",
    async (name) => {
      const created = await rpc(ingestOnly.url, "CreateEndpoint", { url: sink.url, allowHttp: true, keptHeaders: ["x-ok", name] }, apiKey);
      expect(created.status).toBe(400);
      expect(errorCode(created.body)).toBe("E1006");
      const updated = await rpc(ingestOnly.url, "UpdateEndpoint", { endpointId, keptHeaders: [name], updateKeptHeaders: true }, apiKey);
      expect(updated.status).toBe(400);
      expect(errorCode(updated.body)).toBe("E1006");
    },
  );

  it("KAPSEL_KEPT_HEADERS refuses a header that cannot be forwarded, naming the variable", () => {
    for (const value of ["x-ok,expect", "Transfer-Encoding", "x bad"]) {
      expect(() => loadConfig({ KAPSEL_KEPT_HEADERS: value })).toThrow(ConfigError);
      expect(() => loadConfig({ KAPSEL_KEPT_HEADERS: value })).toThrow(/^KAPSEL_KEPT_HEADERS: /);
    }
    expect(loadConfig({ KAPSEL_KEPT_HEADERS: "x-ok, X-Trace" }).ingest.keptHeaders).toEqual(["x-ok", "x-trace"]);
  });

  it("a sender's Expect header is never kept, even by an endpoint whose stored list names it (a row from before the check)", async () => {
    const db = await connect(ingestOnly.databaseUrl);
    try {
      const { endpointId: legacy } = await addEndpoint(ingestOnly.url, apiKey, sink.url);
      await db.query("UPDATE endpoints SET kept_headers = '{expect,x-trace}' WHERE id = $1", [legacy]);
      // Raw HTTP/1.1, as a sender that asks for 100-continue writes it (fetch cannot send Expect).
      const body = '{"type":"expecting"}';
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(ingestOnly.port, "127.0.0.1", () => {
          socket.write(`POST /ingest/${legacy} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n` +
            `Expect: 100-continue\r\nX-Trace: t-1\r\nConnection: close\r\n\r\n${body}`);
        });
        let text = "";
        socket.on("data", (d: Buffer) => (text += d.toString()));
        socket.on("end", () => resolve(text));
        socket.on("error", reject);
      });
      const status = /HTTP\/1\.1 (\d{3}) /g;
      const statuses = [...answer.matchAll(status)].map((m) => Number(m[1]));
      expect(statuses.at(-1), answer).toBe(202);
      const eventId = JSON.parse(answer.slice(answer.indexOf("\r\n\r\n{") + 4).replace(/^[^{]*/, "")).event_id;
      const row = (await db.query("SELECT m.headers FROM events e JOIN messages m ON m.id = e.message_id WHERE e.id = $1", [eventId])).rows[0];
      expect(row.headers).toEqual({ "x-trace": "t-1" });
    } finally {
      await db.end();
    }
  });
});

describe("an event that fails before anything is sent", () => {
  it("fails at once, is recorded and attested, and does not open the circuit of a healthy endpoint that keeps receiving other events", async () => {
    // Events stored before the check existed: their headers are edited in directly, while no
    // process delivers, to what undici refuses to write.
    const bad: string[] = [];
    for (let i = 0; i < 6; i++) bad.push((await ingestWith({ "x-note": `n${i}` })).body.eventId);
    const db = await connect(ingestOnly.databaseUrl);
    try {
      await db.query(`UPDATE messages SET headers = CASE WHEN e.n % 2 = 0 THEN '{"expect":"100-continue"}'::jsonb ELSE '{"x-note":"\u20ac"}'::jsonb END
        FROM (SELECT message_id, row_number() OVER () AS n FROM events WHERE id = ANY($1::uuid[])) e WHERE messages.id = e.message_id`, [bad]);

      // A delivering process with a breaker that would open after two consecutive failures.
      delivering = await startTestServer({
        DATABASE_URL: ingestOnly.databaseUrl,
        KAPSEL_RETRY_BASE_MS: "20",
        KAPSEL_CIRCUIT_CONSECUTIVE_FAILURES: "2",
        KAPSEL_CIRCUIT_MIN_ATTEMPTS: "2",
        KAPSEL_CHECKPOINT_INTERVAL_MS: "100",
      });
      for (const id of bad) {
        const event = await eventReaching(delivering.url, apiKey, id, "EVENT_STATUS_FAILED");
        // One attempt: retrying the same unsendable request could never help.
        expect(event.attempts).toHaveLength(1);
        expect(event.attempts[0].outcome).toBe("ATTEMPT_OUTCOME_NETWORK_ERROR");
        expect(event.attempts[0].error).toMatch(/^not sent: the request cannot be written as HTTP/);
      }
      const good = [];
      for (let i = 0; i < 5; i++) good.push(await ingest(delivering.url, endpointId));
      for (const id of good) await eventReaching(delivering.url, apiKey, id, "EVENT_STATUS_DELIVERED");

      const health = await rpc(delivering.url, "GetEndpointHealth", { endpointId }, apiKey);
      expect(health.body.circuitState).toBe("CIRCUIT_STATE_CLOSED");
      expect(health.body.consecutiveFailures ?? 0).toBe(0);
      const breaker = await db.query("SELECT state, consecutive_failures FROM circuit_breakers WHERE endpoint_id = $1", [endpointId]);
      expect(breaker.rows.every((r) => r.state === "closed" && r.consecutive_failures === 0)).toBe(true);
      expect(sink.requests.filter((r) => bad.includes(r.eventId))).toEqual([]);
      const attempts = await db.query("SELECT refused_locally FROM delivery_attempts WHERE event_id = ANY($1::uuid[])", [bad]);
      expect(attempts.rows.map((r) => r.refused_locally)).toEqual(Array(6).fill(true));
      // Recorded attempts are receipts like any other: every attempt number is in the log.
      const attemptId = (await getEvent(delivering.url, apiKey, bad[0]!)).attempts[0].id;
      await until("the refused attempt to be a leaf", async () =>
        (await db.query("SELECT 1 FROM log_leaves WHERE attempt_id = $1", [attemptId])).rowCount === 1 ? true : undefined);
    } finally {
      await db.end();
    }
  });
});
