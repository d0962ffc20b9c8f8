// verifyWebhook on the receiving side: it accepts what the reference Standard Webhooks library
// signs and what a real Kapsel server delivers (before and after a secret rotation), and rejects
// everything a forger, a replayer or a misconfiguration produces, with a reason for each.
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKapselClient, idempotencyKey, verifyWebhook, type KapselClient } from "@kapsel/sdk";
import { addEndpoint } from "../../test/support/delivery.ts";
import { createTenant } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";
import { startSink, type Sink } from "../../test/support/sink.ts";

const secretOf = (text: string) => `whsec_${Buffer.from(text).toString("base64")}`;
const SECRET = secretOf("a 32-byte secret for the tests!!");
const OTHER = secretOf("another secret, also for testing");
const BODY = '{"type":"invoice.paid","id":"in_1","amount":4200}';

/** Headers as standardwebhooks' sign() makes them, at `at` (default now). */
function signed(secret = SECRET, body = BODY, at = new Date(), id = "msg_2b1cYQ8Lw") {
  return {
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
    "webhook-signature": new Webhook(secret).sign(id, at, body),
  };
}

describe("signatures made by the standardwebhooks package", () => {
  it("are accepted with the id and timestamp they carry", async () => {
    const at = new Date();
    const result = await verifyWebhook(signed(SECRET, BODY, at), BODY, SECRET);
    expect(result).toEqual({ ok: true, id: "msg_2b1cYQ8Lw", timestamp: new Date(Math.floor(at.getTime() / 1000) * 1000), secretIndex: 0 });
  });

  it("are accepted from fetch Headers, any header case, and a byte body", async () => {
    const headers = signed();
    const upper = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toUpperCase(), v]));
    expect(await verifyWebhook(new Headers(headers), new TextEncoder().encode(BODY), [SECRET])).toMatchObject({ ok: true });
    expect(await verifyWebhook(upper, Buffer.from(BODY), [SECRET])).toMatchObject({ ok: true });
    expect(await verifyWebhook(headers, new TextEncoder().encode(BODY).buffer, SECRET)).toMatchObject({ ok: true });
  });

  it("are accepted with a secret given without the whsec_ prefix, as standardwebhooks allows", async () => {
    expect(await verifyWebhook(signed(), BODY, SECRET.slice("whsec_".length))).toMatchObject({ ok: true });
  });

  it("are accepted when one of several secrets matches, which says which one", async () => {
    expect(await verifyWebhook(signed(SECRET), BODY, [OTHER, SECRET])).toMatchObject({ ok: true, secretIndex: 1 });
  });

  it("are accepted when one of several signatures matches; other versions are ignored", async () => {
    const headers = signed();
    const real = headers["webhook-signature"];
    const forged = signed(OTHER)["webhook-signature"];
    expect(await verifyWebhook({ ...headers, "webhook-signature": `${forged} v1a,abc ${real}` }, BODY, SECRET)).toMatchObject({ ok: true });
    expect(await verifyWebhook({ ...headers, "webhook-signature": real.replace("v1,", "v2,") }, BODY, SECRET)).toMatchObject({ ok: false, reason: "no_matching_signature" });
  });
});

describe("rejections", () => {
  it("a tampered body", async () => {
    const result = await verifyWebhook(signed(), BODY.replace("4200", "1"), SECRET);
    expect(result).toMatchObject({ ok: false, reason: "no_matching_signature" });
  });

  it("a tampered id or timestamp (both are signed)", async () => {
    const headers = signed();
    expect(await verifyWebhook({ ...headers, "webhook-id": "msg_other" }, BODY, SECRET)).toMatchObject({ ok: false, reason: "no_matching_signature" });
    const shifted = String(Number(headers["webhook-timestamp"]) - 1);
    expect(await verifyWebhook({ ...headers, "webhook-timestamp": shifted }, BODY, SECRET)).toMatchObject({ ok: false, reason: "no_matching_signature" });
  });

  it("the wrong secret", async () => {
    expect(await verifyWebhook(signed(OTHER), BODY, SECRET)).toMatchObject({ ok: false, reason: "no_matching_signature" });
  });

  it("a stale timestamp (a replay), even with a valid signature", async () => {
    const tenMinutesAgo = new Date(Date.now() - 10 * 60_000);
    expect(await verifyWebhook(signed(SECRET, BODY, tenMinutesAgo), BODY, SECRET)).toMatchObject({ ok: false, reason: "timestamp_too_old" });
  });

  it("a timestamp from the future", async () => {
    const inTenMinutes = new Date(Date.now() + 10 * 60_000);
    expect(await verifyWebhook(signed(SECRET, BODY, inTenMinutes), BODY, SECRET)).toMatchObject({ ok: false, reason: "timestamp_too_new" });
  });

  it("timestamps just outside a custom tolerance, measured from the given now", async () => {
    const at = new Date("2026-01-01T12:00:00Z");
    const headers = signed(SECRET, BODY, at);
    const options = (offsetSeconds: number) => ({ toleranceSeconds: 60, now: at.getTime() + offsetSeconds * 1000 });
    expect(await verifyWebhook(headers, BODY, SECRET, options(60))).toMatchObject({ ok: true });
    expect(await verifyWebhook(headers, BODY, SECRET, options(61))).toMatchObject({ ok: false, reason: "timestamp_too_old" });
    expect(await verifyWebhook(headers, BODY, SECRET, options(-60))).toMatchObject({ ok: true });
    expect(await verifyWebhook(headers, BODY, SECRET, { toleranceSeconds: 60, now: new Date(at.getTime() - 61_000) })).toMatchObject({ ok: false, reason: "timestamp_too_new" });
  });

  it.each(["webhook-id", "webhook-timestamp", "webhook-signature"])("a request without %s", async (name) => {
    const headers: Record<string, string> = signed();
    delete headers[name];
    expect(await verifyWebhook(headers, BODY, SECRET)).toMatchObject({ ok: false, reason: "missing_headers" });
    expect(await verifyWebhook({ ...signed(), [name]: "" }, BODY, SECRET)).toMatchObject({ ok: false, reason: "missing_headers" });
  });

  it("a timestamp that is not whole seconds", async () => {
    for (const bad of ["1700000000.5", "-1700000000", "17e8", "soon"]) {
      expect(await verifyWebhook({ ...signed(), "webhook-timestamp": bad }, BODY, SECRET)).toMatchObject({ ok: false, reason: "invalid_timestamp" });
    }
  });

  it("a malformed secret or none at all, before looking at the request", async () => {
    expect(await verifyWebhook(signed(), BODY, "whsec_not*base64")).toMatchObject({ ok: false, reason: "malformed_secret" });
    expect(await verifyWebhook(signed(), BODY, [SECRET, "whsec_"])).toMatchObject({ ok: false, reason: "malformed_secret" });
    expect(await verifyWebhook(signed(), BODY, [])).toMatchObject({ ok: false, reason: "malformed_secret" });
    expect(await verifyWebhook({}, BODY, "whsec_=")).toMatchObject({ ok: false, reason: "malformed_secret" });
  });
});

describe("a real delivery from a Kapsel server", () => {
  let server: TestServer;
  let sink: Sink;
  let client: KapselClient;
  let endpointId: string;
  let signingSecret: string;
  beforeAll(async () => {
    server = await startTestServer();
    sink = await startSink();
    const apiKey = (await createTenant(server.url, ADMIN_TOKEN, "receiver")).apiKey;
    ({ endpointId, signingSecret } = await addEndpoint(server.url, apiKey, sink.url));
    client = createKapselClient({ baseUrl: server.url, apiKey, transport: "grpc" });
  });
  afterAll(async () => {
    client?.close();
    await server?.stop();
    await sink?.close();
  });

  async function deliver(payload: string) {
    const { eventId } = await client.ingest.ingest({
      endpointId,
      payload: new TextEncoder().encode(payload),
      contentType: "application/json",
      idempotencyKey: idempotencyKey(),
    });
    const [request] = await sink.waitFor(1, (r) => r.eventId === eventId);
    return { eventId, request: request! };
  }

  it("verifies with the endpoint's signing secret, and the webhook-id is the event id", async () => {
    const { eventId, request } = await deliver('{"hello":"receiver"}');
    expect(request.body.toString()).toBe('{"hello":"receiver"}');
    expect(await verifyWebhook(request.headers, request.body, signingSecret)).toMatchObject({ ok: true, id: eventId, secretIndex: 0 });
    expect(await verifyWebhook(request.headers, Buffer.from('{"hello":"forger"}'), signingSecret)).toMatchObject({ ok: false, reason: "no_matching_signature" });
    // The reference library agrees.
    expect(() => new Webhook(signingSecret).verify(request.body.toString(), request.headers as Record<string, string>)).not.toThrow();
  });

  it("after a rotation, deliveries verify with the new secret and, for the overlap, the old one", async () => {
    const rotated = await client.management.rotateEndpointSecret({ endpointId });
    expect(rotated.signingSecret).not.toBe(signingSecret);
    const { request } = await deliver('{"after":"rotation"}');
    expect(String(request.headers["webhook-signature"]).split(" ")).toHaveLength(2);
    expect(await verifyWebhook(request.headers, request.body, rotated.signingSecret)).toMatchObject({ ok: true, secretIndex: 0 });
    expect(await verifyWebhook(request.headers, request.body, signingSecret)).toMatchObject({ ok: true, secretIndex: 0 });
    expect(await verifyWebhook(request.headers, request.body, [OTHER, rotated.signingSecret])).toMatchObject({ ok: true, secretIndex: 1 });
    expect(await verifyWebhook(request.headers, request.body, OTHER)).toMatchObject({ ok: false, reason: "no_matching_signature" });
  });
});
