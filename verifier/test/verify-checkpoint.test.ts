// Checkpoints on their own: what `kapsel-verify checkpoint` and monitors rely on.
import { describe, expect, it } from "vitest";
import { parseVerifierKey, verifyCheckpoint } from "../src/index.ts";
import { TestKey, TestLog, seedOf, signCheckpoint } from "./support/test-log.ts";

const log = new TestLog().append(5);

describe("verifyCheckpoint", () => {
  it("returns the signed size, root, time and key", () => {
    const result = verifyCheckpoint(log.checkpoint(), [log.key.vkey]);
    expect(result).toMatchObject({ ok: true, origin: log.origin, treeSize: 5n, timestamp: 1_795_000_005n });
    if (result.ok) {
      expect(Buffer.from(result.rootHash)).toEqual(log.tree.mth(0, 5));
      expect(result.signedBy.vkey).toBe(log.key.vkey);
    }
  });

  it("accepts parsed keys as well as vkey strings", () => {
    expect(verifyCheckpoint(log.checkpoint(), [parseVerifierKey(log.key.vkey)]).ok).toBe(true);
  });

  it("accepts the empty tree", () => {
    expect(verifyCheckpoint(log.checkpoint(0), [log.key.vkey])).toMatchObject({ ok: true, treeSize: 0n });
  });

  it("accepts a checkpoint of a log whose key is one of several trusted keys", () => {
    const other = new TestLog("other.example.org/log").append(1);
    expect(verifyCheckpoint(log.checkpoint(), [other.key.vkey, log.key.vkey])).toMatchObject({ ok: true });
  });

  it("requires the signed time when asked", () => {
    const untimed = log.checkpoint(5, { time: null });
    expect(verifyCheckpoint(untimed, [log.key.vkey], { requireTimestamp: true })).toMatchObject({
      code: "TIMESTAMP_REQUIRED",
      message: "checkpoint signed time: the checkpoint has no signed time (0x04 line) from its signing key",
    });
  });

  it("does not take a time signed by another trusted key as the log's", () => {
    const next = new TestKey(log.origin, seedOf("rotation"));
    const text = log.checkpointText();
    const checkpoint = signCheckpoint(log.key, text, { time: null, extraLines: [next.timeLine(text, 77n)] });
    expect(verifyCheckpoint(checkpoint, [log.key.vkey, next.vkey])).toMatchObject({ ok: true, timestamp: null });
  });

  it("refuses a checkpoint whose only valid signature is from a trusted key of another name", () => {
    const other = new TestKey("other.example.org/log", seedOf("other"));
    const checkpoint = signCheckpoint(other, log.checkpointText(), { time: null, extraLines: [] });
    expect(verifyCheckpoint(checkpoint, [log.key.vkey, other.vkey])).toMatchObject({ code: "NO_TRUSTED_SIGNATURE" });
  });

  it("refuses a checkpoint whose origin is not a trusted key's name", () => {
    expect(verifyCheckpoint(log.checkpoint(), [new TestLog("x.example/log").key.vkey])).toMatchObject({
      code: "ORIGIN_MISMATCH",
    });
  });

  it.each([
    ["an extension line", (t: string) => t.replace("\n\n", "\nextension\n\n")],
    ["a missing root line", (t: string) => t.split("\n").filter((_, i) => i !== 2).join("\n")],
    ["an origin with a space", (t: string) => t.replace("kapsel.example.com/log\n", "kapsel example/log\n")],
    ["a size with a plus sign", (t: string) => t.replace("\n5\n", "\n+5\n")],
    ["a size beyond u64", (t: string) => t.replace("\n5\n", "\n18446744073709551616\n")],
  ])("rejects a checkpoint with %s as PARSE_ERROR", (_, edit) => {
    expect(verifyCheckpoint(edit(log.checkpoint()), [log.key.vkey])).toMatchObject({ code: "PARSE_ERROR" });
  });
});
