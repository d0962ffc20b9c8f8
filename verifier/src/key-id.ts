// Key IDs of the C2SP signed-note spec. The signature type byte is hashed in so that one key can
// sign under several types (Kapsel's log signs 0x01 checkpoints and 0x04 signed times with the
// same Ed25519 key) without a line of one type ever being read as the other.
import { sha256 } from "@noble/hashes/sha2.js";
import { concatBytes, readUint32 } from "./bytes.ts";
import { encodeUtf8 } from "./utf8.ts";

/** Signature type of plain Ed25519 note signatures (c2sp.org/signed-note). */
export const SIGNATURE_TYPE_ED25519 = 0x01;

/** Signature type of timestamped Ed25519 cosignatures (c2sp.org/tlog-cosignature). */
export const SIGNATURE_TYPE_COSIGNATURE = 0x04;

/**
 * `SHA-256(name || 0x0A || type || publicKey)[:4]` as a uint32. Requires a valid key name
 * (see `isValidKeyName`) and the public key bytes as the signature type encodes them.
 */
export function computeKeyId(name: string, type: number, publicKey: Uint8Array): number {
  const digest = sha256(concatBytes(encodeUtf8(name), Uint8Array.of(0x0a, type), publicKey));
  return readUint32(digest, 0);
}

/** A key ID as the 8 lowercase hex digits vkeys use. */
export function keyIdHex(keyId: number): string {
  return keyId.toString(16).padStart(8, "0");
}

// Go's unicode.IsSpace set: JS \s lacks U+0085 (and adds U+FEFF, which only makes us stricter).
const SPACE_OR_PLUS = /[\s\u0085+]/u;

/**
 * Whether `name` may name a key: non-empty, with no Unicode space and no `+` (signed-note spec),
 * so that it survives both the signature line and the vkey `+` separators.
 */
export function isValidKeyName(name: string): boolean {
  return name.length > 0 && !SPACE_OR_PLUS.test(name);
}
