// What the console's browser tests share: a headless Chromium (Debian's, through playwright-core),
// a real Kapsel server with a known log key (so a test can play a log that forks), a loopback
// sink whose answers the test can hold back, and small helpers to drive and read the page.
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from "playwright-core";
import { CHROMIUM_ARGS, chromiumPath } from "../../../test/support/chromium.ts";
import { createTenant, rpc } from "../../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../../test/support/server.ts";
import { logKeyFromSeed, type LogKey } from "../../../server/src/attestation/log-key.ts";

export const LOG_ORIGIN = "kapsel.localhost/log";
/** The log's signing seed, known to the test so it can sign a forked checkpoint like a rogue log. */
export const LOG_SEED = Buffer.alloc(32, 7);

export interface ConsoleHarness {
  server: TestServer;
  browser: Browser;
  logKey: LogKey;
  close(): Promise<void>;
}

export async function startHarness(): Promise<ConsoleHarness> {
  const server = await startTestServer({
    KAPSEL_CHECKPOINT_INTERVAL_MS: "200",
    KAPSEL_SIGNING_KEY: LOG_SEED.toString("base64"),
    KAPSEL_LOG_ORIGIN: LOG_ORIGIN,
  });
  const browser = await chromium.launch({ executablePath: await chromiumPath(), args: [...CHROMIUM_ARGS], headless: true });
  return {
    server,
    browser,
    logKey: logKeyFromSeed(LOG_ORIGIN, LOG_SEED),
    async close() {
      await browser.close();
      await server.stop();
    },
  };
}

export interface Watched {
  page: Page;
  context: BrowserContext;
  /** Every request the page made: where it went and whether it carried a credential. */
  requests: { url: string; authorization: string | undefined }[];
  /** Console errors and uncaught exceptions (CSP violations appear here). */
  problems: string[];
}

/** A fresh browser profile (its own localStorage) with one page, watched. */
export async function openPage(browser: Browser): Promise<Watched> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  const watched: Watched = { page, context, requests: [], problems: [] };
  page.on("request", (r) => watched.requests.push({ url: r.url(), authorization: r.headers().authorization }));
  page.on("console", (m) => {
    if (m.type() === "error") watched.problems.push(m.text());
  });
  page.on("pageerror", (e) => watched.problems.push(`uncaught: ${e.message}`));
  return watched;
}

export async function signIn(page: Page, baseUrl: string, token: string): Promise<void> {
  await page.goto(`${baseUrl}/console/`);
  await page.getByTestId("api-key").fill(token);
  await page.getByTestId("sign-in").click();
  await page.getByTestId("signed-in-as").waitFor();
}

/** Polls a locator's (first match's) text until it matches. */
export async function textMatching(locator: Locator, pattern: RegExp, timeoutMs = 30_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last: string | null = null;
  for (;;) {
    last = (await locator.count()) > 0 ? await locator.first().textContent() : null;
    if (last !== null && pattern.test(last)) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}; last text: ${last}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Polls until `check` returns something. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function newTenant(baseUrl: string, name: string): Promise<{ id: string; apiKey: string }> {
  return createTenant(baseUrl, ADMIN_TOKEN, name);
}

/** The log's current tree size, as the server reports it. */
export async function treeSize(baseUrl: string, token: string): Promise<number> {
  return Number((await rpc(baseUrl, "GetCheckpoint", {}, token)).body.treeSize ?? 0);
}

export { ADMIN_TOKEN };
