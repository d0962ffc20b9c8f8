// Receipts are the leaf data: RFC 8785 canonical JSON with exactly the members of ATTESTATION.md §1.
// Checked against the test's own canonical serialiser, for arbitrary field values and for the
// receipts a running server logs for each kind of real delivery outcome.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { parseReceipt } from "@kapsel/verify";
import fc from "fast-check";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { receiptBytes, type ReceiptFields } from "../src/attestation/receipt.ts";
import { freePort } from "../src/free-port.ts";
import { createDestination, firstAttempt, ingest, jcs, sha256, startLoopbackSink, until, type LoopbackSink } from "../../test/support/attestation.ts";
import { connect } from "../../test/support/database.ts";
import { rpc } from "../../test/support/rpc.ts";
import { startTestServer, type TestServer } from "../../test/support/server.ts";

const MEMBERS = ["attempt", "attempt_id", "duration_ms", "endpoint_id", "event_id", "outcome", "payload_sha256", "response_sha256", "started_at", "status_code", "tenant_id", "url", "v"];
const STARTED_AT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

const hex64 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString("hex"));
const fields: fc.Arbitrary<ReceiptFields> = fc.record({
  attempt_id: fc.uuid(),
  event_id: fc.uuid(),
  tenant_id: fc.uuid(),
  endpoint_id: fc.uuid(),
  // URLs as requested may hold anything a string can: quotes, backslashes, controls, non-ASCII.
  url: fc.oneof(fc.webUrl(), fc.string({ unit: "grapheme" }), fc.string({ unit: "binary" })),
  attempt: fc.integer({ min: 1, max: 1000 }),
  payload_sha256: hex64,
  started_at: fc.date({ min: new Date("1970-01-01T00:00:00Z"), max: new Date("9999-12-31T23:59:59.999Z"), noInvalidDate: true }),
  duration_ms: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  outcome: fc.constantFrom("delivered", "http_error", "timeout", "network_error"),
  status_code: fc.option(fc.integer({ min: 100, max: 599 }), { nil: null }),
  response_sha256: fc.option(hex64, { nil: null }),
});

describe("receipt bytes", () => {
  it("are the RFC 8785 serialisation of the thirteen members, for any field values", () => {
    fc.assert(
      fc.property(fields, (f) => {
        const bytes = receiptBytes(f).toString("utf8");
        const expected = jcs({ ...f, v: 1, started_at: f.started_at.toISOString() });
        expect(bytes).toBe(expected);
        expect(Object.keys(JSON.parse(bytes))).toEqual(MEMBERS);
        expect(JSON.parse(bytes).started_at).toMatch(STARTED_AT);
      }),
      { numRuns: 2000 },
    );
  });

  it("match a hand-written example byte for byte", () => {
    const bytes = receiptBytes({
      attempt_id: "01900000-0000-7000-8000-0000000000a1",
      event_id: "01900000-0000-7000-8000-0000000000e1",
      tenant_id: "01900000-0000-7000-8000-0000000000f1",
      endpoint_id: "01900000-0000-7000-8000-0000000000b1",
      url: "https://example.com/h?q=\"x\"\\\n\u00e9",
      attempt: 2,
      payload_sha256: "ab".repeat(32),
      started_at: new Date("2026-11-22T10:30:45Z"),
      duration_ms: 0,
      outcome: "network_error",
      status_code: null,
      response_sha256: null,
    });
    expect(bytes.toString("utf8")).toBe(
      '{"attempt":2,"attempt_id":"01900000-0000-7000-8000-0000000000a1","duration_ms":0,' +
        '"endpoint_id":"01900000-0000-7000-8000-0000000000b1","event_id":"01900000-0000-7000-8000-0000000000e1",' +
        `"outcome":"network_error","payload_sha256":"${"ab".repeat(32)}","response_sha256":null,` +
        '"started_at":"2026-11-22T10:30:45.000Z","status_code":null,"tenant_id":"01900000-0000-7000-8000-0000000000f1",' +
        '"url":"https://example.com/h?q=\\"x\\"\\\\\\n\u00e9","v":1}',
    );
  });
});

describe("receipts of real deliveries", () => {
  let server: TestServer;
  let db: pg.Client;
  let ok: LoopbackSink;
  let failing: LoopbackSink;
  let hanging: http.Server;
  let hangingUrl: string;

  beforeAll(async () => {
    server = await startTestServer({ KAPSEL_CHECKPOINT_INTERVAL_MS: "100", KAPSEL_RETRY_BASE_MS: "600000" });
    db = await connect(server.databaseUrl);
    ok = await startLoopbackSink(200);
    failing = await startLoopbackSink(500);
    hanging = http.createServer(() => {});
    await new Promise<void>((r) => hanging.listen(0, "127.0.0.1", r));
    hangingUrl = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/hook`;
  });
  afterAll(async () => {
    await db?.end();
    await server?.stop();
    await ok?.close();
    await failing?.close();
    hanging?.closeAllConnections();
    hanging?.close();
  });

  it("are canonical, carry every member, and state each outcome with null status and hash when there was no response", async () => {
    const closedPort = await freePort();
    const cases = [
      { outcome: "delivered", url: ok.url, sink: ok },
      { outcome: "http_error", url: failing.url, sink: failing },
      { outcome: "network_error", url: `http://127.0.0.1:${closedPort}/hook` },
      { outcome: "timeout", url: hangingUrl },
    ] as const;
    const d = await createDestination(server.url, ok.url);
    for (const c of cases) {
      const ep = await rpc(server.url, "CreateEndpoint", { url: c.url, allowHttp: true, timeoutMs: c.outcome === "timeout" ? 300 : 5000 }, d.apiKey);
      const body = JSON.stringify({ type: "receipt", outcome: c.outcome, note: "é\u2028" });
      const attempt = await firstAttempt(server.url, d.apiKey, await ingest(server.url, ep.body.endpoint.id, body));
      const proof = await until(`the ${c.outcome} attempt in the log`, async () => {
        const r = await rpc(server.url, "GetInclusionProof", { attemptId: attempt.id }, d.apiKey);
        return r.status === 200 ? r.body : undefined;
      });
      const bytes = Buffer.from(proof.receipt, "base64").toString("utf8");
      const receipt = JSON.parse(bytes);
      expect(jcs(receipt)).toBe(bytes);
      expect(Object.keys(receipt)).toEqual(MEMBERS);
      expect(parseReceipt(Buffer.from(bytes))).toMatchObject({ attempt_id: attempt.id });

      const row = (await db.query("SELECT * FROM delivery_attempts WHERE id = $1", [attempt.id])).rows[0];
      expect(receipt).toEqual({
        v: 1,
        attempt_id: attempt.id,
        event_id: row.event_id,
        tenant_id: d.tenantId,
        endpoint_id: ep.body.endpoint.id,
        url: c.url,
        attempt: 1,
        payload_sha256: sha256(body).toString("hex"),
        started_at: (row.started_at as Date).toISOString(),
        duration_ms: row.duration_ms,
        outcome: c.outcome,
        status_code: row.status_code,
        response_sha256: row.response_sha256,
      });
      expect(receipt.started_at).toMatch(STARTED_AT);
      if ("sink" in c) {
        expect(receipt.status_code).toBe(c.outcome === "delivered" ? 200 : 500);
        expect(receipt.response_sha256).toBe(sha256("ok").toString("hex"));
        expect(c.sink.bodies.some((b) => b.equals(Buffer.from(body)))).toBe(true);
      } else {
        expect(receipt.status_code).toBeNull();
        expect(receipt.response_sha256).toBeNull();
      }
      // The leaf stored is exactly these bytes.
      const leaf = (await db.query("SELECT receipt FROM log_leaves WHERE attempt_id = $1", [attempt.id])).rows[0].receipt as Buffer;
      expect(leaf.toString("utf8")).toBe(bytes);
    }
  });
});
