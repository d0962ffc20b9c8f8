// The library, bundled for the browser with esbuild (platform "browser", so any Node built-in
// import would fail the build), loads in headless Chromium and verifies a bundle there.
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { build } from "esbuild";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHROMIUM_ARGS, chromiumPath } from "../../test/support/chromium.ts";
import { VERIFIER_DIR } from "./support/cli.ts";
import { TestKey, TestLog, cosign, seedOf } from "./support/test-log.ts";

type Library = typeof import("../src/index.ts");

const log = new TestLog().append(9);
let server: Server;
let browser: Browser;
let page: Page;
let bundleBytes = 0;

beforeAll(async () => {
  const result = await build({
    entryPoints: [`${VERIFIER_DIR}src/index.ts`],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    metafile: true,
    logLevel: "silent",
  });
  const script = result.outputFiles[0]!.text;
  bundleBytes = result.outputFiles[0]!.contents.length;
  expect(Object.keys(result.metafile.inputs).filter((input) => input.startsWith("node:"))).toEqual([]);

  const page0 = `<!doctype html><meta charset="utf-8"><title>kapsel verify</title>
<script type="module">
  import * as library from "/verify.js";
  window.kapselVerify = library;
  document.title = "ready";
</script>`;
  server = createServer((request, response) => {
    if (request.url === "/verify.js") {
      response.writeHead(200, { "content-type": "text/javascript; charset=utf-8" }).end(script);
    } else if (request.url === "/") {
      response.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(page0);
    } else {
      response.writeHead(404).end();
    }
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");

  browser = await chromium.launch({ executablePath: await chromiumPath(), headless: true, args: [...CHROMIUM_ARGS] });
  page = await browser.newPage();
  const { port } = server.address() as AddressInfo;
  await page.goto(`http://127.0.0.1:${port}/`);
  await page.waitForFunction(() => document.title === "ready");
}, 600_000);

afterAll(async () => {
  await browser?.close();
  server?.close();
});

/** Runs verifyProofBundle in the page and returns a structured-clone-friendly summary. */
function verifyInPage(bundle: string, trustedKeys: string[]) {
  return page.evaluate(
    ({ bundle, trustedKeys }) => {
      const library = (window as unknown as { kapselVerify: Library }).kapselVerify;
      const result = library.verifyProofBundle(bundle, { trustedKeys, requireTimestamp: true });
      return result.ok
        ? { ok: true, index: String(result.index), treeSize: String(result.treeSize), url: result.receipt.url, time: String(result.timestamp) }
        : { ok: false, code: result.code, message: result.message };
    },
    { bundle, trustedKeys },
  );
}

describe("@kapsel/verify in headless Chromium", () => {
  it("bundles without Node built-ins into a small script", () => {
    expect(bundleBytes).toBeGreaterThan(10_000);
    expect(bundleBytes).toBeLessThan(400_000);
  });

  it("verifies a proof bundle", async () => {
    expect(await verifyInPage(log.bundle(5), [log.key.vkey])).toEqual({
      ok: true,
      index: "5",
      treeSize: "9",
      url: "https://hooks.example.net/kapsel?n=5",
      time: "1795000009",
    });
  });

  it("refuses a tampered bundle with the same code as in Node", async () => {
    const tampered = log.bundle(5).replace("index 5", "index 4");
    expect(await verifyInPage(tampered, [log.key.vkey])).toMatchObject({ ok: false, code: "INCLUSION_FAILED" });
  });

  it("checks witness cosignatures against a quorum", async () => {
    const w1 = new TestKey("w1.example", seedOf("browser witness 1"));
    const w2 = new TestKey("w2.example", seedOf("browser witness 2"));
    const cosigned = cosign(cosign(log.checkpoint(9), w1, 1_800_000_001n), w2, 1_800_000_002n);
    const result = await page.evaluate(
      ({ checkpoint, key, witnesses, lonely }) => {
        const library = (window as unknown as { kapselVerify: Library }).kapselVerify;
        const met = library.verifyCheckpoint(checkpoint, [key], { witnesses });
        const below = library.verifyCheckpoint(lonely, [key], { witnesses });
        return {
          met: met.ok ? met.cosignatures.map((c) => `${c.witness} ${c.timestamp}`) : met.message,
          below: below.ok ? "accepted" : below.code,
        };
      },
      { checkpoint: cosigned, key: log.key.vkey, witnesses: [w1.witnessVkey, w2.witnessVkey], lonely: cosign(log.checkpoint(9), w1, 1n) },
    );
    expect(result).toEqual({ met: ["w1.example 1800000001", "w2.example 1800000002"], below: "QUORUM_NOT_MET" });
  });

  it("verifies the C2SP signed-note spec example", async () => {
    const ok = await page.evaluate(() => {
      const library = (window as unknown as { kapselVerify: Library }).kapselVerify;
      const key = library.parseVerifierKey("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k");
      const note =
        "This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
      return library.verifyNote(note, [library.ed25519NoteVerifier(key)]).ok;
    });
    expect(ok).toBe(true);
  });
});
