// The SDK's fan-out helpers against a real server: sendMessage reaches every subscribed endpoint
// (values as JSON, strings and bytes as they are), a repeated key answers the first message, and
// createSource gives a URL that a GitHub-signed webhook fans out through.
import { createHmac } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKapselClient, createSource, KapselError, sendMessage, type KapselClient } from "@kapsel/sdk";
import { addEndpoint, eventReaching } from "../../test/support/delivery.ts";
import { createTenant } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";
import { startSink, type Sink } from "../../test/support/sink.ts";

let server: TestServer;
let sink: Sink;
let client: KapselClient;
let apiKey: string;
beforeAll(async () => {
  server = await startTestServer();
  sink = await startSink();
  apiKey = (await createTenant(server.url, ADMIN_TOKEN, "sdk-fan-out")).apiKey;
  for (const types of [["invoice.*"], ["invoice.paid"], ["order.*"]]) await addEndpoint(server.url, apiKey, sink.url, { eventTypes: types });
  client = createKapselClient({ baseUrl: server.url, apiKey, transport: "connect" });
});
afterAll(async () => {
  client?.close();
  await server?.stop();
  await sink?.close();
});

describe("sendMessage", () => {
  it("sends once; each subscribed endpoint gets the JSON body", async () => {
    const sent = await sendMessage(client, { eventType: "invoice.paid", payload: { id: "in_1", amount: 42 }, idempotencyKey: "in_1" });
    expect([sent.eventIds.length, sent.duplicate]).toEqual([2, false]);
    for (const id of sent.eventIds) await eventReaching(server.url, apiKey, id, "EVENT_STATUS_DELIVERED");
    for (const id of sent.eventIds) {
      const [got] = sink.forEvent(id);
      expect([got!.headers["content-type"], got!.body.toString()]).toEqual(["application/json", '{"id":"in_1","amount":42}']);
    }
    const again = await sendMessage(client, { eventType: "invoice.paid", payload: {}, idempotencyKey: "in_1" });
    expect(again).toEqual({ ...sent, duplicate: true });
  });

  it("sends strings and bytes as they are, and refuses a bad type with a KapselError", async () => {
    const text = await sendMessage(client, { eventType: "order.created", payload: "plain" });
    const bytes = await sendMessage(client, { eventType: "order.created", payload: new Uint8Array([0, 255]) });
    await eventReaching(server.url, apiKey, text.eventIds[0]!, "EVENT_STATUS_DELIVERED");
    await eventReaching(server.url, apiKey, bytes.eventIds[0]!, "EVENT_STATUS_DELIVERED");
    expect(sink.forEvent(text.eventIds[0]!)[0]!.body.toString()).toBe("plain");
    expect([...sink.forEvent(bytes.eventIds[0]!)[0]!.body]).toEqual([0, 255]);
    const err = await sendMessage(client, { eventType: "Bad Type", payload: {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KapselError);
    expect((err as KapselError).kapselCode).toBe("E1006");
  });
});

describe("createSource", () => {
  it("gives the URL to hand to GitHub; a GitHub-signed webhook fans out by its X-GitHub-Event", async () => {
    const { url, secret, source } = await createSource(client, server.url, { name: "github", scheme: "github", secret: "typed-into-github", channels: [] });
    expect([url, secret]).toEqual([`${server.url}/ingest/sources/${source.id}`, "typed-into-github"]);
    const otherTenant = await createTenant(server.url, ADMIN_TOKEN, "gh");
    await addEndpoint(server.url, otherTenant.apiKey, sink.url, {});
    const body = '{"action":"opened"}';
    const res = await fetch(url, {
      method: "POST",
      headers: { "x-github-event": "order.opened", "x-hub-signature-256": `sha256=${createHmac("sha256", secret).update(body).digest("hex")}` },
      body,
    });
    const answer = (await res.json()) as { event_ids: string[] };
    expect([res.status, answer.event_ids.length]).toEqual([202, 1]);
  });
});
