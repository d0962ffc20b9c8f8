// The console as the user's own verifier, attacked by the server in the middle: the test
// intercepts the page's requests (page.route) and answers for the server — a tampered proof
// bundle, a different log key, a forged bundle under that key, a checkpoint that contradicts one
// the page verified before. Everything else reaches the real server, with real deliveries.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Page, Route } from "playwright-core";
import { checkpointBody, logKeyFromSeed, signCheckpoint, vkey } from "../../server/src/attestation/log-key.ts";
import { jcs } from "../../test/support/attestation.ts";
import { eventReaching, ingest } from "../../test/support/delivery.ts";
import { rpc } from "../../test/support/rpc.ts";
import { startSink, succeed, type Sink } from "../../test/support/sink.ts";
import { LOG_ORIGIN, eventually, newTenant, openPage, signIn, startHarness, textMatching, treeSize, type ConsoleHarness, type Watched } from "./support/console-page.ts";

let h: ConsoleHarness;
let sink: Sink;
let tenant: { id: string; apiKey: string };
let endpointId: string;
beforeAll(async () => {
  h = await startHarness();
  sink = await startSink(succeed("ok"));
  tenant = await newTenant(h.server.url, "proofs");
  const r = await rpc(h.server.url, "CreateEndpoint", { url: sink.url, allowHttp: true }, tenant.apiKey);
  endpointId = r.body.endpoint.id;
}, 180_000);
afterAll(async () => {
  await sink?.close();
  await h?.close();
});

/** Delivers an event and waits until its attempt is in a signed checkpoint. */
async function deliveredEvent(body = '{"type":"x"}'): Promise<{ eventId: string; attemptId: string }> {
  const eventId = await ingest(h.server.url, endpointId, body);
  const event = await eventReaching(h.server.url, tenant.apiKey, eventId, "EVENT_STATUS_DELIVERED");
  const attemptId = event.attempts[0].id as string;
  await eventually("the attempt in a checkpoint", async () => ((await rpc(h.server.url, "GetProofBundle", { attemptId }, tenant.apiKey)).status === 200 ? true : undefined));
  return { eventId, attemptId };
}

/** Answers an RPC for the server: the real answer, changed by `edit`. */
async function intercept(page: Page, method: string, edit: (body: any) => any): Promise<void> {
  await page.route(`**/kapsel.v1.AttestationService/${method}`, async (route: Route) => {
    const response = await route.fetch();
    await route.fulfill({ response, json: edit(await response.json()) });
  });
}

function bundleParts(bundle: string): { head: string[]; checkpoint: string } {
  const split = bundle.indexOf("\n\n");
  return { head: bundle.slice(0, split).split("\n"), checkpoint: bundle.slice(split + 2) };
}

async function verifyOn(page: Page, eventId: string): Promise<string> {
  await page.goto(`${h.server.url}/console/events/${eventId}`);
  await page.getByTestId("verify-attempt").first().click();
  return textMatching(page.getByTestId("verify-result"), /^(VERIFIED|FAILED)/);
}

/** A signed-in page whose browser has pinned the log's real key. */
async function pinnedPage(): Promise<Watched> {
  const w = await openPage(h.browser);
  await signIn(w.page, h.server.url, tenant.apiKey);
  await w.page.goto(`${h.server.url}/console/log`);
  await w.page.getByTestId("pin-key").click();
  await textMatching(w.page.getByTestId("visit-check"), /First checkpoint verified here|extends|is the one verified before/);
  return w;
}

describe("a tampered proof bundle", () => {
  let w: Watched;
  let event: { eventId: string; attemptId: string };
  beforeAll(async () => {
    event = await deliveredEvent('{"type":"invoice.paid"}');
    w = await pinnedPage();
  });
  afterAll(async () => {
    await w?.context.close();
  });

  it("the genuine bundle verifies", async () => {
    expect(await verifyOn(w.page, event.eventId)).toMatch(/^VERIFIED/);
  });

  it("an edited receipt (the destination's answer changed) fails: it is not in the signed log", async () => {
    await intercept(w.page, "GetProofBundle", (body) => {
      const { head, checkpoint } = bundleParts(body.bundle);
      const receipt = JSON.parse(Buffer.from(head[1]!.slice("extra ".length), "base64").toString());
      receipt.status_code = 500;
      receipt.outcome = "http_error";
      head[1] = `extra ${Buffer.from(jcs(receipt)).toString("base64")}`;
      return { bundle: `${head.join("\n")}\n\n${checkpoint}` };
    });
    const result = await verifyOn(w.page, event.eventId);
    expect(result).toMatch(/^FAILED \(INCLUSION_FAILED\): The receipt is not in the signed log: the receipt or the proof was altered\. inclusion proof: /);
    await w.page.unroute("**/kapsel.v1.AttestationService/GetProofBundle");
  });

  it("an edited checkpoint (a forged root) fails its signature", async () => {
    await intercept(w.page, "GetProofBundle", (body) => {
      const { head, checkpoint } = bundleParts(body.bundle);
      const lines = checkpoint.split("\n");
      lines[2] = randomBytes(32).toString("base64");
      return { bundle: `${head.join("\n")}\n\n${lines.join("\n")}` };
    });
    expect(await verifyOn(w.page, event.eventId)).toMatch(/^FAILED \(BAD_SIGNATURE\): The checkpoint's signature does not verify/);
    await w.page.unroute("**/kapsel.v1.AttestationService/GetProofBundle");
  });

  it("a genuine bundle of another attempt is not accepted as this one's", async () => {
    const other = await deliveredEvent('{"type":"other"}');
    const otherBundle = (await rpc(h.server.url, "GetProofBundle", { attemptId: other.attemptId }, tenant.apiKey)).body.bundle;
    await intercept(w.page, "GetProofBundle", () => ({ bundle: otherBundle }));
    const result = await verifyOn(w.page, event.eventId);
    expect(result).toBe(
      `FAILED (WRONG_ATTEMPT): the bundle is a valid proof, but of attempt ${other.attemptId} of event ${other.eventId}, not of attempt ${event.attemptId} of event ${event.eventId}.`,
    );
    await w.page.unroute("**/kapsel.v1.AttestationService/GetProofBundle");
    expect(await verifyOn(w.page, event.eventId)).toMatch(/^VERIFIED/);
  });
});

describe("a changed log key", () => {
  it("is a loud warning, never adopted: a bundle signed by the new key fails while the pinned key stays", async () => {
    const { eventId } = await deliveredEvent('{"type":"key.change"}');
    const w = await pinnedPage();
    const pinnedBefore = await w.page.evaluate(() => localStorage.getItem("kapsel.console.pinnedKeys.kapsel.localhost/log"));
    const rogue = logKeyFromSeed(LOG_ORIGIN, randomBytes(32));
    const rogueVkey = vkey(LOG_ORIGIN, rogue.publicKey);
    await intercept(w.page, "GetPublicKeys", () => ({ keys: [{ vkey: rogueVkey, keyId: rogue.keyId.toString("hex") }] }));
    // The rogue server re-signs the genuine bundle's checkpoint with its own key.
    await intercept(w.page, "GetProofBundle", (body) => {
      const { head, checkpoint } = bundleParts(body.bundle);
      const text = checkpoint.slice(0, checkpoint.indexOf("\n\n") + 1);
      return { bundle: `${head.join("\n")}\n\n${signCheckpoint(rogue, text, Math.floor(Date.now() / 1000))}` };
    });
    await w.page.reload();
    const warning = w.page.getByTestId("key-warning");
    expect(await textMatching(warning, /^Warning: the log key changed/)).toContain(rogueVkey);
    expect(await warning.getAttribute("data-status")).toBe("replaced");

    const result = await verifyOn(w.page, eventId);
    expect(result).toMatch(/^FAILED \(NO_TRUSTED_SIGNATURE\): The bundle's checkpoint is not signed by a key you pinned\./);
    expect(await w.page.evaluate(() => localStorage.getItem("kapsel.console.pinnedKeys.kapsel.localhost/log"))).toBe(pinnedBefore);
    // Adopting it takes a deliberate act: the button stays disabled until the user confirms.
    await w.page.getByTestId("key-warning").waitFor();
    expect(await w.page.getByTestId("pin-new-key").isDisabled()).toBe(true);
    await w.context.close();
  });
});

describe("a log that rewrites its history", () => {
  it("is checked on every visit: consistent growth passes, an inconsistent checkpoint raises a persistent fork alarm with the evidence", async () => {
    await deliveredEvent('{"type":"before"}');
    const w = await pinnedPage();
    const remembered = JSON.parse((await w.page.evaluate(() => localStorage.getItem("kapsel.console.lastCheckpoint.kapsel.localhost/log")))!);
    const seenSize = Number(remembered.treeSize);

    // The log grows honestly: the next visit proves the new checkpoint extends the remembered one.
    await deliveredEvent('{"type":"after.1"}');
    await deliveredEvent('{"type":"after.2"}');
    const grown = await eventually("the log to grow", async () => {
      const n = await treeSize(h.server.url, tenant.apiKey);
      return n >= seenSize + 2 ? n : undefined;
    });
    await w.page.reload();
    expect(await textMatching(w.page.getByTestId("visit-check"), /^Consistent/)).toMatch(
      new RegExp(`^Consistent: the newest checkpoint \\(${grown} entries\\) extends the one verified before \\(${seenSize} entries\\)`),
    );
    expect(await w.page.getByTestId("fork-alarm").count()).toBe(0);
    const honest = JSON.parse((await w.page.evaluate(() => localStorage.getItem("kapsel.console.lastCheckpoint.kapsel.localhost/log")))!);

    // The log then signs, with its real key, a checkpoint of a different history of a larger size.
    await deliveredEvent('{"type":"after.3"}');
    const size = await eventually("more growth", async () => {
      const n = await treeSize(h.server.url, tenant.apiKey);
      return n > grown ? n : undefined;
    });
    const forged = signCheckpoint(h.logKey, checkpointBody(LOG_ORIGIN, size, randomBytes(32)), Math.floor(Date.now() / 1000));
    await intercept(w.page, "GetCheckpoint", (body) => ({ ...body, checkpoint: forged, treeSize: String(size) }));
    await w.page.reload();
    const alarm = w.page.getByTestId("fork-alarm");
    expect(await textMatching(alarm, /^Log fork detected/)).toContain(`The checkpoint of size ${size} does not extend the one of size ${grown}`);

    // Both checkpoints are there to download as evidence.
    const [oldFile] = await Promise.all([w.page.waitForEvent("download"), w.page.getByTestId("fork-evidence-old").click()]);
    const [newFile] = await Promise.all([w.page.waitForEvent("download"), w.page.getByTestId("fork-evidence-new").click()]);
    const read = async (d: typeof oldFile) => {
      const chunks: Buffer[] = [];
      for await (const c of (await d.createReadStream())!) chunks.push(c as Buffer);
      return Buffer.concat(chunks).toString();
    };
    expect(await read(oldFile)).toBe(honest.text);
    expect(await read(newFile)).toBe(forged);

    // The alarm persists: the server behaving again does not clear it, on any page.
    await w.page.unroute("**/kapsel.v1.AttestationService/GetCheckpoint");
    await w.page.goto(`${h.server.url}/console/endpoints`);
    await alarm.waitFor();
    expect(await w.page.getByTestId("log-status").textContent()).toBe("log fork detected");
    // And the remembered checkpoint did not move to the forged one.
    const after = JSON.parse((await w.page.evaluate(() => localStorage.getItem("kapsel.console.lastCheckpoint.kapsel.localhost/log")))!);
    expect(after.text).toBe(honest.text);
    await w.context.close();
  });

  it("two signed checkpoints of the same size with different roots are a fork too", async () => {
    const w = await pinnedPage();
    const remembered = JSON.parse((await w.page.evaluate(() => localStorage.getItem("kapsel.console.lastCheckpoint.kapsel.localhost/log")))!);
    const forged = signCheckpoint(h.logKey, checkpointBody(LOG_ORIGIN, Number(remembered.treeSize), randomBytes(32)), Math.floor(Date.now() / 1000));
    await intercept(w.page, "GetCheckpoint", (body) => ({ ...body, checkpoint: forged, treeSize: remembered.treeSize }));
    await w.page.reload();
    expect(await textMatching(w.page.getByTestId("fork-alarm"), /^Log fork detected/)).toContain(`Two signed checkpoints of size ${remembered.treeSize} have different root hashes`);
    await w.context.close();
  });
});
