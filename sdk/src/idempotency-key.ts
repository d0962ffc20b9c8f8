// Idempotency keys for Ingest: the same key for the same endpoint within the server's
// deduplication window (24 h by default) yields the first event instead of a second one, which
// makes retrying an Ingest call safe. Keys are lowercase hex: printable ASCII, well under the
// server's 255-character limit.
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";

/** A fresh random key (128 bits). Create it once per event and reuse it for every retry. */
export function idempotencyKey(): string {
  return bytesToHex(crypto.getRandomValues(new Uint8Array(16)));
}

/**
 * A key derived from what identifies the event in your system, e.g.
 * `idempotencyKeyFrom("order-paid", order.id)`: every process that handles the same order derives
 * the same key, so a crash between "sent" and "recorded as sent" cannot produce a duplicate.
 * Parts are compared as strings (`1` and `"1"` give the same key); their boundaries count
 * (`("ab", "c")` and `("a", "bc")` differ). Requires at least one part.
 */
export function idempotencyKeyFrom(...parts: readonly (string | number | bigint)[]): string {
  if (parts.length === 0) throw new TypeError("idempotencyKeyFrom needs at least one part");
  // JSON keeps part boundaries unambiguous; the prefix keeps these hashes apart from others'.
  const text = `kapsel-idempotency-key-v1\n${JSON.stringify(parts.map(String))}`;
  return bytesToHex(sha256(new TextEncoder().encode(text)));
}
