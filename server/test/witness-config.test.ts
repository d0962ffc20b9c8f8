// KAPSEL_WITNESSES and KAPSEL_WITNESS_QUORUM (contract names): what is accepted, what stops the
// server with a message naming the variable; and the pure retry timing of witness exchanges.
import { describe, expect, it } from "vitest";
import { logKeyFromSeed, vkey } from "../src/attestation/log-key.ts";
import { ConfigError, loadConfig } from "../src/config.ts";
import { BACKOFF_CAP_MS, witnessBackoffMs } from "../src/attestation/witnessing/retry-backoff.ts";
import { WitnessKey } from "../../witness/src/witness-key.ts";

const a = new WitnessKey("witness-a.example", Buffer.alloc(32, 1)).vkey;
const b = new WitnessKey("witness-b.example", Buffer.alloc(32, 2)).vkey;
const sameName = new WitnessKey("witness-a.example", Buffer.alloc(32, 3)).vkey;
// A log key (type 0x01), which must not pass for a witness key.
const logVkey = vkey("kapsel.localhost/log", logKeyFromSeed("kapsel.localhost/log", Buffer.alloc(32, 4)).publicKey);

function witnessing(env: Record<string, string>) {
  return loadConfig(env).attestation.witnessing;
}

function refusal(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error("accepted");
}

describe("KAPSEL_WITNESSES", () => {
  it("is empty by default: no witnesses, no quorum, a 20 s interval", () => {
    expect(witnessing({})).toEqual({ witnesses: [], quorum: 0, intervalMs: 20_000, timeoutMs: 10_000 });
  });

  it("takes comma-separated URL VKEY entries; the quorum defaults to all; trailing slashes go", () => {
    const w = witnessing({ KAPSEL_WITNESSES: ` https://w1.example/prefix/ ${a} ,http://10.0.0.7:7380 ${b}` });
    expect(w.quorum).toBe(2);
    expect(w.witnesses.map((x) => [x.url, x.name, x.key.vkey])).toEqual([
      ["https://w1.example/prefix", "witness-a.example", a],
      ["http://10.0.0.7:7380", "witness-b.example", b],
    ]);
  });

  it("names witnesses that share a key name by name and key ID, as kapsel-verify does", () => {
    const w = witnessing({ KAPSEL_WITNESSES: `https://w1.example ${a},https://w2.example ${sameName}`, KAPSEL_WITNESS_QUORUM: "1" });
    expect(w.witnesses.map((x) => x.name)).toEqual([`witness-a.example+${a.split("+")[1]}`, `witness-a.example+${sameName.split("+")[1]}`]);
    expect(w.quorum).toBe(1);
  });

  it.each([
    [`https://w1.example  ${a}`, /^KAPSEL_WITNESSES entry 1 .*expected "URL VKEY" with one space between/],
    [`https://w1.example`, /^KAPSEL_WITNESSES entry 1 .*expected "URL VKEY"/],
    [`w1.example ${a}`, /^KAPSEL_WITNESSES entry 1: "w1.example" is not a URL/],
    [`ftp://w1.example ${a}`, /^KAPSEL_WITNESSES entry 1: .*must be an http\(s\) URL/],
    [`https://user:pw@w1.example ${a}`, /^KAPSEL_WITNESSES entry 1: .*without query, fragment or credentials/],
    [`https://w1.example?x=1 ${a}`, /^KAPSEL_WITNESSES entry 1: .*without query/],
    [`https://w1.example ${logVkey}`, /^KAPSEL_WITNESSES entry 1: .*0x01/],
    [`https://w1.example ${a},https://w2.example not-a-vkey`, /^KAPSEL_WITNESSES entry 2: /],
    [`https://w1.example ${a},https://w2.example ${a}`, /^KAPSEL_WITNESSES: witness key .* is given twice/],
    [Array.from({ length: 65 }, () => `https://w.example ${a}`).join(","), /^KAPSEL_WITNESSES: at most 64 witnesses/],
  ])("refuses %j, naming the variable", (value, message) => {
    expect(refusal({ KAPSEL_WITNESSES: value })).toMatch(message);
  });
});

describe("KAPSEL_WITNESS_QUORUM", () => {
  it.each(["0", "3", "1.5", "two", "-1"])("refuses %j with two witnesses", (quorum) => {
    expect(refusal({ KAPSEL_WITNESSES: `https://w1.example ${a},https://w2.example ${b}`, KAPSEL_WITNESS_QUORUM: quorum }))
      .toMatch(/^KAPSEL_WITNESS_QUORUM=.*expected an integer from 1 to 2/);
  });

  it("refuses a quorum without witnesses", () => {
    expect(refusal({ KAPSEL_WITNESS_QUORUM: "1" })).toMatch(/^KAPSEL_WITNESS_QUORUM is set but KAPSEL_WITNESSES names no witness/);
  });
});

describe("retry timing after failed exchanges", () => {
  it("doubles from 1 s (half fixed, half jitter) up to a 5-minute cap", () => {
    expect([1, 2, 3, 9].map((n) => witnessBackoffMs(n, () => 0))).toEqual([500, 1000, 2000, 128_000]);
    expect([1, 2, 3, 9].map((n) => witnessBackoffMs(n, () => 1))).toEqual([1000, 2000, 4000, 256_000]);
    expect(witnessBackoffMs(10, () => 1)).toBe(BACKOFF_CAP_MS);
    expect(witnessBackoffMs(10_000, () => 0)).toBe(BACKOFF_CAP_MS / 2);
  });
});
