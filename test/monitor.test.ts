// kapsel-verify monitor following a real Kapsel server: real deliveries to a loopback sink become
// leaves, the monitor proves each new checkpoint consistent from the public tiles and, with the
// tenant's API key, proves the tenant's own attempts are in the tree. Then a server forging
// history under the log's real key (built here from the known KAPSEL_SIGNING_KEY) is caught.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NODE_24, buildVerifier, runCliAsync } from "../verifier/test/support/cli.ts";
import { startFakeLog, type FakeLogServer } from "../verifier/test/support/fake-log-server.ts";
import { ReferenceTree } from "../verifier/test/support/reference-merkle.ts";
import { TestKey, TestLog } from "../verifier/test/support/test-log.ts";
import { createDestination, eventReaching, ingest, until, type Destination } from "./support/delivery.ts";
import { rpc } from "./support/rpc.ts";
import { startTestServer, type TestServer } from "./support/server.ts";
import { startSink, type Sink } from "./support/sink.ts";

const ORIGIN = "monitor.test.example/log";
// Public on purpose: this key only signs the test's log.
const SEED = Buffer.alloc(32, 7);
const logKey = new TestKey(ORIGIN, SEED);

let server: TestServer;
let sink: Sink;
let dest: Destination;
let dir = "";
let state = "";

beforeAll(async () => {
  await buildVerifier();
  server = await startTestServer({
    KAPSEL_LOG_ORIGIN: ORIGIN,
    KAPSEL_SIGNING_KEY: SEED.toString("base64"),
    KAPSEL_CHECKPOINT_INTERVAL_MS: "50",
  });
  sink = await startSink();
  dest = await createDestination(server.url, sink.url);
  dir = mkdtempSync(join(tmpdir(), "kapsel-monitor-e2e-"));
  state = join(dir, "monitor-state.json");
});

afterAll(async () => {
  await server?.stop();
  await sink?.close();
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

/** Delivers `count` events and waits until the log's public checkpoint covers all attempts so far. */
async function deliverAndSign(count: number, total: number): Promise<number> {
  for (let i = 0; i < count; i++) {
    const id = await ingest(server.url, dest.endpointId, JSON.stringify({ type: "order.paid", n: i }));
    await eventReaching(server.url, dest.apiKey, id, "EVENT_STATUS_DELIVERED");
  }
  return until(`a checkpoint of size ${total}`, async () => {
    const response = await fetch(`${server.url}/log/checkpoint`);
    const text = response.status === 200 ? await response.text() : "";
    const size = Number(text.split("\n")[1] ?? 0);
    return size >= total ? size : undefined;
  });
}

const monitor = (url: string, ...extra: string[]) =>
  runCliAsync(NODE_24, ["monitor", "--url", url, "--key", logKey.vkey, "--state", state, "--once", ...extra]);

describe("kapsel-verify monitor on a running Kapsel server", () => {
  it("publishes the key the test derived from KAPSEL_SIGNING_KEY", async () => {
    // The key is recorded when the sequencer first runs, which a busy machine may delay.
    const keys = await until("the log's key to be published", async () => (await rpc(server.url, "GetPublicKeys", {}, dest.apiKey)).body.keys);
    expect(keys.map((k: { vkey: string }) => k.vkey)).toEqual([logKey.vkey]);
  });

  it("follows the log cleanly as deliveries are appended, and proves the tenant's attempts are in it", async () => {
    const first = await deliverAndSign(3, 3);
    const start = await monitor(server.url);
    expect(start.stderr).toBe("");
    expect(start.status).toBe(0);
    expect(start.stdout).toContain(`following ${ORIGIN} from size ${first} `);

    const second = await deliverAndSign(4, 7);
    const grown = await monitor(server.url, "--api-key", dest.apiKey);
    expect(grown.stderr).toBe("");
    expect(grown.status).toBe(0);
    expect(grown.stdout).toContain(`${ORIGIN} grew from size ${first} to ${second} `);
    expect(grown.stdout).toContain(`  inclusion  7 recent attempt(s) of the tenant proven in the tree of size ${second}\n`);
    expect(JSON.parse(readFileSync(state, "utf8")).treeSize).toBe(String(second));
  });

  it("exits 2 with an API key the server does not know", async () => {
    const r = await monitor(server.url, "--api-key", "ksk_not_a_key");
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("kapsel-verify: --api-key: the server refused it: ListEvents: unauthenticated E1004");
  });

  describe("then shown a forged history signed with the log's real key", () => {
    let fake: FakeLogServer;
    let stored: { treeSize: string; checkpoint: string };
    beforeAll(async () => {
      stored = JSON.parse(readFileSync(state, "utf8"));
      fake = await startFakeLog({ checkpoint: undefined, size: 0, mth: () => new Uint8Array(32) });
    });
    afterAll(() => fake?.close());

    /** A log under the real key whose leaves are not the server's. */
    function forged(size: number): TestLog {
      const log = new TestLog(ORIGIN, SEED);
      for (let i = 0; i < size; i++) log.leaves.push(Buffer.from(`forged receipt ${i}`));
      log.tree = new ReferenceTree(log.leaves);
      return log;
    }

    it("catches a larger tree that does not extend the stored one, printing both checkpoints", async () => {
      const size = Number(stored.treeSize) + 5;
      const log = forged(size);
      fake.view = { checkpoint: log.checkpoint(size), size, mth: (s, e) => log.tree.mth(s, e) };
      const r = await monitor(fake.url);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`LOG MISBEHAVED [CONSISTENCY_FAILED] the tree of size ${size} does not extend the tree of size ${stored.treeSize} accepted earlier`);
      expect(r.stdout).toContain(`--- checkpoint accepted earlier (state file ${state})\n${stored.checkpoint.trimEnd()}\n`);
      expect(r.stdout).toContain(`--- checkpoint served now by ${fake.url}/log/checkpoint\n${log.checkpoint(size).trimEnd()}\n`);
    });

    it("catches another root at the stored size", async () => {
      const size = Number(stored.treeSize);
      const log = forged(size);
      fake.view = { checkpoint: log.checkpoint(size), size, mth: (s, e) => log.tree.mth(s, e) };
      const r = await monitor(fake.url);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`the log signed two different trees of size ${size}`);
      expect(r.stdout).toContain(stored.checkpoint.trimEnd());
      expect(r.stdout).toContain(log.checkpoint(size).trimEnd());
    });

    it("still follows the real server afterwards: the forgeries were never stored", async () => {
      const r = await monitor(server.url);
      expect(r.status).toBe(0);
      expect(JSON.parse(readFileSync(state, "utf8")).checkpoint).not.toContain("forged");
    });
  });
});
