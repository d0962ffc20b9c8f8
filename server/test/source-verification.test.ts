// Inbound source signatures: each scheme with vectors computed here with node:crypto (and the
// senders' own published examples), never by calling the server's code. First the pure function
// with an injected clock, then each scheme end to end through the gateway: a correct signature is
// stored (without the signature header), anything else is 401 E1002 with nothing stored.
import { createHmac, randomBytes } from "node:crypto";
import type pg from "pg";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifySource, type SourceConfig } from "../src/ingest/source-verification.ts";
import { connect } from "../../test/support/database.ts";
import { countEvents, createEndpoint, eventRow, INGEST_ONLY, postIngest } from "../../test/support/ingest.ts";
import { createTenant } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";

const hmacHex = (secret: string | Buffer, data: string | Buffer) => createHmac("sha256", secret).update(data).digest("hex");
const hmacB64 = (secret: string | Buffer, data: string | Buffer) => createHmac("sha256", secret).update(data).digest("base64");
const config = (scheme: SourceConfig["scheme"], secret: string, extra: Partial<SourceConfig> = {}): SourceConfig =>
  ({ scheme, secret, header: "x-signature", toleranceSeconds: 300, ...extra });

describe("verifySource (pure, injected clock)", () => {
  const body = Buffer.from('{"id":"evt_1","amount":42}');

  it("none accepts anything", () => {
    expect(verifySource(config("none", ""), {}, body)).toBeUndefined();
  });

  it("hmac_sha256: hex HMAC of the body in the configured header", () => {
    const c = config("hmac_sha256", "topsecret", { header: "x-acme-signature" });
    const sig = hmacHex("topsecret", body);
    expect(verifySource(c, { "x-acme-signature": sig }, body)).toBeUndefined();
    expect(verifySource(c, { "x-acme-signature": sig.toUpperCase() }, body)).toBeUndefined();
    expect(verifySource(c, { "x-acme-signature": `sha256=${sig}` }, body)).toBeUndefined();
    expect(verifySource(c, { "x-signature": sig }, body)).toMatch(/missing x-acme-signature/);
    expect(verifySource(c, { "x-acme-signature": hmacHex("other", body) }, body)).toBeDefined();
    expect(verifySource(c, { "x-acme-signature": sig.slice(0, 62) }, body)).toBeDefined();
    expect(verifySource(c, { "x-acme-signature": "zz" + sig.slice(2) }, body)).toBeDefined();
    expect(verifySource(c, { "x-acme-signature": "" }, body)).toBeDefined();
  });

  it("github: GitHub's documented example (secret \"It's a Secret to Everybody\", body \"Hello, World!\")", () => {
    const c = config("github", "It's a Secret to Everybody");
    const hello = Buffer.from("Hello, World!");
    const documented = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    expect(`sha256=${hmacHex("It's a Secret to Everybody", hello)}`).toBe(documented);
    expect(verifySource(c, { "x-hub-signature-256": documented }, hello)).toBeUndefined();
    expect(verifySource(c, { "x-hub-signature-256": documented.slice(7) }, hello)).toMatch(/sha256=/);
    expect(verifySource(c, { "x-hub-signature-256": documented }, Buffer.from("Hello, World?"))).toBeDefined();
    expect(verifySource(c, {}, hello)).toMatch(/missing/i);
  });

  it("stripe: t and v1 over \"t.body\", within the tolerance either side of the clock", () => {
    const c = config("stripe", "whsec_stripe_test", { toleranceSeconds: 300 });
    const t = 1_700_000_000;
    const v1 = hmacHex("whsec_stripe_test", `${t}.${body}`);
    const header = { "stripe-signature": `t=${t},v1=${v1}` };
    expect(verifySource(c, header, body, t * 1000)).toBeUndefined();
    expect(verifySource(c, header, body, (t + 300) * 1000)).toBeUndefined();
    expect(verifySource(c, header, body, (t - 300) * 1000)).toBeUndefined();
    expect(verifySource(c, header, body, (t + 301) * 1000)).toMatch(/tolerance/);
    expect(verifySource(c, header, body, (t - 301) * 1000)).toMatch(/tolerance/);
    // Several v1 (secret rotation on Stripe's side) and a v0: one right v1 is enough.
    const many = { "stripe-signature": `t=${t},v1=${hmacHex("old", `${t}.${body}`)},v1=${v1},v0=${"0".repeat(64)}` };
    expect(verifySource(c, many, body, t * 1000)).toBeUndefined();
    expect(verifySource(c, { "stripe-signature": `t=${t},v0=${v1}` }, body, t * 1000)).toBeDefined();
    expect(verifySource(c, { "stripe-signature": `v1=${v1}` }, body, t * 1000)).toBeDefined();
    // The signed timestamp is part of the MAC: moving t invalidates v1.
    expect(verifySource(c, { "stripe-signature": `t=${t + 1},v1=${v1}` }, body, t * 1000)).toBeDefined();
    expect(verifySource(c, { "stripe-signature": `t=abc,v1=${v1}` }, body, t * 1000)).toBeDefined();
  });

  it("standard_webhooks: the specification's example vector", () => {
    // From the Standard Webhooks / Svix documentation.
    const c = config("standard_webhooks", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    const payload = Buffer.from('{"test": 2432232314}');
    const headers = {
      "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
      "webhook-timestamp": "1614265330",
      "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    };
    const now = 1614265330 * 1000;
    expect(verifySource(c, headers, payload, now)).toBeUndefined();
    expect(verifySource(c, { ...headers, "webhook-signature": `v1,${"A".repeat(43)}= ${headers["webhook-signature"]}` }, payload, now)).toBeUndefined();
    expect(verifySource(c, { ...headers, "webhook-signature": headers["webhook-signature"].replace("v1,", "v2,") }, payload, now)).toBeDefined();
    expect(verifySource(c, { ...headers, "webhook-id": "msg_other" }, payload, now)).toBeDefined();
    expect(verifySource(c, headers, payload, now + 301_000)).toMatch(/tolerance/);
    const { "webhook-timestamp": _omitted, ...noTimestamp } = headers;
    expect(verifySource(c, noTimestamp, payload, now)).toMatch(/missing/);
  });
});

let server: TestServer;
let db: pg.Client;
let apiKey: string;
beforeAll(async () => {
  server = await startTestServer(INGEST_ONLY);
  db = await connect(server.databaseUrl);
  apiKey = (await createTenant(server.url, ADMIN_TOKEN)).apiKey;
});
afterAll(async () => {
  await db?.end();
  await server?.stop();
});

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** Posts each (body, headers) and expects 401 E1002 for all and no stored event. */
async function expectRejected(endpointId: string, attempts: [string, Record<string, string>][]) {
  for (const [body, headers] of attempts) {
    const r = await postIngest(server.url, endpointId, body, headers);
    expect([JSON.stringify(headers), r.status, r.body.code]).toEqual([JSON.stringify(headers), 401, "E1002"]);
  }
  expect(await countEvents(db, endpointId)).toBe(0);
}

describe("the gateway verifies each scheme", () => {
  const body = '{"type":"invoice.paid","n":1}';

  it("hmac_sha256 with a custom header", async () => {
    const okEndpoint = await createEndpoint(server.url, apiKey, { sourceScheme: "SOURCE_SCHEME_HMAC_SHA256", sourceSecret: "hmac-secret", sourceHeader: "X-Acme-Signature" });
    const r = await postIngest(server.url, okEndpoint, body, { "x-acme-signature": hmacHex("hmac-secret", body) });
    expect(r.status).toBe(202);
    expect((await eventRow(db, r.body.event_id))!.headers).toEqual({});

    const endpointId = await createEndpoint(server.url, apiKey, { sourceScheme: "SOURCE_SCHEME_HMAC_SHA256", sourceSecret: "hmac-secret", sourceHeader: "X-Acme-Signature" });
    await expectRejected(endpointId, [
      [body, { "x-acme-signature": hmacHex("wrong-secret", body) }],
      [body.replace("1", "2"), { "x-acme-signature": hmacHex("hmac-secret", body) }],
      [body, {}],
      [body, { "x-signature": hmacHex("hmac-secret", body) }],
    ]);
  });

  it("github (X-Hub-Signature-256: sha256=…)", async () => {
    const secret = "gh-secret";
    const okEndpoint = await createEndpoint(server.url, apiKey, { sourceScheme: "SOURCE_SCHEME_GITHUB", sourceSecret: secret });
    const r = await postIngest(server.url, okEndpoint, body, { "x-hub-signature-256": `sha256=${hmacHex(secret, body)}`, "x-github-event": "push" });
    expect(r.status).toBe(202);
    expect((await eventRow(db, r.body.event_id))!.headers).toEqual({ "x-github-event": "push" });

    const endpointId = await createEndpoint(server.url, apiKey, { sourceScheme: "SOURCE_SCHEME_GITHUB", sourceSecret: secret });
    await expectRejected(endpointId, [
      [body, { "x-hub-signature-256": `sha256=${hmacHex("not-it", body)}` }],
      [`${body} `, { "x-hub-signature-256": `sha256=${hmacHex(secret, body)}` }],
      [body, { "x-hub-signature-256": hmacHex(secret, body) }],
      [body, { "x-hub-signature": `sha1=${createHmac("sha1", secret).update(body).digest("hex")}` }],
      [body, {}],
    ]);
  });

  it("stripe (Stripe-Signature: t=…,v1=…), with a timestamp tolerance and several v1 values", async () => {
    const secret = "whsec_stripe_endpoint";
    const fields = { sourceScheme: "SOURCE_SCHEME_STRIPE", sourceSecret: secret, sourceToleranceSeconds: 60 };
    const okEndpoint = await createEndpoint(server.url, apiKey, fields);
    const t = nowSeconds();
    const single = await postIngest(server.url, okEndpoint, body, { "stripe-signature": `t=${t},v1=${hmacHex(secret, `${t}.${body}`)}` });
    expect(single.status).toBe(202);
    expect((await eventRow(db, single.body.event_id))!.headers).toEqual({});
    const several = await postIngest(server.url, okEndpoint, body, {
      "stripe-signature": `t=${t},v1=${hmacHex("rolled-secret", `${t}.${body}`)},v1=${hmacHex(secret, `${t}.${body}`)}`,
    });
    expect(several.status).toBe(202);

    const endpointId = await createEndpoint(server.url, apiKey, fields);
    const stale = t - 3600;
    await expectRejected(endpointId, [
      [body, { "stripe-signature": `t=${stale},v1=${hmacHex(secret, `${stale}.${body}`)}` }],
      [body, { "stripe-signature": `t=${t},v1=${hmacHex("wrong", `${t}.${body}`)}` }],
      [`{"type":"invoice.paid","n":2}`, { "stripe-signature": `t=${t},v1=${hmacHex(secret, `${t}.${body}`)}` }],
      [body, { "stripe-signature": `t=${t}` }],
      [body, {}],
    ]);
  });

  it("standard_webhooks (webhook-id/-timestamp/-signature, whsec_ base64 secret)", async () => {
    const key = randomBytes(24);
    const secret = `whsec_${key.toString("base64")}`;
    const okEndpoint = await createEndpoint(server.url, apiKey, { sourceScheme: "SOURCE_SCHEME_STANDARD_WEBHOOKS", sourceSecret: secret });
    const id = "msg_2Lq7f3";
    const ts = String(nowSeconds());
    const r = await postIngest(server.url, okEndpoint, body, {
      "webhook-id": id, "webhook-timestamp": ts, "webhook-signature": `v1,${hmacB64(key, `${id}.${ts}.${body}`)}`,
    });
    expect(r.status).toBe(202);
    // Our own deliveries carry webhook-* headers; the sender's are not kept.
    expect((await eventRow(db, r.body.event_id))!.headers).toEqual({});

    const endpointId = await createEndpoint(server.url, apiKey, { sourceScheme: "SOURCE_SCHEME_STANDARD_WEBHOOKS", sourceSecret: secret });
    const good = `v1,${hmacB64(key, `${id}.${ts}.${body}`)}`;
    const old = String(nowSeconds() - 3600);
    await expectRejected(endpointId, [
      [body, { "webhook-id": id, "webhook-timestamp": ts, "webhook-signature": `v1,${hmacB64(randomBytes(24), `${id}.${ts}.${body}`)}` }],
      [`${body}\n`, { "webhook-id": id, "webhook-timestamp": ts, "webhook-signature": good }],
      [body, { "webhook-id": "msg_other", "webhook-timestamp": ts, "webhook-signature": good }],
      [body, { "webhook-id": id, "webhook-timestamp": old, "webhook-signature": `v1,${hmacB64(key, `${id}.${old}.${body}`)}` }],
      [body, { "webhook-id": id, "webhook-timestamp": ts }],
      [body, { "webhook-timestamp": ts, "webhook-signature": good }],
    ]);
  });

  it("standard_webhooks accepts a request signed by the standardwebhooks npm package", async () => {
    const secret = `whsec_${randomBytes(32).toString("base64")}`;
    const endpointId = await createEndpoint(server.url, apiKey, { sourceScheme: "SOURCE_SCHEME_STANDARD_WEBHOOKS", sourceSecret: secret });
    const at = new Date();
    const signature = new Webhook(secret).sign("msg_from_package", at, body);
    const headers = { "webhook-id": "msg_from_package", "webhook-timestamp": String(Math.floor(at.getTime() / 1000)), "webhook-signature": signature };
    const r = await postIngest(server.url, endpointId, body, headers);
    expect(r.status).toBe(202);
    const other = await postIngest(server.url, endpointId, body, { ...headers, "webhook-signature": new Webhook(`whsec_${randomBytes(32).toString("base64")}`).sign("msg_from_package", at, body) });
    expect([other.status, other.body.code]).toEqual([401, "E1002"]);
    expect(await countEvents(db, endpointId)).toBe(1);
  });
});
