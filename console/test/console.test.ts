// The console in a real browser against a real server and real deliveries: sign in with a tenant
// key, create an endpoint, see an event arrive and turn delivered live, open it, verify its
// delivery proof in the page (pinning the log key on first use, and with the payload), and open
// the contract routes directly. Also: a bad key's message, the admin's tenant management, and
// that the page talks only to the server that served it, within its Content-Security-Policy.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rpc } from "../../test/support/rpc.ts";
import { startSink, type Sink } from "../../test/support/sink.ts";
import { ingest } from "../../test/support/delivery.ts";
import { ADMIN_TOKEN, eventually, newTenant, openPage, signIn, startHarness, textMatching, type ConsoleHarness, type Watched } from "./support/console-page.ts";

let h: ConsoleHarness;
let sink: Sink;
/** The sink answers each request once the test lets it. */
let release: () => void = () => {};
beforeAll(async () => {
  h = await startHarness();
  sink = await startSink(() => {
    const held = new Promise<void>((r) => (release = r));
    return { status: 200, body: "thanks, got it", after: held };
  });
}, 180_000);
afterAll(async () => {
  release();
  await sink?.close();
  await h?.close();
});

describe("a tenant signs in and follows a delivery to its proof", () => {
  let w: Watched;
  let tenant: { id: string; apiKey: string };
  let endpointId: string;
  let eventId: string;
  const body = '{"type":"order.paid","order":42}';

  beforeAll(async () => {
    tenant = await newTenant(h.server.url, "acme-console");
    w = await openPage(h.browser);
  });
  afterAll(async () => {
    await w?.context.close();
  });

  it("signs in with the tenant key and lands on the event timeline", async () => {
    await signIn(w.page, h.server.url, tenant.apiKey);
    expect(await w.page.getByTestId("signed-in-as").textContent()).toBe("acme-console");
    await eventually("the events route", () => (new URL(w.page.url()).pathname === "/console/events" ? true : undefined));
    expect(await w.page.evaluate(() => Object.keys(sessionStorage).some((k) => sessionStorage.getItem(k)?.includes("ksk_")))).toBe(true);
    expect(await w.page.evaluate(() => Object.values(localStorage).some((v) => v.includes("ksk_")))).toBe(false);
  });

  it("creates an endpoint and sees its signing secret once", async () => {
    await w.page.getByRole("link", { name: "Endpoints" }).click();
    await w.page.getByTestId("new-endpoint").click();
    await w.page.getByTestId("endpoint-url").fill(sink.url);
    await w.page.getByTestId("endpoint-description").fill("orders service");
    await w.page.getByTestId("endpoint-allow-http").check();
    await w.page.getByTestId("endpoint-submit").click();
    expect(await textMatching(w.page.getByTestId("secret-value"), /^whsec_/)).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
    const row = w.page.getByTestId("endpoint-row");
    await row.first().waitFor();
    expect(await row.count()).toBe(1);
    endpointId = (await row.first().getAttribute("data-endpoint-id"))!;
    const listed = await rpc(h.server.url, "ListEndpoints", {}, tenant.apiKey);
    expect(listed.body.endpoints.map((e: any) => [e.id, e.url, e.allowHttp, e.description])).toEqual([[endpointId, sink.url, true, "orders service"]]);
  });

  it("shows an ingested event arrive and turn delivered live, without reloading", async () => {
    await w.page.getByRole("link", { name: "Events" }).click();
    await textMatching(w.page.getByTestId("live-status"), /^live$/);
    await w.page.evaluate(() => ((window as unknown as { sameDocument: boolean }).sameDocument = true));
    eventId = await ingest(h.server.url, endpointId, body, { "idempotency-key": "order-42" });
    const row = w.page.locator(`[data-testid="event-row"][data-event-id="${eventId}"]`);
    await row.waitFor({ timeout: 30_000 });
    expect(["pending", "delivering"]).toContain(await row.getAttribute("data-status"));
    await sink.waitFor(1);
    release();
    await eventually("the row to turn delivered", async () => ((await row.getAttribute("data-status")) === "delivered" ? true : undefined));
    expect(await w.page.evaluate(() => (window as unknown as { sameDocument?: boolean }).sameDocument)).toBe(true);
    expect(await w.page.getByTestId("event-row").count()).toBe(1);
  });

  it("filters the timeline by status", async () => {
    await w.page.getByTestId("filter-status").selectOption("failed");
    await eventually("the failed-only view", () => (w.page.url().includes("status=failed") ? true : undefined));
    await w.page.getByText("No events match.").waitFor();
    await w.page.getByTestId("filter-status").selectOption("delivered");
    await w.page.locator(`[data-testid="event-row"][data-event-id="${eventId}"]`).waitFor();
    await w.page.getByTestId("filter-status").selectOption("");
    await w.page.locator(`[data-testid="event-row"][data-event-id="${eventId}"]`).waitFor();
  });

  it("opens the event with its attempt: status, duration, response excerpt and the headers sent", async () => {
    await w.page.locator(`[data-testid="event-row"][data-event-id="${eventId}"] [data-testid="event-link"]`).click();
    await eventually("the event route", () => (new URL(w.page.url()).pathname === `/console/events/${eventId}` ? true : undefined));
    await w.page.getByTestId("attempt").first().waitFor();
    const card = await w.page.getByTestId("attempt").first().textContent();
    expect(card).toContain("Attempt 1");
    expect(card).toContain("HTTP 200");
    expect(card).toMatch(/\d+ ms/);
    expect(await w.page.getByTestId("response-excerpt").first().textContent()).toBe("thanks, got it");
    const headers = await w.page.getByTestId("headers-sent").first().textContent();
    expect(headers).toContain(`webhook-id${eventId}`);
    expect(headers).toContain("content-typeapplication/json");
  });

  it("verifies the attempt's proof in the page after pinning the log key shown on first use", async () => {
    const served = (await rpc(h.server.url, "GetPublicKeys", {}, tenant.apiKey)).body.keys.map((k: any) => k.vkey);
    await w.page.getByTestId("verify-attempt").first().click();
    await w.page.getByTestId("pin-prompt").waitFor();
    expect(await w.page.getByTestId("served-vkey").allTextContents()).toEqual(served);
    await w.page.getByTestId("pin-key").click();
    const result = await textMatching(w.page.getByTestId("verify-result"), /^(VERIFIED|FAILED)/);
    expect(result).toMatch(/^VERIFIED: attempt 1 of event /);
    expect(result).toContain(eventId);
    expect(result).toContain(`sent to ${sink.url}`);
    expect(result).toContain("delivered (HTTP 200");
    expect(result).toMatch(/entry \d+ of the log kapsel\.localhost\/log, whose checkpoint of \d+ entries was signed at \d{4}-\d\d-\d\dT/);
    expect(result).toContain("No payload file was given");
    const pinned = await w.page.evaluate(() => localStorage.getItem("kapsel.console.pinnedKeys.kapsel.localhost/log"));
    expect(JSON.parse(pinned!).map((k: { vkey: string }) => k.vkey)).toEqual(served);
  });

  it("checks a payload file the user supplies against the receipt, and rejects a different one", async () => {
    const input = w.page.getByTestId("payload-file");
    await input.setInputFiles({ name: "order.json", mimeType: "application/json", buffer: Buffer.from(body) });
    await w.page.getByTestId("verify-attempt").first().click();
    const ok = await textMatching(w.page.getByTestId("verify-result"), /^(VERIFIED|FAILED)/);
    expect(ok).toMatch(/^VERIFIED/);
    expect(ok).toContain("The payload file order.json is exactly the body sent");
    await input.setInputFiles({ name: "forged.json", mimeType: "application/json", buffer: Buffer.from('{"type":"order.paid","order":43}') });
    await w.page.getByTestId("verify-attempt").first().click();
    const bad = await textMatching(w.page.getByTestId("verify-result"), /^FAILED/);
    expect(bad).toMatch(/^FAILED \(PAYLOAD_MISMATCH\): The payload file is not the body that was delivered/);
  });

  it("opens the contract routes directly, by link", async () => {
    const fresh = await w.context.newPage();
    await fresh.goto(`${h.server.url}/console/events/${eventId}`);
    // A new tab has no session (the key lives in sessionStorage): it asks to sign in, then shows the event.
    await fresh.getByTestId("api-key").fill(tenant.apiKey);
    await fresh.getByTestId("sign-in").click();
    await textMatching(fresh.getByTestId("event-status"), /delivered/);
    await fresh.goto(`${h.server.url}/console/endpoints`);
    await fresh.getByTestId("endpoint-row").first().waitFor();
    await fresh.goto(`${h.server.url}/console/events`);
    await fresh.locator(`[data-testid="event-row"][data-event-id="${eventId}"]`).waitFor();
    await fresh.close();
  });

  it("sent the key only to the server that served the page, and broke no CSP rule", () => {
    const origin = new URL(h.server.url).origin;
    const foreign = w.requests.filter((r) => !r.url.startsWith("blob:") && new URL(r.url).origin !== origin);
    expect(foreign).toEqual([]);
    const withKey = w.requests.filter((r) => r.authorization !== undefined);
    expect(withKey.length).toBeGreaterThan(5);
    expect(withKey.every((r) => new URL(r.url).origin === origin && r.authorization === `Bearer ${tenant.apiKey}`)).toBe(true);
    expect(w.problems.filter((p) => /Content Security Policy|Trusted Type|uncaught/i.test(p))).toEqual([]);
  });
});

describe("signing in with a bad key", () => {
  it("a wrong API key, a wrong admin token and an ingest-only key each get a clear message", async () => {
    const tenant = await newTenant(h.server.url, "bad-keys");
    const ingestOnly = (await rpc(h.server.url, "CreateApiKey", { name: "i", scopes: ["SCOPE_INGEST"] }, tenant.apiKey)).body.secret;
    const w = await openPage(h.browser);
    await w.page.goto(`${h.server.url}/console/`);
    const attempt = async (token: string) => {
      await w.page.getByTestId("api-key").fill(token);
      await w.page.getByTestId("sign-in").click();
      return textMatching(w.page.getByTestId("sign-in-error"), new RegExp(`.`));
    };
    expect(await attempt("ksk_this_is_not_a_key")).toBe(
      "This API key was not accepted (E1004): it is mistyped, revoked, or belongs to another Kapsel server.",
    );
    await w.page.getByTestId("api-key").fill("");
    expect(await attempt("not-the-admin-token")).toBe("Not accepted (E1004): this is neither a tenant API key (ksk_…) nor this server's admin token.");
    expect(await attempt(ingestOnly)).toBe(
      "This API key may not read this tenant (E1004): the console needs a key with the read or manage scope, not only ingest.",
    );
    expect(await w.page.getByTestId("signed-in-as").count()).toBe(0);
    expect(await w.page.evaluate(() => sessionStorage.length + localStorage.length)).toBe(0);
    await w.context.close();
  });
});

describe("the admin", () => {
  it("lists and creates tenants, renames one, sets its rate limit, and manages its API keys", async () => {
    const w = await openPage(h.browser);
    await signIn(w.page, h.server.url, ADMIN_TOKEN);
    expect(await w.page.getByTestId("signed-in-as").textContent()).toBe("admin");
    await eventually("the admin route", () => (new URL(w.page.url()).pathname === "/console/admin" ? true : undefined));
    await w.page.getByTestId("tenant-row").first().waitFor();

    await w.page.getByTestId("new-tenant-name").fill("made-in-console");
    await w.page.getByTestId("new-tenant-submit").click();
    const firstKey = await textMatching(w.page.getByTestId("secret-value"), /^ksk_/);
    const row = w.page.locator('[data-testid="tenant-row"]', { hasText: "made-in-console" });
    await row.waitFor();
    const tenantId = (await row.getAttribute("data-tenant-id"))!;
    expect((await rpc(h.server.url, "GetTenant", {}, firstKey)).body.tenant.id).toBe(tenantId);

    await row.getByRole("link").click();
    await w.page.getByTestId("tenant-form").waitFor();
    await w.page.getByTestId("tenant-name-input").fill("renamed-in-console");
    await w.page.getByTestId("tenant-rate").fill("5");
    await w.page.getByTestId("tenant-burst").fill("20");
    await w.page.getByTestId("tenant-save").click();
    await textMatching(w.page.getByTestId("tenant-name"), /^renamed-in-console$/);
    const stored = (await rpc(h.server.url, "GetTenant", { tenantId }, ADMIN_TOKEN)).body.tenant;
    expect([stored.name, stored.rateLimitPerSecond, stored.rateLimitBurst]).toEqual(["renamed-in-console", 5, 20]);

    await w.page.getByTestId("new-key-name").fill("ci-reader");
    await w.page.getByTestId("new-key-submit").click();
    const readKey = await textMatching(w.page.getByTestId("secret-value"), /^ksk_/);
    expect((await rpc(h.server.url, "ListEndpoints", {}, readKey)).status).toBe(200);
    const keyRow = w.page.locator('[data-testid="api-key-row"]', { hasText: "ci-reader" });
    await keyRow.waitFor();
    expect(await w.page.getByTestId("api-key-row").count()).toBe(2);
    w.page.once("dialog", (d) => void d.accept());
    await keyRow.getByTestId("revoke-key").click();
    await textMatching(keyRow, /revoked/);
    expect((await rpc(h.server.url, "ListEndpoints", {}, readKey)).status).toBe(401);
    expect((await rpc(h.server.url, "ListEndpoints", {}, firstKey)).status).toBe(200);
    expect(w.problems.filter((p) => /Content Security Policy|uncaught/i.test(p))).toEqual([]);
    await w.context.close();
  });
});
