// Random request messages for any RPC, derived from its descriptor (so a new RPC or field is fuzzed
// without touching the fuzz test): proto3 JSON objects whose values lean on the edges that have
// broken servers before — NUL and other control characters, long strings, numbers at and past the
// limits of their column types, timestamps out of range, unknown enum numbers, ids that exist
// mixed with ids that do not, page tokens that were tampered with. Plus byte-level mutations of
// valid binary messages.
import { ScalarType, type DescEnum, type DescField, type DescMessage } from "@bufbuild/protobuf";
import fc from "fast-check";

export interface FuzzPools {
  /** Ids of real objects (tenants, endpoints, events, messages, sources, attempts, keys). */
  ids: string[];
  /** Other strings worth trying where a string goes (page tokens seen, names, urls). */
  strings: string[];
}

const EDGE_STRINGS = [
  "", " ", "\u0000", "a\u0000b", "\u0000".repeat(3), "\r\n", "é", "😀", "\uFFFF", "\uD800",
  "00000000-0000-0000-0000-000000000000", "00000000-0000-4000-8000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
  "not-a-uuid", "../../etc/passwd", "%00", "' OR 1=1 --", "{}", "null", "9223372036854775808", "-1", "1e999",
  "https://example.com/hook", "http://127.0.0.1:1/", "http://[::1]/", "kapsel.*", "a.*", "*", ".",
  "whsec_", "whsec_AAAA", "ksk_", "kadm_", "eyJ0IjoxfQ", "AAAA", "////", "====",
];

const EDGE_INTS = [0, 1, -1, 2, 100, 500, 501, 1000, 1001, 65535, 2147483647, 2147483648, -2147483648, -2147483649, 4294967295, 4294967296, Number.MAX_SAFE_INTEGER];
const EDGE_INT64 = ["0", "-1", "9223372036854775807", "-9223372036854775808", "18446744073709551615", "9007199254740993"];
const EDGE_TIMESTAMPS = [
  "1970-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "1969-12-31T23:59:59Z",
  "2026-01-01T00:00:00Z", "2000-02-29T12:00:00.5+01:00", "1900-01-01T00:00:00Z", "2262-04-12T00:00:00Z",
];

function stringValue(pools: FuzzPools): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...pools.ids) },
    { weight: 2, arbitrary: fc.constantFrom(...EDGE_STRINGS, ...pools.strings) },
    { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
    { weight: 1, arbitrary: fc.uuid() },
    { weight: 1, arbitrary: fc.constantFrom(...pools.ids).map((id) => id.slice(0, -1) + "\u0000") },
    { weight: 1, arbitrary: fc.integer({ min: 200, max: 5000 }).map((n) => "x".repeat(n)) },
    { weight: 1, arbitrary: fc.base64String({ maxLength: 60 }) },
  );
}

function scalarValue(type: ScalarType, pools: FuzzPools): fc.Arbitrary<unknown> {
  switch (type) {
    case ScalarType.STRING:
      return stringValue(pools);
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.BYTES:
      return fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 0, max: 70_000 }).map((n) => new Uint8Array(n)))
        .map((b) => Buffer.from(b).toString("base64"));
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return fc.oneof(fc.constantFrom(0, -1, 0.5, 1e308, -1e308, 1e-320, "NaN", "Infinity", "-Infinity"), fc.double({ noNaN: true }));
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return fc.oneof(fc.constantFrom(...EDGE_INT64), fc.constantFrom(...EDGE_INTS), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map(String));
    default:
      return fc.oneof(fc.constantFrom(...EDGE_INTS), fc.integer());
  }
}

function enumValue(desc: DescEnum): fc.Arbitrary<unknown> {
  return fc.oneof(fc.constantFrom(...desc.values.map((v) => v.name)), fc.constantFrom(...desc.values.map((v) => v.number), 7, 99, -1, 2147483647));
}

function messageValue(desc: DescMessage, pools: FuzzPools, depth: number): fc.Arbitrary<unknown> {
  if (desc.typeName === "google.protobuf.Timestamp") {
    return fc.oneof(fc.constantFrom(...EDGE_TIMESTAMPS), fc.date({ min: new Date(-62135596800000), max: new Date(253402300799000), noInvalidDate: true }).map((d) => d.toISOString()));
  }
  if (desc.typeName === "google.protobuf.Duration") return fc.constantFrom("0s", "1s", "-1s", "315576000000s", "1.5s");
  if (depth > 3) return fc.constant({});
  return fuzzMessage(desc, pools, depth + 1);
}

function singleValue(field: DescField, pools: FuzzPools, depth: number): fc.Arbitrary<unknown> {
  switch (field.fieldKind) {
    case "scalar":
      return scalarValue(field.scalar, pools);
    case "enum":
      return enumValue(field.enum);
    case "message":
      return messageValue(field.message, pools, depth);
    case "list": {
      const item = field.listKind === "scalar" ? scalarValue(field.scalar, pools)
        : field.listKind === "enum" ? enumValue(field.enum)
        : messageValue(field.message, pools, depth);
      // Mostly short lists; sometimes far past any sensible count.
      return fc.oneof({ weight: 5, arbitrary: fc.array(item, { maxLength: 4 }) }, { weight: 1, arbitrary: fc.array(item, { minLength: 100, maxLength: 1100, size: "max" }) });
    }
    case "map": {
      const value = field.mapKind === "scalar" ? scalarValue(field.scalar, pools)
        : field.mapKind === "enum" ? enumValue(field.enum)
        : messageValue(field.message, pools, depth);
      return fc.dictionary(stringValue(pools), value, { maxKeys: 5 });
    }
  }
}

/** A random proto3 JSON object for `desc` (field names in their JSON form). */
export function fuzzMessage(desc: DescMessage, pools: FuzzPools, depth = 0): fc.Arbitrary<Record<string, unknown>> {
  const plain = desc.fields.filter((f) => f.oneof === undefined);
  const parts: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of plain) parts[f.jsonName] = singleValue(f, pools, depth);
  const base = fc.record(parts, { requiredKeys: [] });
  if (desc.oneofs.length === 0) return base as fc.Arbitrary<Record<string, unknown>>;
  // One member of each oneof at most, as the JSON form allows.
  const oneofs = desc.oneofs.map((o) => fc.option(fc.constantFrom(...o.fields).chain((f) => singleValue(f, pools, depth).map((v) => [f.jsonName, v] as const)), { nil: undefined }));
  return fc.tuple(base, ...oneofs).map(([b, ...chosen]) => {
    const out = { ...(b as Record<string, unknown>) };
    for (const c of chosen) if (c) out[c[0]] = c[1];
    return out;
  });
}

/** A JSON body that is not the message's shape: wrong types, nulls, junk. */
export function malformedJson(desc: DescMessage): fc.Arbitrary<string> {
  const names = desc.fields.map((f) => f.jsonName);
  const wrong = fc.oneof(fc.constant(null), fc.constant([]), fc.constant({}), fc.boolean(), fc.double(), fc.string(), fc.constant({ "@type": "x" }));
  return fc.oneof(
    names.length > 0 ? fc.dictionary(fc.constantFrom(...names), wrong, { maxKeys: 3 }).map((o) => JSON.stringify(o)) : fc.constant("{}"),
    fc.string({ unit: "binary", maxLength: 200 }),
    fc.constantFrom("", "[]", "null", "1", '"x"', "{", '{"a":1}', "{\"\u0000\":1}", '{"__proto__":{"x":1}}', "{}".padEnd(5000, " ")),
  );
}

/** Byte-level mutations of a binary message: flips, truncations, junk inserted, random bytes. */
export function mutatedBinary(valid: Uint8Array): fc.Arbitrary<Uint8Array> {
  const flip = fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })).map(([at, x]) => {
    const out = Uint8Array.from(valid);
    if (out.length > 0) out[at % out.length]! ^= x;
    return out;
  });
  const cut = fc.nat().map((n) => valid.subarray(0, valid.length === 0 ? 0 : n % valid.length));
  const insert = fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 12 })).map(([at, junk]) => {
    const i = valid.length === 0 ? 0 : at % valid.length;
    return Uint8Array.from([...valid.subarray(0, i), ...junk, ...valid.subarray(i)]);
  });
  // Field headers that announce huge lengths, unknown wire types, deep groups.
  const tricky = fc.constantFrom(
    Uint8Array.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), Uint8Array.from([0x0b]), Uint8Array.from([0x0f]),
    Uint8Array.from([0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), Uint8Array.from(Array(200).fill(0x0b)),
  );
  return fc.oneof(flip, cut, insert, tricky, fc.uint8Array({ maxLength: 64 }));
}

const EDGES: Partial<Record<ScalarType, unknown[]>> = {
  [ScalarType.STRING]: ["a\u0000b", "\u0001é", "x".repeat(3000)],
  [ScalarType.INT32]: [2147483647, -2147483648, -1],
  [ScalarType.SINT32]: [2147483647, -2147483648],
  [ScalarType.SFIXED32]: [2147483647, -2147483648],
  [ScalarType.UINT32]: [4294967295, 2147483648],
  [ScalarType.FIXED32]: [4294967295, 2147483648],
  [ScalarType.INT64]: ["9223372036854775807", "-9223372036854775808", "-1"],
  [ScalarType.SINT64]: ["9223372036854775807", "-9223372036854775808"],
  [ScalarType.SFIXED64]: ["9223372036854775807", "-9223372036854775808"],
  [ScalarType.UINT64]: ["18446744073709551615", "9223372036854775808"],
  [ScalarType.FIXED64]: ["18446744073709551615", "9223372036854775808"],
  [ScalarType.DOUBLE]: [1e308, -1e308, "NaN", "Infinity", -1],
  [ScalarType.FLOAT]: [3.4e38, "NaN", -1],
  [ScalarType.BOOL]: [true],
  [ScalarType.BYTES]: [Buffer.alloc(70_000, 1).toString("base64")],
};

function edgeValues(field: DescField): unknown[] {
  switch (field.fieldKind) {
    case "scalar":
      return EDGES[field.scalar] ?? [];
    case "enum":
      return [99, -1];
    case "message":
      return field.message.typeName === "google.protobuf.Timestamp" ? ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "1969-12-31T23:59:59Z"] : [{}];
    case "list":
      if (field.listKind === "scalar") return [[(EDGES[field.scalar] ?? [0])[0]], Array.from({ length: 1001 }, () => (field.scalar === ScalarType.STRING ? "a" : 1))];
      return field.listKind === "enum" ? [[99]] : [[{}]];
    case "map":
      return field.mapKind === "scalar" && field.scalar === ScalarType.STRING ? [{ "a\u0000": "b\u0000" }, { x: "y".repeat(20_000) }] : [{ "\u0000": field.mapKind === "scalar" ? (EDGES[field.scalar] ?? [0])[0] : {} }];
  }
}

/**
 * Systematic edge cases for one message: each field in turn set to each of its edge values (NUL
 * in strings, the largest unsigned 32-bit number, int64 limits, timestamps at the ends of their
 * range, 1 001-item lists…), with every field that names an object set to a real id (`byField`,
 * by JSON field name), so the edge reaches as far into the handler as it can.
 */
export function edgeCases(desc: DescMessage, byField: Record<string, string>, depth = 0): Record<string, unknown>[] {
  const base: Record<string, unknown> = {};
  for (const f of desc.fields) {
    if (byField[f.jsonName] !== undefined && f.fieldKind === "scalar") base[f.jsonName] = byField[f.jsonName];
    // Lists of enums are usually required (an API key's scopes): one valid value gets past that.
    if (f.fieldKind === "list" && f.listKind === "enum" && f.enum.values.length > 1) base[f.jsonName] = [f.enum.values[1]!.name];
  }
  const out: Record<string, unknown>[] = [];
  for (const f of desc.fields) {
    // One level down: a nested message (or the first of a list of them) at each of its own edges.
    const nested = f.fieldKind === "message" && f.message.typeName !== "google.protobuf.Timestamp" ? f.message
      : f.fieldKind === "list" && f.listKind === "message" ? f.message : undefined;
    const inner = nested && depth === 0 ? edgeCases(nested, byField, 1).map((e) => (f.fieldKind === "list" ? [e] : e)) : [];
    for (const value of [...edgeValues(f), ...inner]) {
      const message: Record<string, unknown> = { ...base };
      // Only one member of a oneof may be set.
      if (f.oneof) for (const other of f.oneof.fields) delete message[other.jsonName];
      message[f.jsonName] = value;
      out.push(message);
    }
  }
  return out;
}
