// A real browser: a page bundled from @kapsel/sdk/web with esbuild, served from a different
// origin than the Kapsel server, loaded in headless Chromium (Debian's package) through
// playwright-core. Cross-origin calls with an Authorization header need a CORS preflight, so
// every call that works here went through one; the test also watches the preflight itself.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { chromium, type Browser, type Page } from "playwright-core";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHROMIUM_ARGS, chromiumPath } from "../../test/support/chromium.ts";
import { createEndpoint } from "./support/endpoints.ts";
import { createTenant, rpc } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";

interface PageResult {
  endpoints: string[];
  checkpoint: { origin: string; treeSize: string; note: string };
  unauthenticated: { code?: string; kapselCode?: string; requestId?: string; succeeded?: boolean };
}

interface Preflight {
  url: string;
  requestHeaders: string;
  status?: number;
  allowHeaders?: string;
}

let server: TestServer;
let site: http.Server;
let siteUrl: string;
let browser: Browser;
let page: Page;
let apiKey: string;
let endpointId: string;
let result: PageResult;
const preflights = new Map<string, Preflight>();

beforeAll(async () => {
  server = await startTestServer({ KAPSEL_CHECKPOINT_INTERVAL_MS: "200" });
  apiKey = (await createTenant(server.url, ADMIN_TOKEN, "dashboard")).apiKey;
  endpointId = await createEndpoint(server.url, apiKey);
  // The server signs an empty checkpoint shortly after it starts.
  while ((await rpc(server.url, "GetCheckpoint", {}, apiKey)).status !== 200) await new Promise((r) => setTimeout(r, 50));

  const bundle = await build({
    entryPoints: [fileURLToPath(new URL("./browser/page.ts", import.meta.url))],
    bundle: true,
    platform: "browser",
    format: "esm",
    target: "es2022",
    write: false,
  });
  const script = bundle.outputFiles[0]!.text;
  site = http.createServer((req, res) => {
    if (req.url === "/app.js") {
      res.writeHead(200, { "content-type": "text/javascript" }).end(script);
    } else if (req.url?.startsWith("/?")) {
      res.writeHead(200, { "content-type": "text/html" }).end('<!doctype html><html><body><script type="module" src="/app.js"></script></body></html>');
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => site.listen(0, "127.0.0.1", resolve));
  // "localhost" vs the server's "127.0.0.1", and another port: a different origin either way.
  siteUrl = `http://localhost:${(site.address() as AddressInfo).port}`;

  browser = await chromium.launch({ executablePath: await chromiumPath(), args: [...CHROMIUM_ARGS], headless: true });
  page = await browser.newPage();
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  cdp.on("Network.requestWillBeSent", (e) => {
    if (e.request.method === "OPTIONS") {
      preflights.set(e.requestId, { url: e.request.url, requestHeaders: String(e.request.headers["Access-Control-Request-Headers"] ?? "") });
    }
  });
  cdp.on("Network.responseReceived", (e) => {
    const p = preflights.get(e.requestId);
    if (p) Object.assign(p, { status: e.response.status, allowHeaders: String(e.response.headers["access-control-allow-headers"] ?? "") });
  });
  await page.goto(`${siteUrl}/?${new URLSearchParams({ api: server.url, key: apiKey })}`);
  await page.waitForFunction(() => document.body.dataset.result !== undefined);
  result = JSON.parse((await page.evaluate(() => document.body.dataset.result))!) as PageResult;
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await new Promise((r) => site?.close(r));
  await server?.stop();
});

describe("@kapsel/sdk/web in headless Chromium, from another origin", () => {
  it("the page's origin differs from the API's", () => {
    expect(new URL(siteUrl).origin).not.toBe(new URL(server.url).origin);
  });

  it("the CORS preflight for a call with Authorization passes", () => {
    const listPreflight = [...preflights.values()].find((p) => p.url.endsWith("/kapsel.v1.ManagementService/ListEndpoints"));
    expect(listPreflight?.requestHeaders.toLowerCase().split(",").map((h) => h.trim())).toContain("authorization");
    expect(listPreflight?.status).toBe(204);
    expect(listPreflight?.allowHeaders?.toLowerCase()).toMatch(/(^|, )authorization(,|$)/);
  });

  it("lists the tenant's endpoints", async () => {
    expect(result.endpoints).toEqual([endpointId]);
    expect(await page.locator("#endpoints li").allTextContents()).toEqual([`${endpointId} https://93.184.216.34/hook`]);
  });

  it("fetches the signed checkpoint", async () => {
    const latest = (await rpc(server.url, "GetCheckpoint", {}, apiKey)).body;
    expect(result.checkpoint.origin).toBe(latest.origin);
    expect(result.checkpoint.note.startsWith(`${latest.origin}\n`)).toBe(true);
    expect(await page.locator("#checkpoint").textContent()).toBe(`${latest.origin} size ${result.checkpoint.treeSize}`);
  });

  it("a call without a key fails with Unauthenticated and E1004, request id readable through CORS", async () => {
    expect(await page.locator("#unauthenticated").textContent()).toBe("Unauthenticated E1004");
    expect(result.unauthenticated).toMatchObject({ code: "Unauthenticated", kapselCode: "E1004" });
    expect(result.unauthenticated.requestId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("verifyWebhook runs on Web Crypto in the browser and checks a standardwebhooks signature", async () => {
    const secret = `whsec_${Buffer.from("browser-side secret, 32 bytes!!!").toString("base64")}`;
    const body = '{"type":"invoice.paid","amount":4200}';
    const now = new Date();
    const headers = {
      "webhook-id": "msg_browser",
      "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
      "webhook-signature": new Webhook(secret).sign("msg_browser", now, body),
    };
    const verify = (args: { headers: Record<string, string>; body: string; secrets: string[] }) =>
      page.evaluate(
        (a) => (window as unknown as { kapselVerifyWebhook: (...x: unknown[]) => Promise<unknown> }).kapselVerifyWebhook(a.headers, a.body, a.secrets),
        args,
      );
    expect(await verify({ headers, body, secrets: [secret] })).toMatchObject({ ok: true, id: "msg_browser", secretIndex: 0 });
    expect(await verify({ headers, body: `${body} `, secrets: [secret] })).toMatchObject({ ok: false, reason: "no_matching_signature" });
  });
});
