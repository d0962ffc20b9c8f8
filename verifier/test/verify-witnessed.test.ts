// Witness cosignatures on checkpoints, bundles and consistency: a checkpoint below the policy's
// quorum fails and says whose cosignature is missing; a line that claims a trusted witness and
// does not verify fails the whole check.
import { describe, expect, it } from "vitest";
import { parseWitnessPolicy, verifyCheckpoint, verifyConsistency, verifyProofBundle } from "../src/index.ts";
import { TestKey, TestLog, b64, cosign, seedOf, signCheckpoint } from "./support/test-log.ts";

const log = new TestLog().append(12);
const w1 = new TestKey("witness-one.example", seedOf("witness one"));
const w2 = new TestKey("witness-two.example", seedOf("witness two"));
const w3 = new TestKey("witness-three.example", seedOf("witness three"));
const stranger = new TestKey("stranger.example", seedOf("a witness nobody trusts"));
const keys = [log.key.vkey];

/** The log's checkpoint of `size`, cosigned by `witnesses` at 1_800_000_000 + i seconds. */
function cosigned(size: number, ...witnesses: TestKey[]): string {
  return witnesses.reduce((note, witness, i) => cosign(note, witness, 1_800_000_000n + BigInt(i)), log.checkpoint(size));
}

describe("verifyCheckpoint with witnesses", () => {
  it("reports every trusted witness's verified cosignature with its time", () => {
    const result = verifyCheckpoint(cosigned(12, w1, stranger, w2), keys, { witnesses: [w1.witnessVkey, w2.witnessVkey] });
    expect(result).toMatchObject({ ok: true, treeSize: 12n, timestamp: 1_795_000_012n });
    if (!result.ok) return;
    expect(result.cosignatures.map((c) => [c.witness, c.key.vkey, c.timestamp])).toEqual([
      ["witness-one.example", w1.witnessVkey, 1_800_000_000n],
      ["witness-two.example", w2.witnessVkey, 1_800_000_002n],
    ]);
  });

  it("fails below the quorum, naming the witness whose cosignature is missing", () => {
    const result = verifyCheckpoint(cosigned(12, w1, stranger), keys, { witnesses: [w1.witnessVkey, w2.witnessVkey] });
    expect(result).toEqual({
      ok: false,
      code: "QUORUM_NOT_MET",
      message:
        "checkpoint witness cosignatures: group witnesses needs 2 of 2 (witness-one.example, witness-two.example) and has 1; " +
        `no valid cosignature from witness-two.example (${w2.witnessVkey})`,
    });
  });

  it("meets a k-of-n quorum with k cosignatures", () => {
    const options = { witnesses: [w1.witnessVkey, w2.witnessVkey, w3.witnessVkey], quorum: 2 };
    expect(verifyCheckpoint(cosigned(12, w3, w1), keys, options).ok).toBe(true);
    expect(verifyCheckpoint(cosigned(12, w3), keys, options)).toMatchObject({ code: "QUORUM_NOT_MET" });
  });

  it("does not count an unknown witness, nor the log's own signed time, towards the quorum", () => {
    const result = verifyCheckpoint(cosigned(12, stranger), keys, { witnesses: [w1.witnessVkey], quorum: 1 });
    expect(result).toMatchObject({ code: "QUORUM_NOT_MET" });
  });

  it("fails the whole check when a line claims a trusted witness and does not verify, even with the quorum met", () => {
    // w2's cosignature of the size-11 checkpoint, moved onto the size-12 checkpoint.
    const other = cosigned(11, w2);
    const moved = `${cosigned(12, w1)}${other.trimEnd().split("\n").at(-1)}\n`;
    const result = verifyCheckpoint(moved, keys, { witnesses: [w1.witnessVkey, w2.witnessVkey], quorum: 1 });
    expect(result).toEqual({
      ok: false,
      code: "BAD_COSIGNATURE",
      message: `checkpoint witness cosignatures: line 8 claims witness witness-two.example (${w2.witnessVkey}) but does not verify`,
    });
  });

  it("refuses a cosignature whose time is above 2^63-1", () => {
    const text = log.checkpointText(12);
    const late = signCheckpoint(log.key, text, { time: 1n, extraLines: [w1.timeLine(text, 1n << 63n)] });
    expect(verifyCheckpoint(late, keys, { witnesses: [w1.witnessVkey] })).toMatchObject({ code: "BAD_COSIGNATURE" });
  });

  it("ignores cosignatures entirely when no witness is given", () => {
    const result = verifyCheckpoint(cosigned(12, w1), keys);
    expect(result).toMatchObject({ ok: true, cosignatures: [] });
  });

  it("takes a tlog-policy file, whose log lines add the trusted log key", () => {
    const policy = `log ${log.key.vkey}\nwitness a ${w1.witnessVkey}\nwitness b ${w2.witnessVkey}\ngroup both all a b\nquorum both\n`;
    expect(verifyCheckpoint(cosigned(12, w1, w2), [], { policy })).toMatchObject({ ok: true, signedBy: { vkey: log.key.vkey } });
    expect(verifyCheckpoint(cosigned(12, w1, w2), [], { policy: parseWitnessPolicy(policy) }).ok).toBe(true);
    expect(verifyCheckpoint(cosigned(12, w2), [], { policy })).toEqual({
      ok: false,
      code: "QUORUM_NOT_MET",
      message: `checkpoint witness cosignatures: group both needs 2 of 2 (a, b) and has 1; no valid cosignature from a (${w1.witnessVkey})`,
    });
  });

  it.each([
    ["a policy and witnesses together", { policy: "quorum none\n", witnesses: [w1.witnessVkey] }, "witness policy: give either a policy or witnesses with a quorum, not both"],
    ["a quorum without witnesses", { quorum: 1 }, "witness policy: a quorum needs witness keys"],
    ["a malformed policy", { policy: "quorum w\n" }, 'witness policy: policy line 1: "w" is not defined above this line'],
    ["a quorum above the witnesses", { witnesses: [w1.witnessVkey], quorum: 2 }, "witness policy: the quorum must be a whole number from 1 to 1 (the witnesses given), not 2"],
    ["the log's key as a witness", { witnesses: [log.key.witnessVkey] }, "checkpoint witnesses: witness kapsel.example.com/log"],
  ])("fails with BAD_POLICY for %s", (_, options, message) => {
    const result = verifyCheckpoint(cosigned(12, w1), keys, options);
    expect(result).toMatchObject({ ok: false, code: "BAD_POLICY" });
    if (!result.ok) expect(result.message).toContain(message);
  });

  it("fails with BAD_KEY for a log vkey given as a witness", () => {
    expect(verifyCheckpoint(cosigned(12, w1), keys, { witnesses: [w1.vkey] })).toMatchObject({
      code: "BAD_KEY",
      message: expect.stringContaining("a log key (type 0x01); witness keys are type 0x04"),
    });
  });

  it("reports a bad log signature before a bad cosignature", () => {
    const forged = cosigned(12, w1).replace(b64(log.tree.mth(0, 12)), b64(log.tree.mth(0, 11)));
    expect(verifyCheckpoint(forged, keys, { witnesses: [w1.witnessVkey] })).toMatchObject({ code: "BAD_SIGNATURE" });
  });
});

describe("verifyProofBundle with witnesses", () => {
  const cosignedBundle = (...witnesses: TestKey[]) => {
    const text = log.checkpointText(12);
    return log.bundle(5, 12, { extraLines: witnesses.map((w, i) => w.timeLine(text, 1_800_000_000n + BigInt(i))) });
  };

  it("verifies a bundle whose checkpoint meets the quorum and reports the cosignatures", () => {
    const result = verifyProofBundle(cosignedBundle(w1, w2), { trustedKeys: keys, witnesses: [w1.witnessVkey, w2.witnessVkey] });
    expect(result).toMatchObject({ ok: true, index: 5n, treeSize: 12n });
    if (result.ok) expect(result.cosignatures.map((c) => c.witness)).toEqual(["witness-one.example", "witness-two.example"]);
  });

  it("fails a bundle below the quorum with the reason", () => {
    const result = verifyProofBundle(cosignedBundle(w2), { trustedKeys: keys, witnesses: [w1.witnessVkey, w2.witnessVkey], quorum: 2 });
    expect(result).toMatchObject({ ok: false, code: "QUORUM_NOT_MET" });
    if (!result.ok) expect(result.message).toContain(`checkpoint witness cosignatures: group witnesses needs 2 of 2`);
    if (!result.ok) expect(result.message).toContain(`no valid cosignature from witness-one.example (${w1.witnessVkey})`);
  });

  it("names the bundle line of a cosignature that does not verify", () => {
    const bundle = cosignedBundle(w1).replace(/(— witness-one\.example \S{20})(\S)/, (_, head: string, c: string) => `${head}${c === "A" ? "B" : "A"}`);
    const result = verifyProofBundle(bundle, { trustedKeys: keys, witnesses: [w1.witnessVkey] });
    expect(result).toMatchObject({ ok: false, code: "BAD_COSIGNATURE" });
  });
});

describe("verifyConsistency with witnesses", () => {
  const proof = log.tree.consistency(8, 12);
  const options = { witnesses: [w1.witnessVkey, w2.witnessVkey] };

  it("requires the quorum of the new checkpoint only: the proof links the old tree into the witnessed one", () => {
    const result = verifyConsistency(log.checkpoint(8), cosigned(12, w1, w2), proof, keys, options);
    expect(result).toMatchObject({ ok: true, old: { treeSize: 8n, cosignatures: [] }, new: { treeSize: 12n } });
  });

  it("fails when the new checkpoint lacks the quorum", () => {
    const result = verifyConsistency(cosigned(8, w1, w2), cosigned(12, w1), proof, keys, options);
    expect(result).toMatchObject({ ok: false, code: "QUORUM_NOT_MET" });
    if (!result.ok) expect(result.message).toMatch(/^new checkpoint witness cosignatures: /);
  });

  it("still fails on a bad cosignature line of the old checkpoint", () => {
    const bad = `${log.checkpoint(8)}${w2.timeLine(log.checkpointText(7), 1n)}\n`;
    const result = verifyConsistency(bad, cosigned(12, w1, w2), proof, keys, options);
    expect(result).toMatchObject({ ok: false, code: "BAD_COSIGNATURE" });
    if (!result.ok) expect(result.message).toMatch(/^old checkpoint witness cosignatures: /);
  });
});
