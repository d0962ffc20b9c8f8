// C2SP signed notes and vkeys: the spec's own example verifies, and the spec's rules about known,
// unknown and failing signature lines hold.
import { describe, expect, it } from "vitest";
import {
  computeKeyId,
  ed25519NoteVerifier,
  parseNote,
  parseVerifierKey,
  verifyNote,
  type NoteVerifier,
} from "../src/index.ts";
import { TestKey, b64, keyId, seedOf } from "./support/test-log.ts";

const SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
const SPEC_TEXT = "This is an example message.\n";
const SPEC_LINE =
  "— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=";
const SPEC_NOTE = `${SPEC_TEXT}\n${SPEC_LINE}\n`;

const specVerifier = (): NoteVerifier => ed25519NoteVerifier(parseVerifierKey(SPEC_VKEY));

describe("the C2SP signed-note spec example", () => {
  it("verifies with the spec's vkey", () => {
    const result = verifyNote(SPEC_NOTE, [specVerifier()]);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.text).toBe(SPEC_TEXT);
    expect(result.verified.map((c) => [c.signature.name, c.signature.keyId.toString(16), c.signature.line])).toEqual([
      ["example.com/foo", "530d903a", 3],
    ]);
  });

  it("parses the vkey to its name, key ID and 32-byte key", () => {
    const key = parseVerifierKey(SPEC_VKEY);
    expect(key.name).toBe("example.com/foo");
    expect(key.keyId).toBe(0x530d903a);
    expect(key.publicKey).toHaveLength(32);
    expect(computeKeyId("example.com/foo", 0x01, key.publicKey)).toBe(0x530d903a);
  });

  it("fails when the text is changed by one character", () => {
    const edited = SPEC_NOTE.replace("example message", "example messagE");
    expect(verifyNote(edited, [specVerifier()])).toMatchObject({ ok: false, code: "BAD_SIGNATURE" });
  });

  it("also verifies given as bytes", () => {
    expect(verifyNote(new TextEncoder().encode(SPEC_NOTE), [specVerifier()]).ok).toBe(true);
  });
});

describe("signature line rules", () => {
  const other = new TestKey("example.com/other", seedOf("other"));
  const otherVerifier = ed25519NoteVerifier(parseVerifierKey(other.vkey));

  it("ignores lines from unknown keys and accepts a note any known key signed", () => {
    const note = `${SPEC_TEXT}\n${other.signatureLine(SPEC_TEXT)}\n${SPEC_LINE}\n`;
    const result = verifyNote(note, [specVerifier()]);
    expect(result).toMatchObject({ ok: true });
  });

  it("fails with NO_TRUSTED_SIGNATURE when only unknown keys signed", () => {
    const note = `${SPEC_TEXT}\n${other.signatureLine(SPEC_TEXT)}\n`;
    expect(verifyNote(note, [specVerifier()])).toMatchObject({ ok: false, code: "NO_TRUSTED_SIGNATURE" });
  });

  it("ignores a line that shares only the key ID or only the name with a known key", () => {
    const sameIdOtherName = SPEC_LINE.replace("example.com/foo", "example.com/bar");
    const impostor = new TestKey("example.com/foo", seedOf("impostor"));
    const note = `${SPEC_TEXT}\n${sameIdOtherName}\n${impostor.signatureLine(SPEC_TEXT)}\n${SPEC_LINE}\n`;
    expect(verifyNote(note, [specVerifier()])).toMatchObject({ ok: true });
  });

  it("rejects the whole note when a line with a known name and key ID does not verify", () => {
    const forged = `— example.com/foo ${b64(Buffer.concat([Buffer.from("530d903a", "hex"), Buffer.alloc(64, 7)]))}`;
    const note = `${SPEC_TEXT}\n${SPEC_LINE}\n${forged}\n`;
    const result = verifyNote(note, [specVerifier()]);
    expect(result).toMatchObject({ ok: false, code: "BAD_SIGNATURE" });
    if (!result.ok) expect(result.message).toContain("line 4");
  });

  it("uses the last empty line to split text from signatures", () => {
    const text = "first\n\nsecond paragraph\n";
    const note = `${text}\n${other.signatureLine(text)}\n`;
    const result = verifyNote(note, [otherVerifier]);
    expect(result).toMatchObject({ ok: true, text });
  });
});

describe("strict note parsing", () => {
  it.each([
    ["no final newline", SPEC_NOTE.slice(0, -1), "does not end in a newline"],
    ["no empty line", `${SPEC_TEXT}${SPEC_LINE}\n`, "no empty line"],
    ["no signatures", `${SPEC_TEXT}\n`, "line 3: note has no signature lines"],
    ["empty signature block", `${SPEC_TEXT}\n\n`, "no signature lines"],
    ["CRLF line ends", SPEC_NOTE.replaceAll("\n", "\r\n"), "U+000d"],
    ["a tab", `This\tis\n\n${SPEC_LINE}\n`, "line 1: control character U+0009"],
    ["hyphen instead of em dash", `${SPEC_TEXT}\n${SPEC_LINE.replace("—", "-")}\n`, "line 3"],
    ["missing space", `${SPEC_TEXT}\n${SPEC_LINE.replace(" Uw2Q", "Uw2Q")}\n`, "line 3"],
    ["unpadded base64", `${SPEC_TEXT}\n${SPEC_LINE.replace(/=$/, "")}\n`, "line 3: signature is not base64"],
    ["signature too short", `${SPEC_TEXT}\n— example.com/foo AAAAAA==\n`, "line 3"],
    ["plus in key name", `${SPEC_TEXT}\n${SPEC_LINE.replace("foo", "f+oo")}\n`, "invalid key name"],
  ])("rejects a note with %s", (_, note, message) => {
    const result = verifyNote(note, [specVerifier()]);
    expect(result).toMatchObject({ ok: false, code: "PARSE_ERROR" });
    if (!result.ok) expect(result.message).toContain(message);
  });

  it("rejects invalid UTF-8 and lone surrogates", () => {
    const bytes = new TextEncoder().encode(SPEC_NOTE);
    bytes[3] = 0xff;
    expect(verifyNote(bytes, [specVerifier()])).toMatchObject({ code: "PARSE_ERROR" });
    expect(verifyNote(`\ud800${SPEC_NOTE}`, [specVerifier()])).toMatchObject({ code: "PARSE_ERROR" });
  });

  it("reports line numbers relative to an enclosing file", () => {
    expect(() => parseNote(`${SPEC_TEXT}\n- bad\n`, { firstLine: 10 })).toThrow(/^line 12:/);
  });

  it("accepts 100 signature lines and refuses 101", () => {
    const lines = (n: number) => Array.from({ length: n }, () => SPEC_LINE).join("\n");
    expect(parseNote(`${SPEC_TEXT}\n${lines(100)}\n`).signatures).toHaveLength(100);
    expect(() => parseNote(`${SPEC_TEXT}\n${lines(101)}\n`)).toThrow(/101 signature lines/);
  });
});

describe("vkeys", () => {
  const key = new TestKey("kapsel.example.com/log", seedOf("vkey test"));

  it("round-trips a key built with node:crypto", () => {
    const parsed = parseVerifierKey(key.vkey);
    expect(Buffer.from(parsed.publicKey)).toEqual(key.publicKey);
    expect(parsed.timeKeyId).toBe(keyId(key.name, 0x04, key.publicKey).readUInt32BE(0));
  });

  it.each([
    ["a wrong key ID", () => key.vkey.replace(/\+[0-9a-f]{8}\+/, "+00000000+"), "hashes to"],
    ["a different name", () => key.vkey.replace("kapsel.example.com/log", "kapsel.example.com/lag"), "hashes to"],
    ["a short key ID", () => key.vkey.replace(/\+([0-9a-f]{7})[0-9a-f]\+/, "+$1+"), "8 hex digits"],
    ["two parts", () => key.vkey.split("+").slice(0, 2).join("+"), "<name>+<key ID>"],
    ["a space in the name", () => `kapsel example${key.vkey.slice("kapsel.example".length)}`, "invalid name"],
    ["signature type 0x04", () => vkeyOf(key.name, 0x04, key.publicKey), "a witness cosigning key (type 0x04), not a log key"],
    ["signature type 0x06", () => vkeyOf(key.name, 0x06, key.publicKey), "only Ed25519 type 0x01"],
    ["a 31-byte key", () => vkeyOf(key.name, 0x01, key.publicKey.subarray(1)), "31-byte"],
    ["bad base64", () => `${key.vkey}!`, "base64"],
    ["a key that is not a curve point", () => vkeyOf(key.name, 0x01, notAPoint()), "not a valid Ed25519"],
  ])("rejects a vkey with %s as BAD_KEY", (_, make, message) => {
    expect(() => parseVerifierKey(make())).toThrow(expect.objectContaining({ code: "BAD_KEY" }));
    expect(() => parseVerifierKey(make())).toThrow(message);
  });
});

function vkeyOf(name: string, type: number, publicKey: Uint8Array): string {
  const id = keyId(name, type, publicKey).toString("hex");
  return `${name}+${id}+${b64(Buffer.concat([Uint8Array.of(type), publicKey]))}`;
}

/** A y-coordinate with no x on the curve (the first such small value). */
function notAPoint(): Buffer {
  const bytes = Buffer.alloc(32);
  bytes[0] = 2;
  return bytes;
}
