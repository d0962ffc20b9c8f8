// Consistency between two signed checkpoints: the append-only property an auditor checks over
// time, including catching a log that shows different histories to different people.
import { describe, expect, it } from "vitest";
import { verifyConsistency } from "../src/index.ts";
import { ReferenceTree } from "./support/reference-merkle.ts";
import { TestLog, b64, seedOf } from "./support/test-log.ts";

const log = new TestLog().append(21);
const keys = [log.key.vkey];
const proofText = (m: number, n: number): string => log.tree.consistency(m, n).map((h) => `${b64(h)}\n`).join("");

describe("verifyConsistency", () => {
  it("verifies every pair of checkpoints of a growing log, from proof text and from hashes", () => {
    for (let n = 1; n <= 21; n++) {
      for (let m = 1; m <= n; m++) {
        const result = verifyConsistency(log.checkpoint(m), log.checkpoint(n), proofText(m, n), keys);
        expect(result).toMatchObject({ ok: true, old: { treeSize: BigInt(m) }, new: { treeSize: BigInt(n) } });
        expect(verifyConsistency(log.checkpoint(m), log.checkpoint(n), log.tree.consistency(m, n), keys).ok).toBe(true);
      }
    }
  });

  it("catches a split view: a second history signed with the same key", () => {
    // The same log key signs a tree in which receipt 3 was rewritten after the fact.
    const fork = new TestLog(log.origin, seedOf(`test log ${log.origin}`)).append(21);
    fork.leaves[3] = Buffer.from(`${fork.leaves[3]!.toString()} `);
    fork.tree = new ReferenceTree(fork.leaves);
    expect(fork.key.vkey).toBe(log.key.vkey);
    const result = verifyConsistency(log.checkpoint(8), fork.checkpoint(13), fork.tree.consistency(8, 13), keys);
    expect(result).toMatchObject({ ok: false, code: "CONSISTENCY_FAILED" });
  });

  it("fails with CONSISTENCY_FAILED when a proof hash is changed", () => {
    const lines = proofText(6, 19).split("\n");
    lines[1] = b64(Buffer.alloc(32, 1));
    const result = verifyConsistency(log.checkpoint(6), log.checkpoint(19), lines.join("\n"), keys);
    expect(result).toMatchObject({ ok: false, code: "CONSISTENCY_FAILED" });
    if (!result.ok) expect(result.message).toMatch(/^consistency proof: the proof leads to (old|new) root /);
  });

  it.each([
    ["the checkpoints swapped", () => [log.checkpoint(19), log.checkpoint(6), proofText(6, 19)]],
    ["a hash missing", () => [log.checkpoint(6), log.checkpoint(19), proofText(6, 19).split("\n").slice(1).join("\n")]],
    ["a non-empty proof between equal sizes", () => [log.checkpoint(6), log.checkpoint(6), proofText(6, 19)]],
    ["an empty old tree", () => [log.checkpoint(0), log.checkpoint(6), ""]],
  ])("fails with PROOF_SHAPE for %s", (_, make) => {
    const [older, newer, proof] = make() as [string, string, string];
    expect(verifyConsistency(older, newer, proof, keys)).toMatchObject({ ok: false, code: "PROOF_SHAPE" });
  });

  it("verifies equal checkpoints with an empty proof", () => {
    expect(verifyConsistency(log.checkpoint(6), log.checkpoint(6), "", keys)).toMatchObject({ ok: true });
  });

  it("names which checkpoint failed", () => {
    const tampered = log.checkpoint(19).replace("\n19\n", "\n20\n");
    const result = verifyConsistency(log.checkpoint(6), tampered, proofText(6, 19), keys);
    expect(result).toMatchObject({ ok: false, code: "BAD_SIGNATURE" });
    if (!result.ok) expect(result.message).toMatch(/^new checkpoint signature: /);
  });

  it("refuses checkpoints of two different logs", () => {
    const other = new TestLog("other.example.org/log").append(19);
    const result = verifyConsistency(log.checkpoint(6), other.checkpoint(19), proofText(6, 19), [
      log.key.vkey,
      other.key.vkey,
    ]);
    expect(result).toMatchObject({ ok: false, code: "ORIGIN_MISMATCH" });
  });

  it("rejects a malformed proof file as PARSE_ERROR naming the line", () => {
    const hashes = log.tree.consistency(6, 19).length;
    const result = verifyConsistency(log.checkpoint(6), log.checkpoint(19), `${proofText(6, 19)}\n`, keys);
    expect(result).toMatchObject({ ok: false, code: "PARSE_ERROR" });
    if (!result.ok) expect(result.message).toBe(`consistency proof: line ${hashes + 1}: proof hash is not base64 of 32 bytes`);
  });
});
