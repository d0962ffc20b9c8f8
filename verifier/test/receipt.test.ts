// Receipts: only the one canonical byte form of a valid version-1 receipt is accepted.
import { describe, expect, it } from "vitest";
import { canonicalJson, parseReceipt } from "../src/index.ts";
import { canonical, receiptFor } from "./support/test-log.ts";

const encode = (text: string): Uint8Array => new TextEncoder().encode(text);
const valid = receiptFor(1, encode("body"));
const validText = canonical(valid);

describe("RFC 8785 canonical JSON", () => {
  it("sorts members by UTF-16 code units (the RFC 8785 §3.2.3 example)", () => {
    const input = JSON.parse(
      '{"\\u20ac":"Euro Sign","\\r":"Carriage Return","\\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\\ud83d\\ude00":"Emoji: Grinning Face","\\u0080":"Control","\\u00f6":"Latin Small Letter O With Diaeresis"}',
    ) as unknown;
    expect(canonicalJson(input)).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis",' +
        '"\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
  });

  it("writes numbers, literals and escapes as RFC 8785 §3.2.2 requires", () => {
    const input = JSON.parse('{"n":[1E2,-0,0.000001,1e21,4.50],"s":"\\u0041\\u00e9\\n\\u001f\\"","t":[true,false,null]}');
    expect(canonicalJson(input)).toBe('{"n":[100,0,0.000001,1e+21,4.5],"s":"Aé\\n\\u001f\\"","t":[true,false,null]}');
  });
});

describe("parseReceipt", () => {
  it("accepts a canonical version-1 receipt and returns its members", () => {
    expect(parseReceipt(encode(validText))).toEqual(valid);
  });

  it.each([
    ["whitespace", () => JSON.stringify(valid, Object.keys(valid).sort(), 1)],
    ["members out of order", () => JSON.stringify(valid)],
    ["a trailing newline", () => `${validText}\n`],
    ["a byte order mark", () => `\ufeff${validText}`],
    ["an escaped letter", () => validText.replace('"url":"h', '"url":"\\u0068')],
    ["a number written as 1.0", () => validText.replace('"v":1', '"v":1.0')],
    ["a duplicated member", () => validText.replace('{"attempt"', '{"attempt":9,"attempt"')],
    ["an integer beyond 2^53", () => validText.replace('"duration_ms":41', '"duration_ms":9007199254740993')],
    ["no JSON at all", () => "receipt"],
  ])("rejects %s as RECEIPT_NOT_CANONICAL", (_, make) => {
    expect(() => parseReceipt(encode(make()))).toThrow(expect.objectContaining({ code: "RECEIPT_NOT_CANONICAL" }));
  });

  it("rejects invalid UTF-8 as RECEIPT_NOT_CANONICAL", () => {
    const bytes = encode(validText);
    bytes[10] = 0xc3;
    expect(() => parseReceipt(bytes)).toThrow(expect.objectContaining({ code: "RECEIPT_NOT_CANONICAL" }));
  });

  it.each([
    ["an array", () => "[1]", "not a JSON object"],
    ["a missing member", () => canonical(without(valid, "response_sha256")), 'lacks member "response_sha256"'],
    ["an unknown member", () => canonical({ ...valid, note: "x" }), 'unknown member "note"'],
    ["version 2", () => canonical({ ...valid, v: 2 }), '"v"'],
    ["a malformed UUID", () => canonical({ ...valid, event_id: "not-a-uuid" }), '"event_id"'],
    ["attempt 0", () => canonical({ ...valid, attempt: 0 }), '"attempt"'],
    ["uppercase hex", () => canonical({ ...valid, payload_sha256: String(valid["payload_sha256"]).toUpperCase() }), '"payload_sha256"'],
    ["a time without milliseconds", () => canonical({ ...valid, started_at: "2026-11-22T10:30:45Z" }), '"started_at"'],
    ["a time with an offset", () => canonical({ ...valid, started_at: "2026-11-22T10:30:45.123+01:00" }), '"started_at"'],
    ["an impossible date", () => canonical({ ...valid, started_at: "2026-02-30T10:30:45.123Z" }), '"started_at"'],
    ["a fractional duration", () => canonical({ ...valid, duration_ms: 1.5 }), '"duration_ms"'],
    ["a negative duration", () => canonical({ ...valid, duration_ms: -1 }), '"duration_ms"'],
    ["an unknown outcome", () => canonical({ ...valid, outcome: "bounced" }), '"outcome"'],
    ["status code 42", () => canonical({ ...valid, status_code: 42 }), '"status_code"'],
    ["a string status code", () => canonical({ ...valid, status_code: "200" }), '"status_code"'],
    ["a null payload hash", () => canonical({ ...valid, payload_sha256: null }), '"payload_sha256"'],
    ["an empty url", () => canonical({ ...valid, url: "" }), '"url"'],
  ])("rejects %s as RECEIPT_SCHEMA", (_, make, message) => {
    expect(() => parseReceipt(encode(make()))).toThrow(expect.objectContaining({ code: "RECEIPT_SCHEMA" }));
    expect(() => parseReceipt(encode(make()))).toThrow(message);
  });

  it("accepts null status and response hash (no response)", () => {
    const receipt = { ...valid, outcome: "timeout", status_code: null, response_sha256: null };
    expect(parseReceipt(encode(canonical(receipt)))).toMatchObject({ status_code: null, response_sha256: null });
  });
});

function without(record: Record<string, unknown>, key: string): Record<string, unknown> {
  const copy = { ...record };
  delete copy[key];
  return copy;
}
