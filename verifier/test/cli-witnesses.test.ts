// kapsel-verify with witnesses: --witness/--quorum and --policy on proof, checkpoint and
// consistency, run as a child process from the compiled CLI.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NODE_20, NODE_24, buildVerifier, runCli } from "./support/cli.ts";
import { TestKey, TestLog, b64, cosign, seedOf } from "./support/test-log.ts";

const log = new TestLog().append(10);
const w1 = new TestKey("w1.example", seedOf("cli witness 1"));
const w2 = new TestKey("w2.example", seedOf("cli witness 2"));
const T1 = 1_800_000_001n;
const T2 = 1_800_000_002n;
let dir = "";
const file = (name: string): string => join(dir, name);
const run = (...args: string[]) => runCli(NODE_24, args);

beforeAll(async () => {
  await buildVerifier();
  dir = mkdtempSync(join(tmpdir(), "kapsel-verify-witness-cli-"));
  const text = log.checkpointText(10);
  const files: Record<string, string> = {
    "both.txt": cosign(cosign(log.checkpoint(10), w1, T1), w2, T2),
    "w1-only.txt": cosign(log.checkpoint(10), w1, T1),
    "bad-w2.txt": `${cosign(log.checkpoint(10), w1, T1)}${w2.timeLine(log.checkpointText(9), T2)}\n`,
    "old-4.txt": log.checkpoint(4),
    "consistency-4-10.txt": log.tree.consistency(4, 10).map((h) => `${b64(h)}\n`).join(""),
    "attempt.tlog-proof": log.bundle(3, 10, { extraLines: [w1.timeLine(text, T1), w2.timeLine(text, T2)] }),
    "witnesses.vkeys": `# our two witnesses\n${w1.witnessVkey}\n${w2.witnessVkey}\n`,
    "policy.txt": `log ${log.key.vkey}\nwitness one ${w1.witnessVkey}\nwitness two ${w2.witnessVkey}\ngroup any-of-us any one two\nquorum any-of-us\n`,
    "broken-policy.txt": `witness one ${w1.witnessVkey}\nquorum two\n`,
  };
  for (const [name, content] of Object.entries(files)) writeFileSync(file(name), content);
});

afterAll(() => {
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

const key = () => ["--key", log.key.vkey];
const both = () => ["--witness", w1.witnessVkey, "--witness", w2.witnessVkey];

describe("kapsel-verify with witnesses", () => {
  it("verifies a checkpoint cosigned by every witness and says who cosigned when", () => {
    const r = run("checkpoint", file("both.txt"), ...key(), ...both());
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("  witnesses    quorum met, cosigned by w1.example at 2027-01-15T08:00:01Z, w2.example at 2027-01-15T08:00:02Z\n");
  });

  it("exits 1 below the quorum, naming the witness whose cosignature is missing", () => {
    const r = run("checkpoint", file("w1-only.txt"), ...key(), "--witness", file("witnesses.vkeys"));
    expect(r.status).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(
      "NOT VERIFIED [QUORUM_NOT_MET] checkpoint witness cosignatures: group witnesses needs 2 of 2 (w1.example, w2.example) and has 1; " +
        `no valid cosignature from w2.example (${w2.witnessVkey})\n`,
    );
  });

  it("accepts k of n with --quorum", () => {
    expect(run("checkpoint", file("w1-only.txt"), ...key(), ...both(), "--quorum", "1").status).toBe(0);
  });

  it("exits 1 when a line claims a trusted witness and does not verify, quorum or not", () => {
    const r = run("checkpoint", file("bad-w2.txt"), ...key(), ...both(), "--quorum", "1");
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^NOT VERIFIED \[BAD_COSIGNATURE\] checkpoint witness cosignatures: line 8 claims witness w2\.example /);
  });

  it("takes a tlog-policy file whose log line replaces --key", () => {
    const r = run("checkpoint", file("w1-only.txt"), "--policy", file("policy.txt"), "--json");
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      ok: true,
      treeSize: "10",
      cosignatures: [{ witness: "one", vkey: w1.witnessVkey, timestamp: String(T1), time: "2027-01-15T08:00:01Z" }],
    });
  });

  it("verifies a proof bundle and a consistency proof under the quorum", () => {
    const proof = run("proof", file("attempt.tlog-proof"), ...key(), ...both(), "--json");
    expect(proof.status).toBe(0);
    expect(JSON.parse(proof.stdout).cosignatures.map((c: { witness: string }) => c.witness)).toEqual(["w1.example", "w2.example"]);
    const consistency = run("consistency", file("old-4.txt"), file("both.txt"), file("consistency-4-10.txt"), ...key(), ...both());
    expect(consistency.status).toBe(0);
    expect(consistency.stdout).toContain("  witnesses    quorum met, cosigned by w1.example");
    const below = run("consistency", file("old-4.txt"), file("w1-only.txt"), file("consistency-4-10.txt"), ...key(), ...both());
    expect(below.status).toBe(1);
    expect(below.stderr).toMatch(/^NOT VERIFIED \[QUORUM_NOT_MET\] new checkpoint witness cosignatures: /);
  });

  it.each([
    ["--policy with --witness", () => ["--policy", file("policy.txt"), "--witness", w1.witnessVkey], "USAGE", "--policy already names the witnesses"],
    ["--quorum without --witness", () => [...key(), "--quorum", "1"], "USAGE", "--quorum needs --witness"],
    ["a quorum above the witnesses", () => [...key(), ...both(), "--quorum", "3"], "BAD_POLICY", "--quorum: the quorum must be a whole number from 1 to 2"],
    ["a quorum that is not a number", () => [...key(), ...both(), "--quorum", "two"], "USAGE", "--quorum two: expected a whole number"],
    ["a log key as --witness", () => [...key(), "--witness", log.key.vkey], "BAD_KEY", "a log key (type 0x01); witness keys are type 0x04"],
    ["a malformed policy", () => ["--policy", file("broken-policy.txt")], "BAD_POLICY", `broken-policy.txt: policy line 2: "two" is not defined above this line`],
    ["a missing policy file", () => ["--policy", file("nope.txt")], "UNREADABLE_FILE", "cannot read policy file"],
    ["no key and a policy without log lines", () => ["--witness", w1.witnessVkey], "USAGE", "at least one --key is required"],
  ])("exits 2 for %s", (_, args, code, message) => {
    const r = run("checkpoint", file("both.txt"), ...args(), "--json");
    expect(r.status).toBe(2);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, code });
    expect(r.stderr).toContain(message);
  });

  it("runs under the system's Node 20 too", () => {
    const r = runCli(NODE_20, ["checkpoint", file("both.txt"), ...key(), ...both()]);
    expect(r.status).toBe(0);
  });
});
