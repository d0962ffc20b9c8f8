// RFC 8785 JSON Canonicalization Scheme (JCS) serialization. Receipts are hashed as bytes, so
// the verifier insists they are in the one canonical form: otherwise a log could hold several
// byte-different leaves that all read as "the same" receipt.

/**
 * Serializes a JSON value (as returned by `JSON.parse`) in RFC 8785 canonical form: object
 * members sorted by UTF-16 code units, no whitespace, strings and numbers as ECMAScript's
 * `JSON.stringify` writes them (which is what RFC 8785 §3.2.2 prescribes). Requires a value
 * built from null, booleans, finite numbers, strings, arrays and plain objects.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === "boolean" || typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError("JSON cannot represent a non-finite number");
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object") {
    const record = value as Record<string, unknown>;
    // The default sort compares UTF-16 code units, exactly the order RFC 8785 §3.2.3 requires.
    const members = Object.keys(record)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`);
    return `{${members.join(",")}}`;
  }
  throw new TypeError(`JSON cannot represent a ${typeof value}`);
}
