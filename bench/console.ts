// `npm run bench -- console`: the console's weight and speed.
// 1. Bundle: every file of console/dist, raw and gzip -9 (what the server sends to browsers that
//    accept gzip), as `npm ci` builds it.
// 2. Time to interactive on the event list with 10 000 events: a throwaway `kapsel serve` (embedded
//    Postgres) with one tenant whose 10 000 events were delivered to a loopback sink; headless
//    Chromium opens /console/events signed in (the credential set in sessionStorage beforehand). TTI here = from navigation start until the first
//    page of event rows is on screen and the main thread has had no long task (> 50 ms) for 500 ms
//    (the last long task's end, if later than the rows). Cold: a new browser profile (nothing
//    cached); warm: a reload (hashed assets from the HTTP cache). Median of 5 each.
// 3. Verification in the page: "Verify" on one attempt, 20 times: the in-page verifyProofBundle
//    time the page reports (data-ms), and click → result text (download, verify, consistency check).
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { chromium, type Browser, type Page } from "playwright-core";
import { CHROMIUM_ARGS, chromiumPath } from "../test/support/chromium.ts";
import { call, ingestMany, startDemoServer } from "../console/scripts/demo-server.ts";
import { ROOT, percentile, writeReadmeSection } from "./_delivery-support.ts";

const EVENTS = Number(process.env.KAPSEL_BENCH_CONSOLE_EVENTS ?? 10_000);
const LOADS = 5;
const VERIFICATIONS = 20;
const median = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 0.5);
const fmt = (n: number) => n.toLocaleString("en-US", { maximumFractionDigits: 1 });

async function bundleSize(): Promise<{ rows: string[]; raw: number; gzip: number }> {
  const dist = path.join(ROOT, "console/dist");
  const files = ["index.html", ...(await readdir(path.join(dist, "assets"))).map((f) => `assets/${f}`)];
  let raw = 0;
  let gzip = 0;
  const rows: string[] = [];
  for (const f of files) {
    const body = await readFile(path.join(dist, f));
    const z = gzipSync(body, { level: 9 }).length;
    raw += body.length;
    gzip += z;
    rows.push(`| ${f.replace(/-[A-Za-z0-9_-]{8}\./, "-<hash>.")} | ${fmt(body.length / 1024)} KiB | ${fmt(z / 1024)} KiB |`);
  }
  return { rows, raw, gzip };
}

/** Loads the event list and returns [rows on screen, interactive], in ms since navigation start. */
async function loadEvents(page: Page, url: string, reload: boolean): Promise<[number, number]> {
  if (reload) await page.reload();
  else await page.goto(`${url}/console/events`);
  await page.locator('[data-testid="event-row"]').first().waitFor({ timeout: 60_000 });
  const rowsAt = await page.evaluate(() => performance.now());
  await page.waitForTimeout(700);
  const lastLongTaskEnd = await page.evaluate(() => {
    const tasks = (window as unknown as { longTasks?: { start: number; end: number }[] }).longTasks ?? [];
    return tasks.reduce((m, t) => Math.max(m, t.end), 0);
  });
  return [rowsAt, Math.max(rowsAt, lastLongTaskEnd)];
}

async function signedInPage(browser: Browser, url: string, apiKey: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  // Records long tasks from the very start of each document (injected by the browser, not the page).
  await context.addInitScript(() => {
    const w = window as unknown as { longTasks: { start: number; end: number }[] };
    w.longTasks = [];
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) w.longTasks.push({ start: e.startTime, end: e.startTime + e.duration });
    }).observe({ type: "longtask", buffered: true });
  });
  // Signed in before the first navigation (as after the sign-in form), so the first page load is
  // the event list itself, with nothing in the HTTP cache.
  await context.addInitScript((token) => {
    sessionStorage.setItem("kapsel.console.credential", JSON.stringify({ kind: "tenant", token, tenantName: "bench" }));
  }, apiKey);
  return context.newPage();
}

export default async function main(): Promise<void> {
  const bundle = await bundleSize();
  console.log(`bundle: ${fmt(bundle.raw / 1024)} KiB raw, ${fmt(bundle.gzip / 1024)} KiB gzip`);

  const demo = await startDemoServer();
  const { url } = demo.kapsel;
  try {
    const { apiKey } = await call(url, "CreateTenant", { name: "bench", rateLimitPerSecond: 100_000, rateLimitBurst: 100_000 }, demo.adminToken);
    const endpointId = (await call(url, "CreateEndpoint", { url: `${demo.sinkUrl}/ok`, allowHttp: true }, apiKey)).endpoint.id;
    const started = Date.now();
    await ingestMany(url, apiKey, endpointId, EVENTS);
    for (;;) {
      const h = await call(url, "GetEndpointHealth", { endpointId }, apiKey);
      if ((h.pendingEvents ?? 0) === 0) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    console.log(`${EVENTS} events ingested and delivered in ${((Date.now() - started) / 1000).toFixed(1)} s`);

    const browser = await chromium.launch({ executablePath: await chromiumPath(), args: [...CHROMIUM_ARGS], headless: true });
    const cold: [number, number][] = [];
    const warm: [number, number][] = [];
    for (let i = 0; i < LOADS; i++) {
      const page = await signedInPage(browser, url, apiKey);
      cold.push(await loadEvents(page, url, false));
      warm.push(await loadEvents(page, url, true));
      await page.context().close();
    }
    const rows = await signedInPage(browser, url, apiKey).then(async (p) => {
      await p.goto(`${url}/console/events`);
      await p.locator('[data-testid="event-row"]').first().waitFor();
      const n = await p.getByTestId("event-row").count();
      await p.context().close();
      return n;
    });

    const page = await signedInPage(browser, url, apiKey);
    const { events } = await call(url, "ListEvents", { pageSize: 1 }, apiKey);
    await page.goto(`${url}/console/events/${events[0].id}`);
    await page.getByTestId("verify-attempt").first().click();
    await page.getByTestId("pin-key").click();
    await page.getByTestId("verify-result").waitFor();
    const inPage: number[] = [];
    const clickToResult: number[] = [];
    let proofHashes = 0;
    for (let i = 0; i < VERIFICATIONS; i++) {
      const t0 = performance.now();
      await page.getByTestId("verify-attempt").first().click();
      await page.waitForFunction(() => document.querySelector('[data-testid="verify-result"]')?.textContent?.startsWith("VERIFIED") === true, null, { polling: 5 });
      clickToResult.push(performance.now() - t0);
      inPage.push(Number(await page.getByTestId("verify-result").getAttribute("data-ms")));
    }
    const bundleText = (await call(url, "GetProofBundle", { attemptId: (await call(url, "GetEvent", { eventId: events[0].id }, apiKey)).event.attempts[0].id }, apiKey)).bundle as string;
    proofHashes = bundleText.slice(0, bundleText.indexOf("\n\n")).split("\n").length - 3;
    await browser.close();

    const report = [
      `\`npm run bench -- console\` (bench/console.ts). Measured ${new Date().toISOString().slice(0, 10)} on this machine (2 cores, shared), Node ${process.version}, Debian Chromium headless.`,
      "",
      "**Bundle** (console/dist as `npm ci` builds it; the server sends the gzip form):",
      "",
      "| file | raw | gzip -9 |",
      "|---|---|---|",
      ...bundle.rows,
      `| **total** | **${fmt(bundle.raw / 1024)} KiB** | **${fmt(bundle.gzip / 1024)} KiB** |`,
      "",
      `**Time to interactive on the event list**, tenant with ${EVENTS.toLocaleString("en-US")} delivered events (the list shows the newest ${rows}, more on demand), from navigation start, median of ${LOADS}:`,
      "",
      "| load | first rows on screen | interactive (no long task for 500 ms) |",
      "|---|---|---|",
      `| cold (new profile) | ${fmt(median(cold.map((c) => c[0])))} ms | ${fmt(median(cold.map((c) => c[1])))} ms |`,
      `| warm (reload, assets cached) | ${fmt(median(warm.map((c) => c[0])))} ms | ${fmt(median(warm.map((c) => c[1])))} ms |`,
      "",
      `**Verification in the page** (one attempt of a ${EVENTS.toLocaleString("en-US")}-leaf log, ${proofHashes}-hash inclusion proof), ${VERIFICATIONS} runs:`,
      "",
      `- \`verifyProofBundle\` in the page (signature, signed time, inclusion, receipt): median ${fmt(median(inPage))} ms, max ${fmt(Math.max(...inPage))} ms;`,
      `- click → result on screen (bundle download, verification, consistency check against the last verified checkpoint): median ${fmt(median(clickToResult))} ms, max ${fmt(Math.max(...clickToResult))} ms.`,
    ].join("\n");
    console.log(report);
    if (process.env.KAPSEL_BENCH_NO_README !== "1") await writeReadmeSection("console", report);
  } finally {
    await demo.close();
  }
}
