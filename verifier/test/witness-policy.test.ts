// C2SP tlog-policy files and k-of-n quorums: what an auditor writes to say which witnesses must
// have cosigned a checkpoint before they believe it.
import { describe, expect, it } from "vitest";
import { explainQuorum, parseWitnessPolicy, parseWitnessKey, quorumMet, quorumPolicy } from "../src/index.ts";
import { TestKey, seedOf } from "./support/test-log.ts";

const witness = (name: string): TestKey => new TestKey(name, seedOf(`policy witness ${name}`));
const [x1, x2, x3, y1, y2, y3] = ["x1.example", "x2.example", "x3.example", "y1.example", "y2.example", "y3.example"].map(witness) as [
  TestKey, TestKey, TestKey, TestKey, TestKey, TestKey,
];
const log = new TestKey("kapsel.example.com/log", seedOf("policy log"));

/** The two-level example of the tlog-policy spec, with real keys and some layout noise. */
const SPEC_EXAMPLE = `# example from c2sp.org/tlog-policy
log ${log.vkey} https://kapsel.example.com/

witness X1 ${x1.witnessVkey}
witness X2 ${x2.witnessVkey}\thttps://x2.example/witness
\twitness X3 ${x3.witnessVkey}   
group X-witnesses 2 X1 X2 X3

witness Y1 ${y1.witnessVkey}
witness Y2 ${y2.witnessVkey}
witness Y3 ${y3.witnessVkey}
group Y-witnesses any Y1 Y2 Y3
   # indented comment
group X-and-Y all X-witnesses Y-witnesses
quorum X-and-Y
`;

describe("parseWitnessPolicy", () => {
  it("reads the spec's two-level example: logs, witnesses with URLs, groups and the quorum", () => {
    const policy = parseWitnessPolicy(SPEC_EXAMPLE);
    expect(policy.logs.map((l) => [l.key.vkey, l.url])).toEqual([[log.vkey, "https://kapsel.example.com/"]]);
    expect(policy.witnesses.map((w) => [w.name, w.key.vkey, w.url])).toEqual([
      ["X1", x1.witnessVkey, undefined],
      ["X2", x2.witnessVkey, "https://x2.example/witness"],
      ["X3", x3.witnessVkey, undefined],
      ["Y1", y1.witnessVkey, undefined],
      ["Y2", y2.witnessVkey, undefined],
      ["Y3", y3.witnessVkey, undefined],
    ]);
    expect(policy.quorum).toMatchObject({ kind: "group", name: "X-and-Y", threshold: 2 });
  });

  it("meets the quorum with two X and one Y witness, not with one X or no Y", () => {
    const { quorum } = parseWitnessPolicy(SPEC_EXAMPLE);
    expect(quorumMet(quorum, new Set(["X1", "X3", "Y2"]))).toBe(true);
    expect(quorumMet(quorum, new Set(["X1", "X2", "X3", "Y1", "Y2", "Y3"]))).toBe(true);
    expect(quorumMet(quorum, new Set(["X1", "Y1", "Y2", "Y3"]))).toBe(false);
    expect(quorumMet(quorum, new Set(["X1", "X2", "X3"]))).toBe(false);
    expect(quorumMet(quorum, new Set())).toBe(false);
  });

  it("explains an unmet quorum group by group, naming the witnesses whose cosignature is missing", () => {
    const { quorum } = parseWitnessPolicy(SPEC_EXAMPLE);
    expect(explainQuorum(quorum, new Set(["X1", "Y3"]))).toBe(
      "group X-and-Y needs 2 of 2 (X-witnesses, Y-witnesses) and has 1; " +
        "group X-witnesses needs 2 of 3 (X1, X2, X3) and has 1; " +
        `no valid cosignature from X2 (${x2.witnessVkey}), X3 (${x3.witnessVkey})`,
    );
  });

  it("accepts `quorum none`, a single witness as the quorum, bytes, and a last line without newline", () => {
    expect(parseWitnessPolicy("quorum none").quorum).toEqual({ kind: "none" });
    const single = parseWitnessPolicy(new TextEncoder().encode(`witness w ${x1.witnessVkey}\nquorum w`));
    expect(single.quorum).toMatchObject({ kind: "witness", name: "w" });
    expect(quorumMet(single.quorum, new Set(["w"]))).toBe(true);
    expect(explainQuorum(single.quorum, new Set())).toBe(`no valid cosignature from w (${x1.witnessVkey})`);
  });

  const W1 = `witness w1 ${x1.witnessVkey}\n`;
  const W2 = `witness w2 ${x2.witnessVkey}\n`;
  it.each([
    ["no quorum line", W1, "policy has no quorum line"],
    ["two quorum lines", `${W1}quorum w1\nquorum none\n`, "policy line 3: a policy has exactly one quorum line"],
    ["an unknown keyword", `${W1}cosigner w3 x\nquorum w1\n`, 'policy line 2: unknown keyword "cosigner"'],
    ["a quorum naming an undefined witness", "quorum w1\n", 'policy line 1: "w1" is not defined above this line'],
    ["a group member defined later", `group g any w1\n${W1}quorum g\n`, 'policy line 1: "w1" is not defined above this line'],
    ["a name defined twice", `${W1}witness w1 ${x2.witnessVkey}\nquorum w1\n`, 'policy line 2: "w1" is already defined'],
    ["a group reusing a witness name", `${W1}group w1 any w1\nquorum w1\n`, 'policy line 2: "w1" is already defined'],
    ["a witness named none", `witness none ${x1.witnessVkey}\nquorum none\n`, 'policy line 1: "none" is predefined'],
    ["none as a group member", `${W1}group g any w1 none\nquorum g\n`, 'policy line 2: "none" cannot be a group member'],
    ["a member listed twice", `${W1}group g any w1 w1\nquorum g\n`, 'policy line 2: "w1" is listed twice in the group'],
    ["a threshold of 0", `${W1}${W2}group g 0 w1 w2\nquorum g\n`, 'a number from 1 to 2, not "0"'],
    ["a threshold above the members", `${W1}${W2}group g 3 w1 w2\nquorum g\n`, 'a number from 1 to 2, not "3"'],
    ["a threshold with a leading zero", `${W1}${W2}group g 01 w1 w2\nquorum g\n`, 'not "01"'],
    ["a group without members", `group g any\nquorum none\n`, "policy line 1: expected: group <name> all|any|<k> <member>..."],
    ["the same witness key twice", `${W1}witness w2 ${x1.witnessVkey}\nquorum w1\n`, 'policy line 2: witness "w2" has the same public key as witness "w1"'],
    ["the same log key twice", `log ${log.vkey}\nlog ${log.vkey} https://elsewhere\nquorum none\n`, "policy line 2: this log key is listed twice"],
    ["a log key as a witness", `witness w ${log.vkey}\nquorum w\n`, "a log key (type 0x01); witness keys are type 0x04"],
    ["a witness key as a log", `log ${x1.witnessVkey}\nquorum none\n`, "a witness cosigning key (type 0x04), not a log key"],
    ["a witness line with too many fields", `witness w ${x1.witnessVkey} https://a https://b\nquorum w\n`, "expected: witness <name> <vkey> [<url>]"],
    ["a carriage return", `${W1.replace("\n", "\r\n")}quorum w1\n`, "policy line 1: control character U+000d is not allowed (only tab and newline) (CRLF line ends?)"],
    ["a NUL byte", `# a\u0000b\nquorum none\n`, "policy line 1: control character U+0000"],
  ])("refuses a policy with %s as BAD_POLICY", (_, text, message) => {
    expect(() => parseWitnessPolicy(text)).toThrow(expect.objectContaining({ code: "BAD_POLICY" }));
    expect(() => parseWitnessPolicy(text)).toThrow(message);
  });

  it("refuses an ML-DSA-44 witness (type 0x06), which this verifier cannot check", () => {
    const mldsa = `w.example+00000000+${Buffer.concat([Buffer.of(0x06), Buffer.alloc(1312)]).toString("base64")}`;
    expect(() => parseWitnessPolicy(`witness w ${mldsa}\nquorum w\n`)).toThrow("only Ed25519 type 0x04 is supported here");
  });

  it("bounds the file size, the line length and the number of witnesses", () => {
    expect(() => parseWitnessPolicy(`# ${"x".repeat(70_000)}\nquorum none\n`)).toThrow("policy is larger than 65536 bytes");
    expect(() => parseWitnessPolicy(`# ${"x".repeat(5000)}\nquorum none\n`)).toThrow("policy line 1: longer than 4096 characters");
    const many = Array.from({ length: 65 }, (_, i) => `witness w${i} ${witness(`w${i}.example`).witnessVkey}`).join("\n");
    expect(() => parseWitnessPolicy(`${many}\nquorum none\n`)).toThrow("policy line 65: more than 64 witnesses");
  });

  it("refuses invalid UTF-8", () => {
    expect(() => parseWitnessPolicy(Uint8Array.of(0x71, 0xff, 0x0a))).toThrow("policy is not valid UTF-8");
  });
});

describe("quorumPolicy (--witness … --quorum K)", () => {
  const keys = [x1, x2, x3].map((k) => parseWitnessKey(k.witnessVkey));

  it("requires all witnesses by default and k of them when asked", () => {
    const all = quorumPolicy(keys);
    expect(quorumMet(all.quorum, new Set(["x1.example", "x2.example"]))).toBe(false);
    expect(quorumMet(all.quorum, new Set(["x1.example", "x2.example", "x3.example"]))).toBe(true);
    const two = quorumPolicy(keys, 2);
    expect(quorumMet(two.quorum, new Set(["x1.example", "x3.example"]))).toBe(true);
    expect(explainQuorum(two.quorum, new Set(["x3.example"]))).toBe(
      "group witnesses needs 2 of 3 (x1.example, x2.example, x3.example) and has 1; " +
        `no valid cosignature from x1.example (${x1.witnessVkey}), x2.example (${x2.witnessVkey})`,
    );
  });

  it("tells apart two witnesses that use the same key name", () => {
    const twin = parseWitnessKey(new TestKey("x1.example", seedOf("another x1")).witnessVkey);
    const names = quorumPolicy([keys[0]!, twin]).witnesses.map((w) => w.name);
    expect(names).toHaveLength(2);
    expect(names[0]).toMatch(/^x1\.example\+[0-9a-f]{8}$/);
    expect(names[0]).not.toBe(names[1]);
  });

  it.each([
    ["no witnesses", [], undefined, "a quorum needs at least one witness key"],
    ["a quorum of 0", keys, 0, "the quorum must be a whole number from 1 to 3 (the witnesses given), not 0"],
    ["a quorum above the witnesses", keys, 4, "the quorum must be a whole number from 1 to 3 (the witnesses given), not 4"],
    ["a fractional quorum", keys, 1.5, "the quorum must be a whole number from 1 to 3 (the witnesses given), not 1.5"],
    ["a key given twice", [keys[0]!, keys[0]!], undefined, `witness key ${x1.witnessVkey} is given twice`],
  ])("refuses %s as BAD_POLICY", (_, given, k, message) => {
    expect(() => quorumPolicy(given, k)).toThrow(expect.objectContaining({ code: "BAD_POLICY", message }));
  });
});
