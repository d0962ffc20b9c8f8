// End-to-end verification of tlog-proof bundles made by an independent stand-in for the log
// (node:crypto signatures, the naive reference tree): honest bundles verify, and each way of
// tampering with one is refused with the code that names it.
import { createHash, randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { verifyProofBundle, type FailureCode } from "../src/index.ts";
import { TestKey, TestLog, b64, bundleText, canonical, receiptFor, seedOf, signCheckpoint } from "./support/test-log.ts";

const log = new TestLog().append(13);
const trustedKeys = [log.key.vkey];
const INDEX = 6;
const good = log.bundle(INDEX);

/** Replaces line `n` (1-based) of a text. */
function replaceLine(text: string, n: number, replace: (line: string) => string): string {
  const lines = text.split("\n");
  lines[n - 1] = replace(lines[n - 1]!);
  return lines.join("\n");
}

/** Rewrites the base64 payload of a signature line. */
function editSignatureLine(line: string, edit: (payload: Buffer) => void): string {
  const [dash, name, encoded] = line.split(" ") as [string, string, string];
  const payload = Buffer.from(encoded, "base64");
  edit(payload);
  return `${dash} ${name} ${payload.toString("base64")}`;
}

const lineOf = (text: string, prefix: string): number => text.split("\n").findIndex((l) => l.startsWith(prefix)) + 1;
// In a bundle of leaf 6 of 13 the proof has 4 hashes: lines 4–7, empty line 8, checkpoint from 9.
const CHECKPOINT_LINE = 9;
const LOG_SIGNATURE_LINE = CHECKPOINT_LINE + 4;
const TIME_LINE = CHECKPOINT_LINE + 5;

describe("a valid proof bundle", () => {
  it("verifies and reports what it proves", () => {
    const result = verifyProofBundle(good, { trustedKeys });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.receipt).toEqual(receiptFor(INDEX, log.payloads[INDEX]!));
    expect(Buffer.from(result.receiptBytes)).toEqual(log.leaves[INDEX]);
    expect(result.index).toBe(6n);
    expect(result.treeSize).toBe(13n);
    expect(Buffer.from(result.rootHash)).toEqual(log.tree.mth(0, 13));
    expect(result.timestamp).toBe(1_795_000_013n);
    expect(result.origin).toBe("kapsel.example.com/log");
    expect(result.signedBy.vkey).toBe(log.key.vkey);
    expect(result.payloadVerified).toBe(false);
  });

  it("verifies for every leaf under every checkpoint of the log", () => {
    for (let size = 1; size <= 13; size++) {
      for (let index = 0; index < size; index++) {
        const result = verifyProofBundle(log.bundle(index, size), { trustedKeys });
        expect(result).toMatchObject({ ok: true, index: BigInt(index), treeSize: BigInt(size) });
      }
    }
  });

  it("verifies the delivered payload against payload_sha256", () => {
    const result = verifyProofBundle(good, { trustedKeys, payload: log.payloads[INDEX]! });
    expect(result).toMatchObject({ ok: true, payloadVerified: true });
  });

  it("verifies without a signed time unless the policy requires one", () => {
    const untimed = log.bundle(INDEX, 13, { time: null });
    expect(verifyProofBundle(untimed, { trustedKeys })).toMatchObject({ ok: true, timestamp: null });
    expect(verifyProofBundle(untimed, { trustedKeys, requireTimestamp: true })).toMatchObject({
      ok: false,
      code: "TIMESTAMP_REQUIRED",
    });
    expect(verifyProofBundle(good, { trustedKeys, requireTimestamp: true })).toMatchObject({ ok: true });
  });

  it("ignores cosignatures from witnesses it does not know", () => {
    const witness = new TestKey("witness.example/w1", seedOf("witness"));
    const text = log.checkpointText();
    const bundle = log.bundle(INDEX, 13, { extraLines: [witness.signatureLine(text), witness.timeLine(text, 5n)] });
    expect(verifyProofBundle(bundle, { trustedKeys })).toMatchObject({ ok: true });
  });

  it("accepts a checkpoint signed by a rotated-in key when both keys are trusted", () => {
    const next = new TestKey(log.origin, seedOf("next log key"));
    const checkpoint = signCheckpoint(next, log.checkpointText(), { time: 1_800_000_000n, extraLines: [] });
    const bundle = bundleText(log.leaves[INDEX]!, INDEX, log.tree.path(INDEX, 13), checkpoint);
    const result = verifyProofBundle(bundle, { trustedKeys: [log.key.vkey, next.vkey] });
    expect(result).toMatchObject({ ok: true, timestamp: 1_800_000_000n });
    if (result.ok) expect(result.signedBy.vkey).toBe(next.vkey);
    expect(verifyProofBundle(bundle, { trustedKeys })).toMatchObject({ code: "NO_TRUSTED_SIGNATURE" });
  });
});

describe("a tampered proof bundle", () => {
  const otherLog = new TestLog("other.example.org/log").append(13);
  const impostor = new TestKey(log.origin, seedOf("impostor key with the log's name"));
  const receipt = receiptFor(INDEX, log.payloads[INDEX]!);

  const cases: readonly [string, () => string, FailureCode, string][] = [
    [
      "receipt edited (still canonical)",
      () => replaceLine(good, 2, () => `extra ${b64(Buffer.from(canonical({ ...receipt, status_code: 200, outcome: "delivered" })))}`),
      "INCLUSION_FAILED",
      "inclusion proof: the receipt and the proof lead to root",
    ],
    [
      "receipt not canonical",
      () => replaceLine(good, 2, () => `extra ${b64(Buffer.from(JSON.stringify(receipt)))}`),
      "RECEIPT_NOT_CANONICAL",
      "receipt: ",
    ],
    [
      "receipt violating the schema",
      () => replaceLine(good, 2, () => `extra ${b64(Buffer.from(canonical({ ...receipt, attempt: 0 })))}`),
      "RECEIPT_SCHEMA",
      'receipt: receipt member "attempt"',
    ],
    [
      "checkpoint of another log",
      () => bundleText(otherLog.leaves[INDEX]!, INDEX, otherLog.tree.path(INDEX, 13), otherLog.checkpoint()),
      "ORIGIN_MISMATCH",
      'checkpoint origin: checkpoint origin "other.example.org/log"',
    ],
    [
      "checkpoint signed by an unknown key only",
      () =>
        bundleText(
          log.leaves[INDEX]!,
          INDEX,
          log.tree.path(INDEX, 13),
          signCheckpoint(impostor, log.checkpointText(), { time: 1n, extraLines: [] }),
        ),
      "NO_TRUSTED_SIGNATURE",
      "checkpoint signature: no signature line",
    ],
    [
      "a line with the trusted key ID that does not verify",
      () => replaceLine(good, LOG_SIGNATURE_LINE, (l) => editSignatureLine(l, (p) => void (p[40]! ^= 1))),
      "BAD_SIGNATURE",
      `checkpoint signature: line ${LOG_SIGNATURE_LINE} from trusted key kapsel.example.com/log`,
    ],
    [
      "checkpoint size edited after signing",
      () => replaceLine(good, CHECKPOINT_LINE + 1, () => "14"),
      "BAD_SIGNATURE",
      "checkpoint signature: ",
    ],
    [
      "checkpoint root edited after signing",
      () => replaceLine(good, CHECKPOINT_LINE + 2, () => b64(log.tree.mth(0, 12))),
      "BAD_SIGNATURE",
      "checkpoint signature: ",
    ],
    [
      "signed time changed",
      () => replaceLine(good, TIME_LINE, (l) => editSignatureLine(l, (p) => p.writeBigUInt64BE(1_900_000_000n, 4))),
      "BAD_TIMESTAMP",
      `checkpoint signed time: line ${TIME_LINE}`,
    ],
    [
      "signed time line truncated",
      () => replaceLine(good, TIME_LINE, (l) => editSignatureLine(l, (p) => p.fill(0, 70))),
      "BAD_TIMESTAMP",
      "checkpoint signed time: ",
    ],
    [
      "time line signed over a time above 2^63-1",
      () => {
        const checkpoint = signCheckpoint(log.key, log.checkpointText(), { time: 1n << 63n, extraLines: [] });
        return bundleText(log.leaves[INDEX]!, INDEX, log.tree.path(INDEX, 13), checkpoint);
      },
      "BAD_TIMESTAMP",
      "checkpoint signed time: ",
    ],
    [
      "proof hash with a flipped bit",
      () => replaceLine(good, 5, (l) => b64(Buffer.from(l, "base64").map((b, i) => (i === 0 ? b ^ 0x80 : b)))),
      "INCLUSION_FAILED",
      "inclusion proof: ",
    ],
    [
      "proof hashes swapped",
      () => {
        const lines = good.split("\n");
        [lines[3], lines[4]] = [lines[4]!, lines[3]!];
        return lines.join("\n");
      },
      "INCLUSION_FAILED",
      "inclusion proof: ",
    ],
    [
      "proof hash removed",
      () => good.split("\n").filter((_, i) => i !== 6).join("\n"),
      "PROOF_SHAPE",
      "inclusion proof: an inclusion proof for index 6 in a tree of 13 has 4 hashes, got 3",
    ],
    [
      "proof hash added",
      () => replaceLine(good, 7, (l) => `${l}\n${b64(randomBytes(32))}`),
      "PROOF_SHAPE",
      "got 5",
    ],
    ["index changed", () => replaceLine(good, 3, () => "index 7"), "INCLUSION_FAILED", "inclusion proof: "],
    ["index beyond the tree", () => replaceLine(good, 3, () => "index 13"), "PROOF_SHAPE", "not below tree size 13"],
  ];

  it.each(cases)("fails: %s", (_, make, code, message) => {
    const result = verifyProofBundle(make(), { trustedKeys });
    expect(result).toMatchObject({ ok: false, code });
    if (!result.ok) expect(result.message).toContain(message);
  });

  it("fails with PAYLOAD_MISMATCH for a payload other than the one delivered", () => {
    const result = verifyProofBundle(good, { trustedKeys, payload: log.payloads[INDEX + 1]! });
    expect(result).toMatchObject({ ok: false, code: "PAYLOAD_MISMATCH" });
    if (!result.ok) {
      const digest = createHash("sha256").update(log.payloads[INDEX + 1]!).digest("hex");
      expect(result.message).toBe(`payload: the payload's SHA-256 is ${digest}, the receipt records ${receipt["payload_sha256"]}`);
    }
  });

  it("fails with BAD_KEY for a malformed trusted key or none", () => {
    expect(verifyProofBundle(good, { trustedKeys: [] })).toMatchObject({ code: "BAD_KEY" });
    expect(verifyProofBundle(good, { trustedKeys: [log.key.vkey.replace("+", "+0")] })).toMatchObject({
      code: "BAD_KEY",
    });
  });

  it("treats a time line under another name as an unknown line: the time is simply absent", () => {
    const renamed = replaceLine(good, TIME_LINE, (l) => l.replace("— kapsel", "— kapsek"));
    expect(verifyProofBundle(renamed, { trustedKeys })).toMatchObject({ ok: true, timestamp: null });
    expect(verifyProofBundle(renamed, { trustedKeys, requireTimestamp: true })).toMatchObject({
      code: "TIMESTAMP_REQUIRED",
    });
  });

  // With the time required, every byte of the bundle matters: no edit can leave it valid.
  it("any single-character change makes it fail, and nothing throws", () => {
    const alphabet = [..."ABCDabcd0189+/=\n \u2014-é"];
    fc.assert(
      fc.property(fc.nat(good.length - 1), fc.constantFrom(...alphabet), (at, char) => {
        fc.pre(good[at] !== char);
        const edited = good.slice(0, at) + char + good.slice(at + 1);
        expect(verifyProofBundle(edited, { trustedKeys, requireTimestamp: true }).ok).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });
});

describe("strict bundle parsing", () => {
  it.each([
    ["a different header", () => replaceLine(good, 1, () => "c2sp.org/tlog-proof@v2"), "bundle: line 1"],
    ["no extra line", () => good.split("\n").filter((_, i) => i !== 1).join("\n"), "bundle: line 2"],
    ["unpadded extra", () => replaceLine(good, 2, (l) => l.replace(/=+$/, "")), "bundle: line 2"],
    ["an index with a leading zero", () => replaceLine(good, 3, () => "index 06"), "bundle: line 3"],
    ["a negative index", () => replaceLine(good, 3, () => "index -1"), "bundle: line 3"],
    ["an index beyond u64", () => replaceLine(good, 3, () => "index 18446744073709551616"), "bundle: line 3"],
    ["a 31-byte proof hash", () => replaceLine(good, 5, () => b64(randomBytes(31))), "bundle: line 5"],
    ["no empty line before the checkpoint", () => good.split("\n").filter((_, i) => i !== 7).join("\n"), "line "],
    ["no checkpoint", () => good.slice(0, good.indexOf("\n\n") + 2), "missing checkpoint"],
    ["CRLF line ends", () => good.replaceAll("\n", "\r\n"), "bundle: line 1"],
    ["an extension line in the checkpoint", () => replaceLine(good, CHECKPOINT_LINE + 2, (l) => `${l}\nextension`), "exactly three lines"],
    ["a checkpoint size with a leading zero", () => replaceLine(good, CHECKPOINT_LINE + 1, () => "013"), `checkpoint: line ${CHECKPOINT_LINE + 1}`],
    ["a checkpoint root of 31 bytes", () => replaceLine(good, CHECKPOINT_LINE + 2, () => b64(randomBytes(31))), `checkpoint: line ${CHECKPOINT_LINE + 2}`],
    ["a control character in the checkpoint", () => replaceLine(good, CHECKPOINT_LINE, (l) => `${l}\u0007`), `checkpoint: line ${CHECKPOINT_LINE}: control`],
  ])("rejects a bundle with %s as PARSE_ERROR naming the line", (_, make, message) => {
    const result = verifyProofBundle(make(), { trustedKeys });
    expect(result).toMatchObject({ ok: false, code: "PARSE_ERROR" });
    if (!result.ok) expect(result.message).toContain(message);
  });

  it("rejects more than 64 proof hashes at parse time", () => {
    const hashes = Array.from({ length: 65 }, () => randomBytes(32));
    const result = verifyProofBundle(bundleText(log.leaves[0]!, 0, hashes, log.checkpoint()), { trustedKeys });
    expect(result).toMatchObject({ ok: false, code: "PARSE_ERROR", message: "bundle: line 68: more than 64 proof hashes" });
  });

  it("rejects bytes that are not UTF-8", () => {
    const bytes = new TextEncoder().encode(good);
    bytes[bytes.length - 10] = 0xff;
    expect(verifyProofBundle(bytes, { trustedKeys })).toMatchObject({ code: "PARSE_ERROR" });
  });

  it("names the checkpoint line a control character is on", () => {
    expect(lineOf(good, "kapsel.example.com/log")).toBe(CHECKPOINT_LINE);
    expect(lineOf(good, "— kapsel.example.com/log")).toBe(LOG_SIGNATURE_LINE);
  });
});
