// kapsel-verify monitor against a log server the test controls: it follows an honest history,
// and exits 1 with both checkpoints as evidence when the log shows a forged one.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { NODE_20, NODE_24, buildVerifier, runCliAsync, startCli } from "./support/cli.ts";
import { startFakeLog, type FakeLogServer } from "./support/fake-log-server.ts";
import { ReferenceTree } from "./support/reference-merkle.ts";
import { TestKey, TestLog, b64, cosign, seedOf, signCheckpoint } from "./support/test-log.ts";

const log = new TestLog().append(40);
const w1 = new TestKey("w1.example", seedOf("monitor witness 1"));
const w2 = new TestKey("w2.example", seedOf("monitor witness 2"));

/** The log's key over another history: the first `shared` leaves, then different ones. */
function forkOf(shared: number, size: number): TestLog {
  const fork = new TestLog();
  fork.leaves.push(...log.leaves.slice(0, shared));
  for (let i = shared; i < size; i++) fork.leaves.push(Buffer.from(`forged leaf ${i}`));
  fork.tree = new ReferenceTree(fork.leaves);
  return fork;
}

const serve = (source: TestLog, size: number, checkpoint = source.checkpoint(size)) => ({
  checkpoint,
  size,
  mth: (start: number, end: number) => source.tree.mth(start, end),
});

let dir = "";
let fake: FakeLogServer;
let state = "";
const monitor = (...extra: string[]) => runCliAsync(NODE_24, ["monitor", "--url", fake.url, "--key", log.key.vkey, "--state", state, "--once", ...extra]);

beforeAll(async () => {
  await buildVerifier();
  dir = mkdtempSync(join(tmpdir(), "kapsel-monitor-"));
  fake = await startFakeLog(serve(log, 5));
});

afterAll(async () => {
  await fake?.close();
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

let run = 0;
beforeEach(() => {
  state = join(dir, `state-${++run}.json`);
  fake.view = serve(log, 5);
});

describe("kapsel-verify monitor --once", () => {
  it("trusts the first checkpoint, then proves every later one consistent from the log's tiles", async () => {
    const first = await monitor();
    expect(first.stderr).toBe("");
    expect(first.status).toBe(0);
    expect(first.stdout).toMatch(/^following kapsel\.example\.com\/log from size 5 \(root \S+, signed 2026-11-18T\S+\); first checkpoint trusted on first use\n$/);
    expect(JSON.parse(readFileSync(state, "utf8"))).toEqual({ version: 1, origin: log.origin, treeSize: "5", checkpoint: log.checkpoint(5) });

    fake.view = serve(log, 40);
    fake.requests.length = 0;
    const grown = await monitor();
    expect(grown.status).toBe(0);
    expect(grown.stdout).toMatch(/^kapsel\.example\.com\/log grew from size 5 to 40 \(signed \S+\): consistent, \d+-hash proof from the log's tiles\n$/);
    expect(fake.requests).toEqual(["/log/checkpoint", "/log/tile/0/000.p/40"]);
    expect(JSON.parse(readFileSync(state, "utf8")).treeSize).toBe("40");

    const again = await monitor();
    expect(again.status).toBe(0);
    expect(again.stdout).toMatch(/^kapsel\.example\.com\/log unchanged at size 40 /);
  });

  it("exits 1 and prints both checkpoints and the proof when the log serves a forged history under its key", async () => {
    fake.view = serve(log, 12);
    expect((await monitor()).status).toBe(0);
    const fork = forkOf(9, 20);
    fake.view = serve(fork, 20);
    const caught = await monitor();
    expect(caught.status).toBe(1);
    expect(caught.stderr).toMatch(/^LOG MISBEHAVED \[CONSISTENCY_FAILED\] the tree of size 20 does not extend the tree of size 12 accepted earlier \(/);
    const proof = fork.tree.consistency(12, 20).map(b64).join("\n");
    expect(caught.stdout).toBe(
      `MISBEHAVED [CONSISTENCY_FAILED] ${caught.stderr.slice("LOG MISBEHAVED [CONSISTENCY_FAILED] ".length).trimEnd()}\n` +
        `--- checkpoint accepted earlier (state file ${state})\n${log.checkpoint(12).trimEnd()}\n` +
        `--- checkpoint served now by ${fake.url}/log/checkpoint\n${fork.checkpoint(20).trimEnd()}\n` +
        `--- consistency proof built from the log's tiles (one hash a line)\n${proof}\n` +
        "--- end of evidence\n",
    );
    // The forged checkpoint was not accepted: the next run still compares against size 12.
    expect(JSON.parse(readFileSync(state, "utf8")).treeSize).toBe("12");
    expect((await monitor()).status).toBe(1);
  });

  it("exits 1 for another root at the same size (a fork) and for a smaller tree", async () => {
    fake.view = serve(log, 12);
    expect((await monitor()).status).toBe(0);
    fake.view = serve(forkOf(10, 12), 12);
    const fork = await monitor();
    expect(fork.status).toBe(1);
    expect(fork.stderr).toContain("[CONSISTENCY_FAILED] the log signed two different trees of size 12");
    expect(fork.stdout).toContain(`--- checkpoint served now by ${fake.url}/log/checkpoint\n${forkOf(10, 12).checkpoint(12).trimEnd()}\n`);
    fake.view = serve(log, 8);
    const shrunk = await monitor();
    expect(shrunk.status).toBe(1);
    expect(shrunk.stderr).toContain("[CONSISTENCY_FAILED] the log went back from size 12 to size 8");
    expect(shrunk.stdout).toContain(`--- checkpoint accepted earlier (state file ${state})\n${log.checkpoint(12).trimEnd()}\n`);
  });

  it("exits 1 for a checkpoint not signed by the log's key", async () => {
    const impostor = new TestKey(log.origin, seedOf("impostor"));
    fake.view = serve(log, 7, signCheckpoint(impostor, log.checkpointText(7), { time: null, extraLines: [] }));
    const r = await monitor();
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^LOG MISBEHAVED \[NO_TRUSTED_SIGNATURE\] checkpoint signature: /);
  });

  it("exits 3 when the log cannot be read, and learns nothing", async () => {
    fake.view = { ...serve(log, 5), checkpoint: undefined };
    const r = await monitor();
    expect(r.status).toBe(3);
    expect(r.stderr).toBe(`kapsel-verify monitor: cannot read the log: GET ${fake.url}/log/checkpoint answered 404\n`);
    const closed = await runCliAsync(NODE_24, ["monitor", "--url", "http://127.0.0.1:1", "--key", log.key.vkey, "--state", state, "--once"]);
    expect(closed.status).toBe(3);
    expect(() => readFileSync(state)).toThrow();
  });

  it("exits 3 when the tiles needed for the proof are missing", async () => {
    expect((await monitor()).status).toBe(0);
    fake.view = { ...serve(log, 20), size: 5 };
    const r = await monitor();
    expect(r.status).toBe(3);
    expect(r.stderr).toContain(`/log/tile/0/000.p/20 answered 404`);
  });

  it("exits 2 for a state file that is not its log's, or not a state file", async () => {
    writeFileSync(state, JSON.stringify({ version: 1, origin: "x", treeSize: "1", checkpoint: new TestLog("other.example/log").append(1).checkpoint(1) }));
    const foreign = await monitor();
    expect(foreign.status).toBe(2);
    expect(foreign.stderr).toContain("holds a checkpoint that does not verify with the given keys");
    writeFileSync(state, "{");
    expect((await monitor()).stderr).toContain("is not JSON");
  });

  it("requires the witness quorum of every checkpoint it accepts", async () => {
    const witnesses = ["--witness", w1.witnessVkey, "--witness", w2.witnessVkey];
    fake.view = serve(log, 6, cosign(cosign(log.checkpoint(6), w1, 1_800_000_001n), w2, 1_800_000_002n));
    const met = await monitor(...witnesses);
    expect(met.status).toBe(0);
    expect(met.stdout).toContain("  witnesses  quorum met, cosigned by w1.example at 2027-01-15T08:00:01Z, w2.example at 2027-01-15T08:00:02Z\n");
    fake.view = serve(log, 9, cosign(log.checkpoint(9), w1, 1_800_000_009n));
    const below = await monitor(...witnesses);
    expect(below.status).toBe(1);
    expect(below.stderr).toContain(`LOG MISBEHAVED [QUORUM_NOT_MET] checkpoint witness cosignatures: group witnesses needs 2 of 2 (w1.example, w2.example) and has 1; no valid cosignature from w2.example (${w2.witnessVkey})`);
    expect((await monitor(...witnesses, "--quorum", "1")).status).toBe(0);
  });

  it("runs under the system's Node 20", async () => {
    const r = await runCliAsync(NODE_20, ["monitor", "--url", fake.url, "--key", log.key.vkey, "--state", state, "--once"]);
    expect(r.status).toBe(0);
  });

  it.each([
    ["no --url", ["--state", "s.json", "--key", "K"], "monitor needs --url"],
    ["no --state", ["--url", "http://127.0.0.1:9", "--key", "K"], "monitor needs --state FILE"],
    ["--once with --metrics-listen", ["--url", "http://127.0.0.1:9", "--key", "K", "--state", "s", "--once", "--metrics-listen", "127.0.0.1:0"], "--metrics-listen is for continuous mode"],
    ["a zero interval", ["--url", "http://127.0.0.1:9", "--key", "K", "--state", "s", "--interval", "0"], "--interval 0: expected seconds between 0.1 and 86400"],
    ["--recent without --api-key", ["--url", "http://127.0.0.1:9", "--key", "K", "--state", "s", "--recent", "5"], "--recent needs --api-key"],
    ["a bad --metrics-listen", ["--url", "http://127.0.0.1:9", "--key", "K", "--state", "s", "--metrics-listen", "9100"], "--metrics-listen 9100: expected HOST:PORT"],
  ])("exits 2 for %s", async (_, args, message) => {
    const r = await runCliAsync(NODE_24, ["monitor", ...args.map((a) => (a === "K" ? log.key.vkey : a))]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(message);
  });
});

describe("kapsel-verify monitor --api-key: the tenant's own attempts", () => {
  const receipt = (i: number) => JSON.parse(log.leaves[i]!.toString("utf8")) as Record<string, any>;
  const outcomeName = (outcome: string) => `ATTEMPT_OUTCOME_${outcome.toUpperCase()}`;
  /** The management API's view of the event of leaves 2 and 3, and inclusion proofs from the log. */
  function api(options: { lie?: (attempts: any[]) => void; proofOf?: (i: number) => number; pending?: Set<number> } = {}) {
    const event = receipt(2).event_id as string;
    const attempts = [2, 3].map((i) => ({ id: receipt(i).attempt_id, attempt: receipt(i).attempt, outcome: outcomeName(receipt(i).outcome), statusCode: receipt(i).status_code ?? undefined }));
    options.lie?.(attempts);
    return (method: string, request: any, authorization: string | undefined) => {
      if (authorization !== "Bearer ksk_test") return { status: 401, body: { code: "unauthenticated", message: "missing or invalid API key" } };
      if (method === "ListEvents") return { status: 200, body: { events: [{ id: event }] } };
      if (method === "GetEvent") return { status: 200, body: { event: { id: event, attempts } } };
      const i = [2, 3].find((n) => receipt(n).attempt_id === request.attemptId)!;
      if (options.pending?.has(i)) {
        return { status: 400, body: { code: "failed_precondition", message: "not yet", details: [{ type: "google.rpc.ErrorInfo", value: "", debug: { reason: "E3001" } }] } };
      }
      const size = Number(request.treeSize);
      const proofIndex = options.proofOf?.(i) ?? i;
      return { status: 200, body: { leafIndex: String(i), treeSize: String(size), proof: log.tree.path(proofIndex, size).map(b64), receipt: b64(log.leaves[i]!) } };
    };
  }
  const withKey = (...extra: string[]) => monitor("--api-key", "ksk_test", ...extra);

  it("proves each recent attempt is a leaf of the verified tree, as the API describes it", async () => {
    fake.view = { ...serve(log, 10), rpc: api() };
    const r = await withKey();
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("  inclusion  2 recent attempt(s) of the tenant proven in the tree of size 10\n");
  });

  it("counts attempts not yet in the verified tree as pending", async () => {
    fake.view = { ...serve(log, 10), rpc: api({ pending: new Set([3]) }) };
    const r = await withKey("--recent", "5");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("  inclusion  1 recent attempt(s) of the tenant proven in the tree of size 10, 1 not in it yet\n");
  });

  it("exits 1 when the logged receipt says another outcome than the API", async () => {
    fake.view = { ...serve(log, 10), rpc: api({ lie: (attempts) => (attempts[0].outcome = "ATTEMPT_OUTCOME_DELIVERED") }) };
    const r = await withKey();
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      `LOG MISBEHAVED [INCLUSION_FAILED] attempt ${receipt(2).attempt_id} of event ${receipt(2).event_id}: the API says outcome ATTEMPT_OUTCOME_DELIVERED, the logged receipt says http_error\n`,
    );
    expect(r.stdout).toContain(`--- checkpoint accepted (size 10)\n${log.checkpoint(10).trimEnd()}\n`);
  });

  it("exits 1 when an attempt's receipt is not in the verified tree", async () => {
    fake.view = { ...serve(log, 10), rpc: api({ proofOf: (i) => (i === 3 ? 2 : i) }) };
    const r = await withKey();
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`attempt ${receipt(3).attempt_id} of event ${receipt(3).event_id}: the receipt is not leaf 3 of the verified tree of size 10`);
  });

  it("exits 2 when the server refuses the API key", async () => {
    fake.view = { ...serve(log, 10), rpc: api() };
    const r = await monitor("--api-key", "ksk_wrong");
    expect(r.status).toBe(2);
    expect(r.stderr).toBe("kapsel-verify: --api-key: the server refused it: ListEvents: unauthenticated missing or invalid API key\n");
  });
});

describe("kapsel-verify monitor, continuous", () => {
  it("follows the log on its interval, counts in Prometheus format, and stops cleanly on SIGTERM", async () => {
    const process = startCli(NODE_24, ["monitor", "--url", fake.url, "--key", log.key.vkey, "--state", state, "--interval", "0.2", "--metrics-listen", "127.0.0.1:0"]);
    try {
      const metricsUrl = (await process.waitFor(/^metrics at (http:\S+)$/m))[1]!;
      await process.waitFor(/following kapsel\.example\.com\/log from size 5/);
      fake.view = serve(log, 30);
      await process.waitFor(/grew from size 5 to 30/);
      const scrape = async () => (await fetch(metricsUrl)).text();
      let text = await scrape();
      for (let i = 0; i < 200 && !/kapsel_monitor_rounds_total\{result="ok"\} ([3-9]|\d\d)/.test(text); i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        text = await scrape();
      }
      expect(text).toContain("# TYPE kapsel_monitor_rounds_total counter\n");
      expect(text).toMatch(/kapsel_monitor_rounds_total\{result="ok"\} ([3-9]|\d\d)/);
      expect(text).toContain('kapsel_monitor_rounds_total{result="misbehaved"} 0\n');
      expect(text).toContain("kapsel_monitor_consistency_proofs_verified_total 1\n");
      expect(text).toContain("kapsel_monitor_tree_size 30\n");
      expect(text).toContain(`kapsel_monitor_checkpoint_timestamp_seconds ${1_795_000_030}\n`);
      expect((await fetch(metricsUrl.replace("/metrics", "/other"))).status).toBe(404);
      process.child.kill("SIGTERM");
      expect(await process.exited).toBe(0);
    } finally {
      process.child.kill("SIGKILL");
    }
  });

  it("exits 1 as soon as it sees a forged history", async () => {
    const process = startCli(NODE_24, ["monitor", "--url", fake.url, "--key", log.key.vkey, "--state", state, "--interval", "0.2"]);
    try {
      await process.waitFor(/following kapsel\.example\.com\/log from size 5/);
      fake.view = serve(forkOf(3, 25), 25);
      expect(await process.exited).toBe(1);
      expect(process.output().stdout).toContain("--- end of evidence\n");
    } finally {
      process.child.kill("SIGKILL");
    }
  });
});
