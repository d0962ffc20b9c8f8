// `npm run screenshots -w console`: regenerates docs/console/*.png, the console's main views, from
// a throwaway server with a little history (console/scripts/demo-server.ts) in headless Chromium.
import { randomBytes } from "node:crypto";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Page } from "playwright-core";
import { CHROMIUM_ARGS, chromiumPath } from "../../test/support/chromium.ts";
import { checkpointBody, logKeyFromSeed, signCheckpoint } from "../../server/src/attestation/log-key.ts";
import { call, ingestMany, startDemoServer } from "./demo-server.ts";

const OUT = fileURLToPath(new URL("../../docs/console/", import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// A known log key, so the last screenshot can show what a forked log looks like.
const seed = randomBytes(32);
const demo = await startDemoServer({ KAPSEL_SIGNING_KEY: seed.toString("base64") });
const { url } = demo.kapsel;
try {
  const { apiKey } = await call(url, "CreateTenant", { name: "acme", rateLimitPerSecond: 1000, rateLimitBurst: 1000 }, demo.adminToken);
  await call(url, "CreateTenant", { name: "globex" }, demo.adminToken);
  const orders = (await call(url, "CreateEndpoint", { url: `${demo.sinkUrl}/ok`, allowHttp: true, description: "orders service", eventTypes: ["order.*"] }, apiKey)).endpoint.id;
  const billing = (await call(url, "CreateEndpoint", { url: `${demo.sinkUrl}/flaky`, allowHttp: true, description: "billing", maxAttempts: 2 }, apiKey)).endpoint.id;
  const crm = (await call(url, "CreateEndpoint", { url: `${demo.sinkUrl}/down`, allowHttp: true, description: "legacy CRM", maxAttempts: 1 }, apiKey)).endpoint.id;
  await ingestMany(url, apiKey, orders, 40);
  await ingestMany(url, apiKey, billing, 30, "invoice.paid");
  // Every delivery to the CRM fails: its circuit opens.
  await ingestMany(url, apiKey, crm, 8, "customer.updated");
  await sleep(4000);

  const browser = await chromium.launch({ executablePath: await chromiumPath(), args: [...CHROMIUM_ARGS], headless: true });
  const page = await browser.newPage({ viewport: { width: 1200, height: 760 } });
  await mkdir(OUT, { recursive: true });
  const shot = async (p: Page, name: string) => {
    await sleep(400);
    await p.screenshot({ path: path.join(OUT, `${name}.png`) });
    console.log(`docs/console/${name}.png`);
  };

  await page.goto(`${url}/console/`);
  await shot(page, "sign-in");
  await page.getByTestId("api-key").fill(apiKey);
  await page.getByTestId("sign-in").click();
  await page.getByTestId("event-row").first().waitFor();
  await shot(page, "events");

  const eventId = await page.getByTestId("event-row").first().getAttribute("data-event-id");
  await page.goto(`${url}/console/events/${eventId}`);
  await page.getByTestId("verify-attempt").first().click();
  await page.getByTestId("pin-key").click();
  await page.getByTestId("verify-result").waitFor();
  await shot(page, "event-verified");

  await page.goto(`${url}/console/endpoints`);
  await page.getByTestId("endpoint-row").first().waitFor();
  await shot(page, "endpoints");
  await page.goto(`${url}/console/endpoints/${billing}`);
  await page.getByTestId("endpoint-chart").waitFor();
  await page.getByRole("button", { name: "1 h" }).click();
  await page.getByTestId("endpoint-chart").waitFor();
  await shot(page, "endpoint-health");

  await page.goto(`${url}/console/alerts`);
  await page.getByTestId("alert-failed").waitFor();
  await shot(page, "alerts");
  await page.goto(`${url}/console/log`);
  await page.getByTestId("visit-check").waitFor();
  await shot(page, "log");

  // The fork alarm: the server answers a checkpoint, signed with the log's key, of another history.
  await page.route("**/kapsel.v1.AttestationService/GetCheckpoint", async (route) => {
    const response = await route.fetch();
    const body = await response.json();
    const forged = signCheckpoint(logKeyFromSeed("kapsel.localhost/log", seed), checkpointBody("kapsel.localhost/log", Number(body.treeSize), randomBytes(32)), Math.floor(Date.now() / 1000));
    await route.fulfill({ response, json: { ...body, checkpoint: forged } });
  });
  await page.goto(`${url}/console/endpoints`);
  await page.getByTestId("fork-alarm").waitFor();
  await shot(page, "fork-alarm");

  const admin = await browser.newPage({ viewport: { width: 1200, height: 600 } });
  await admin.goto(`${url}/console/`);
  await admin.getByTestId("api-key").fill(demo.adminToken);
  await admin.getByTestId("sign-in").click();
  await admin.getByTestId("tenant-row").first().waitFor();
  await shot(admin, "admin-tenants");
  await browser.close();
} finally {
  await demo.close();
}
