// The kapsel-verify command, run as a child process from its compiled output under both the
// project's Node 24 and the machine's system Node 20: exit codes 0/1/2, human and JSON output.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NODE_20, NODE_24, buildVerifier, runCli } from "./support/cli.ts";
import { TestLog, b64, receiptFor } from "./support/test-log.ts";

const log = new TestLog().append(10);
// TestLog signs checkpoints of size n at 1_795_000_000 + n seconds.
const SIGNED_TIME = new Date(1_795_000_010 * 1000).toISOString().replace(".000Z", "Z");
let dir = "";
const file = (name: string): string => join(dir, name);

beforeAll(async () => {
  await buildVerifier();
  dir = mkdtempSync(join(tmpdir(), "kapsel-verify-cli-"));
  const files: Record<string, string | Buffer> = {
    "attempt.tlog-proof": log.bundle(3, 10),
    "untimed.tlog-proof": log.bundle(3, 10, { time: null }),
    "tampered.tlog-proof": log.bundle(3, 10).replace("index 3", "index 2"),
    "garbage.tlog-proof": "not a proof\n",
    "payload.bin": log.payloads[3]!,
    "other-payload.bin": log.payloads[4]!,
    "log.vkey": `# Kapsel test log\n\n${log.key.vkey}\n`,
    "empty.vkey": "# nothing here\n",
    "checkpoint-4.txt": log.checkpoint(4),
    "checkpoint-10.txt": log.checkpoint(10),
    "consistency-4-10.txt": log.tree.consistency(4, 10).map((h) => `${b64(h)}\n`).join(""),
  };
  for (const [name, content] of Object.entries(files)) writeFileSync(file(name), content);
});

afterAll(() => {
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

describe.each([
  ["Node 24", NODE_24, "v24."],
  ["Node 20 (system)", NODE_20, "v20."],
])("kapsel-verify under %s", (_, node, version) => {
  const run = (...args: string[]) => runCli(node, args);
  const key = () => ["--key", log.key.vkey];

  it(`runs the expected Node version (${version})`, () => {
    expect(execFileSync(node, ["--version"], { encoding: "utf8" })).toMatch(new RegExp(`^${version.replace(".", "\\.")}`));
  });

  it("exits 0 and states what was proven for a valid bundle", () => {
    const r = run("proof", file("attempt.tlog-proof"), ...key(), "--payload", file("payload.bin"));
    const receipt = receiptFor(3, log.payloads[3]!);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe("");
    const lines = r.stdout.split("\n");
    expect(lines[0]).toBe("VERIFIED: this delivery attempt is recorded in the log kapsel.example.com/log");
    expect(lines).toContain(`  destination  ${receipt["url"]}`);
    expect(lines).toContain(`  attempt      #2 of event ${receipt["event_id"]} (attempt id ${receipt["attempt_id"]})`);
    expect(lines).toContain("  outcome      delivered, HTTP 200");
    expect(lines).toContain(`  started at   ${receipt["started_at"]} (took 43 ms)`);
    expect(lines).toContain(`  signed time  ${SIGNED_TIME} (signed by the log with the checkpoint)`);
    expect(lines).toContain("  leaf index   3");
    expect(lines).toContain("  tree size    10");
    expect(lines).toContain(`  signing key  ${log.key.vkey}`);
    expect(lines).toContain(`  payload      matches payload_sha256 ${receipt["payload_sha256"]}`);
  });

  it("prints one JSON object with --json", () => {
    const r = run("proof", file("attempt.tlog-proof"), ...key(), "--json");
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      ok: true,
      command: "proof",
      origin: "kapsel.example.com/log",
      index: "3",
      treeSize: "10",
      rootHash: b64(log.tree.mth(0, 10)),
      timestamp: "1795000010",
      time: SIGNED_TIME,
      signingKey: log.key.vkey,
      receipt: receiptFor(3, log.payloads[3]!),
      payloadVerified: false,
    });
  });

  it("exits 1 with the failed step on stderr for a tampered bundle", () => {
    const r = run("proof", file("tampered.tlog-proof"), ...key());
    expect(r.status).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^NOT VERIFIED \[INCLUSION_FAILED\] inclusion proof: the receipt and the proof lead to root /);
  });

  it("exits 1 with a JSON failure under --json", () => {
    const r = run("proof", file("tampered.tlog-proof"), ...key(), "--json");
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, code: "INCLUSION_FAILED" });
  });

  it("exits 1 for malformed content, naming the line", () => {
    const r = run("proof", file("garbage.tlog-proof"), ...key());
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('[PARSE_ERROR] bundle: line 1: expected "c2sp.org/tlog-proof@v1"');
  });

  it("exits 1 for a payload that was not the one delivered", () => {
    const r = run("proof", file("attempt.tlog-proof"), ...key(), "--payload", file("other-payload.bin"));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("[PAYLOAD_MISMATCH] payload: ");
  });

  it("exits 1 under --require-time when the checkpoint has no signed time", () => {
    expect(run("proof", file("untimed.tlog-proof"), ...key()).status).toBe(0);
    const r = run("proof", file("untimed.tlog-proof"), ...key(), "--require-time");
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("[TIMESTAMP_REQUIRED]");
  });

  it("reads trusted keys from a file, skipping blank and # lines", () => {
    expect(run("proof", file("attempt.tlog-proof"), "--key", file("log.vkey")).status).toBe(0);
  });

  it("exits 1 when only another log's key is trusted", () => {
    const r = run("proof", file("attempt.tlog-proof"), "--key", new TestLog("other.example/log").key.vkey);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("[ORIGIN_MISMATCH]");
  });

  it("verifies a checkpoint", () => {
    const ok = run("checkpoint", file("checkpoint-10.txt"), ...key(), "--json");
    expect(ok.status).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true, command: "checkpoint", treeSize: "10" });
    const human = run("checkpoint", file("checkpoint-10.txt"), ...key());
    expect(human.stdout).toContain("VERIFIED: checkpoint of the log kapsel.example.com/log, signed by a trusted key");
    expect(run("checkpoint", file("attempt.tlog-proof"), ...key()).status).toBe(1);
  });

  it("verifies consistency between two checkpoints, and refuses them swapped", () => {
    const args = [file("checkpoint-4.txt"), file("checkpoint-10.txt"), file("consistency-4-10.txt"), ...key()];
    const ok = run("consistency", ...args, "--json");
    expect(ok.status).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true, old: { treeSize: "4" }, new: { treeSize: "10" } });
    const swapped = run("consistency", file("checkpoint-10.txt"), file("checkpoint-4.txt"), file("consistency-4-10.txt"), ...key());
    expect(swapped.status).toBe(1);
    expect(swapped.stderr).toContain("[PROOF_SHAPE] consistency proof: old tree size 10 is larger than new size 4");
  });

  it.each([
    ["no arguments", []],
    ["an unknown command", ["prove", "x", "--key", "k"]],
    ["no --key", ["proof", "FILE"]],
    ["an unknown option", ["proof", "FILE", "--key", "K", "--verbose"]],
    ["--payload on checkpoint", ["checkpoint", "FILE", "--key", "K", "--payload", "x"]],
    ["--require-time on consistency", ["consistency", "A", "B", "C", "--key", "K", "--require-time"]],
    ["a missing file argument", ["consistency", "A", "B", "--key", "K"]],
    ["--key without a value", ["proof", "FILE", "--key"]],
  ])("exits 2 for a usage error: %s", (_, args) => {
    const r = run(...args.map((a) => (a === "FILE" ? file("attempt.tlog-proof") : a === "K" ? log.key.vkey : a)));
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("usage:");
  });

  it("exits 2 for an unreadable file", () => {
    const r = run("proof", file("missing.tlog-proof"), ...key());
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`cannot read proof bundle ${file("missing.tlog-proof")}`);
    const payload = run("proof", file("attempt.tlog-proof"), ...key(), "--payload", file("missing.bin"));
    expect(payload.status).toBe(2);
  });

  it("exits 2 for an invalid key, and says so in JSON under --json", () => {
    const bad = log.key.vkey.replace(/\+[0-9a-f]{8}\+/, "+deadbeef+");
    const r = run("proof", file("attempt.tlog-proof"), "--key", bad, "--json");
    expect(r.status).toBe(2);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, code: "BAD_KEY" });
    expect(r.stderr).toContain("has key ID deadbeef but its key hashes to");
    expect(run("proof", file("attempt.tlog-proof"), "--key", file("empty.vkey")).status).toBe(2);
  });

  it("prints usage and exits 0 for --help", () => {
    const r = run("--help");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("kapsel-verify proof FILE --key VKEY");
  });
});
