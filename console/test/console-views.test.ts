// The console's management views in a real browser against a real server: an endpoint's edit,
// secret rotation, health chart, recent attempts and deletion; recovery of failed events in a
// window; operational alerts (open circuit, disabled endpoint, failed events). And the fan-out
// views — sources with the URL to give Stripe, messages and their events, subscriptions by type
// and channel, `kapsel.*` alerts —
// which run once the server implements sources and messages (issue 12) and say so when skipped.
import { createHmac } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventReaching, ingest } from "../../test/support/delivery.ts";
import { rpc } from "../../test/support/rpc.ts";
import { alwaysFail, gone, startSink, succeed, type Sink } from "../../test/support/sink.ts";
import { eventually, newTenant, openPage, signIn, startHarness, textMatching, type ConsoleHarness, type Watched } from "./support/console-page.ts";

let h: ConsoleHarness;
const sinks: Sink[] = [];
beforeAll(async () => {
  h = await startHarness();
}, 180_000);
afterAll(async () => {
  await Promise.all(sinks.map((s) => s.close()));
  await h?.close();
});

async function sink(...args: Parameters<typeof startSink>): Promise<Sink> {
  const s = await startSink(...args);
  sinks.push(s);
  return s;
}

async function signedIn(apiKey: string): Promise<Watched> {
  const w = await openPage(h.browser);
  await signIn(w.page, h.server.url, apiKey);
  return w;
}

describe("an endpoint's page", () => {
  it("edits URL, retries, timeout and enabled; rotates the secret once; charts its health; lists recent attempts; deletes it", async () => {
    const ok = await sink(succeed("fine"));
    const other = await sink(succeed("fine too"));
    const tenant = await newTenant(h.server.url, "endpoint-page");
    const endpointId = (await rpc(h.server.url, "CreateEndpoint", { url: ok.url, allowHttp: true }, tenant.apiKey)).body.endpoint.id;
    const events = [await ingest(h.server.url, endpointId), await ingest(h.server.url, endpointId), await ingest(h.server.url, endpointId)];
    for (const id of events) await eventReaching(h.server.url, tenant.apiKey, id, "EVENT_STATUS_DELIVERED");

    const w = await signedIn(tenant.apiKey);
    await w.page.goto(`${h.server.url}/console/endpoints/${endpointId}`);
    expect(await textMatching(w.page.getByTestId("endpoint-chart"), /attempts/)).toContain("3 attempts, 100.0 % delivered");
    expect(await textMatching(w.page.getByTestId("endpoint-health"), /Circuit/)).toMatch(/Circuitclosed.*100\.0 % of 3 attempts/);
    await w.page.getByTestId("recent-attempts").waitFor();
    expect(await w.page.locator('[data-testid="recent-attempts"] tbody tr').count()).toBe(3);

    await w.page.getByTestId("endpoint-url").fill(other.url);
    await w.page.getByTestId("endpoint-max-attempts").fill("4");
    await w.page.getByTestId("endpoint-timeout").fill("5000");
    await w.page.getByTestId("endpoint-enabled").uncheck();
    await w.page.getByTestId("endpoint-submit").click();
    await w.page.getByText("Saved.").waitFor();
    const saved = (await rpc(h.server.url, "GetEndpoint", { endpointId }, tenant.apiKey)).body.endpoint;
    expect([saved.url, saved.maxAttempts, saved.timeoutMs, saved.enabled ?? false]).toEqual([other.url, 4, 5000, false]);

    const before = saved.secretRotatedAt;
    w.page.once("dialog", (d) => void d.accept());
    await w.page.getByTestId("rotate-secret").click();
    expect(await textMatching(w.page.getByTestId("secret-value"), /^whsec_/)).toMatch(/^whsec_/);
    expect((await rpc(h.server.url, "GetEndpoint", { endpointId }, tenant.apiKey)).body.endpoint.secretRotatedAt).not.toBe(before);

    w.page.once("dialog", (d) => void d.accept());
    await w.page.getByTestId("delete-endpoint").click();
    await eventually("the endpoint list", () => (new URL(w.page.url()).pathname === "/console/endpoints" ? true : undefined));
    await w.page.getByText("No endpoints yet.").waitFor();
    expect((await rpc(h.server.url, "GetEndpoint", { endpointId }, tenant.apiKey)).status).toBe(404);
    await w.context.close();
  });
});

describe("failures", () => {
  it("alerts show an open circuit, a disabled endpoint and failed events; one is retried, the rest recovered in a window", async () => {
    const tenant = await newTenant(h.server.url, "alerts");
    const broken = await sink(alwaysFail(500));
    const retired = await sink(gone);
    const brokenId = (await rpc(h.server.url, "CreateEndpoint", { url: broken.url, allowHttp: true, maxAttempts: 1, description: "broken" }, tenant.apiKey)).body.endpoint.id;
    const retiredId = (await rpc(h.server.url, "CreateEndpoint", { url: retired.url, allowHttp: true, description: "retired" }, tenant.apiKey)).body.endpoint.id;
    // Five consecutive failures open the circuit (the default threshold): five events fail first.
    const failed: string[] = [];
    for (let i = 0; i < 5; i++) {
      const id = await ingest(h.server.url, brokenId, `{"n":${i}}`);
      await eventReaching(h.server.url, tenant.apiKey, id, "EVENT_STATUS_FAILED");
      failed.push(id);
    }
    await eventReaching(h.server.url, tenant.apiKey, await ingest(h.server.url, retiredId), "EVENT_STATUS_FAILED");

    const w = await signedIn(tenant.apiKey);
    await w.page.goto(`${h.server.url}/console/alerts`);
    expect(await textMatching(w.page.getByTestId("alert-circuits"), /broken|circuit open/)).toContain(broken.url);
    expect(await textMatching(w.page.getByTestId("alert-disabled"), /retired|disabled/)).toContain("destination answered 410 Gone");
    await textMatching(w.page.getByTestId("alert-failed"), /failed/);
    expect(await w.page.locator('[data-testid="alert-failed"] [data-testid="alert-item"]').count()).toBe(6);

    // The broken endpoint recovers. One failed event is retried from its page…
    broken.behaviour = succeed();
    await w.page.goto(`${h.server.url}/console/events/${failed[0]}`);
    await w.page.getByTestId("retry-event").click();
    await w.page.getByText("Put back in the queue.").waitFor();
    const retried = (await rpc(h.server.url, "GetEvent", { eventId: failed[0] }, tenant.apiKey)).body.event;
    expect(["EVENT_STATUS_PENDING", "EVENT_STATUS_DELIVERING", "EVENT_STATUS_DELIVERED"]).toContain(retried.status);
    // …and the other failed events of the last day go back to the queue at once.
    await w.page.goto(`${h.server.url}/console/events?endpoint=${brokenId}`);
    await w.page.getByText("Recover failed events in a time window").click();
    await w.page.getByTestId("recover-submit").click();
    expect(await textMatching(w.page.getByTestId("recover-result"), /put back/)).toBe("4 failed events put back in the queue.");
    await w.context.close();
  });
});

/** Skips (with the reason) until the server implements sources and messages. */
describe("sources and messages (fan-out)", () => {
  it("creates a Stripe source, shows the URL to give Stripe, and its signed webhook fans out to the subscribed endpoints", async () => {
    const tenant = await newTenant(h.server.url, "fan-out");
    const a = await sink();
    const b = await sink();
    for (const s of [a, b]) await rpc(h.server.url, "CreateEndpoint", { url: s.url, allowHttp: true, eventTypes: ["invoice.*"] }, tenant.apiKey);

    const w = await signedIn(tenant.apiKey);
    await w.page.goto(`${h.server.url}/console/sources`);
    await w.page.getByTestId("new-source").click();
    await w.page.getByTestId("source-name").fill("stripe-live");
    await w.page.getByTestId("source-scheme").selectOption({ label: "Stripe (Stripe-Signature)" });
    await w.page.getByTestId("source-submit").click();
    const secret = (await textMatching(w.page.getByTestId("secret-value"), /./)).trim();
    const row = w.page.locator('[data-testid="source-row"]', { hasText: "stripe-live" });
    await row.waitFor();
    const sourceId = (await row.getAttribute("data-source-id"))!;
    const sourceUrl = await row.getByTestId("source-url").textContent();
    expect(sourceUrl).toBe(`${h.server.url}/ingest/sources/${sourceId}`);

    const body = JSON.stringify({ id: "evt_1", type: "invoice.paid", data: { object: { id: "in_1" } } });
    const t = Math.floor(Date.now() / 1000);
    const signature = createHmac("sha256", secret).update(`${t}.${body}`).digest("hex");
    const res = await fetch(sourceUrl!, { method: "POST", headers: { "content-type": "application/json", "stripe-signature": `t=${t},v1=${signature}` }, body });
    expect(res.status).toBe(202);
    const { message_id: messageId, event_ids: eventIds } = (await res.json()) as { message_id: string; event_ids: string[] };
    expect(eventIds).toHaveLength(2);

    await w.page.goto(`${h.server.url}/console/messages`);
    const messageRow = w.page.locator(`[data-testid="message-row"][data-message-id="${messageId}"]`);
    expect(await textMatching(messageRow, /invoice\.paid/)).toContain("invoice.paid");
    await messageRow.getByRole("link").click();
    await eventually("both events delivered", async () => {
      await w.page.reload();
      const rows = await w.page.getByTestId("message-event-row").allTextContents();
      return rows.length === 2 && rows.every((r) => r.includes("delivered")) ? true : undefined;
    });
    await w.page.goto(`${h.server.url}/console/events?type=invoice.*`);
    for (const id of eventIds) await w.page.locator(`[data-testid="event-row"][data-event-id="${id}"]`).waitFor();
    await w.context.close();
  });

  it("edits an endpoint's event types and channels", async () => {
    const tenant = await newTenant(h.server.url, "subscriptions");
    const endpointId = (await rpc(h.server.url, "CreateEndpoint", { url: (await sink()).url, allowHttp: true }, tenant.apiKey)).body.endpoint.id;
    const w = await signedIn(tenant.apiKey);
    await w.page.goto(`${h.server.url}/console/endpoints/${endpointId}`);
    await w.page.getByTestId("endpoint-types").fill("order.*, invoice.paid");
    await w.page.getByTestId("endpoint-channels").fill("customer-7");
    await w.page.getByTestId("endpoint-submit").click();
    await w.page.getByText("Saved.").waitFor();
    const saved = (await rpc(h.server.url, "GetEndpoint", { endpointId }, tenant.apiKey)).body.endpoint;
    expect([saved.eventTypes, saved.channels]).toEqual([["order.*", "invoice.paid"], ["customer-7"]]);
    await w.page.goto(`${h.server.url}/console/endpoints`);
    expect(await textMatching(w.page.getByTestId("endpoint-row"), /order/)).toContain("order.*, invoice.paid");
    await w.context.close();
  });

  it("lists Kapsel's operational events (kapsel.*) among the alerts", async () => {
    const tenant = await newTenant(h.server.url, "operational");
    const broken = await sink(alwaysFail(500));
    const endpointId = (await rpc(h.server.url, "CreateEndpoint", { url: broken.url, allowHttp: true, maxAttempts: 1 }, tenant.apiKey)).body.endpoint.id;
    // Five consecutive failures open the circuit (a sixth event would wait behind it).
    for (let i = 0; i < 5; i++) await eventReaching(h.server.url, tenant.apiKey, await ingest(h.server.url, endpointId), "EVENT_STATUS_FAILED");
    const w = await signedIn(tenant.apiKey);
    await w.page.goto(`${h.server.url}/console/alerts`);
    expect(await textMatching(w.page.getByTestId("alert-operational"), /kapsel\./)).toMatch(/kapsel\.(endpoint\.circuit_opened|event\.failed)/);
    await w.context.close();
  });
});
