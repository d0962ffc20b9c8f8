// Verifier keys ("vkeys") as published by signed-note logs:
//   <name>+<hex key ID>+<base64(signature type || public key)>
// The auditor gets this string out of band; it is the only thing a verification trusts.
import { ed25519 } from "@noble/curves/ed25519.js";
import { decodeBase64 } from "./base64.ts";
import { VerifyError } from "./failure.ts";
import {
  SIGNATURE_TYPE_COSIGNATURE,
  SIGNATURE_TYPE_ED25519,
  computeKeyId,
  isValidKeyName,
  keyIdHex,
} from "./key-id.ts";

/** A parsed Ed25519 (type 0x01) verifier key. */
export interface VerifierKey {
  /** Key name; for a Kapsel log, the log's origin. */
  readonly name: string;
  /** Key ID of type 0x01, as in the vkey and on checkpoint signature lines. */
  readonly keyId: number;
  /** Key ID of the same key for type 0x04 signed-time lines. */
  readonly timeKeyId: number;
  /** The 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array;
  /** The vkey string this was parsed from. */
  readonly vkey: string;
}

const HEX_KEY_ID = /^[0-9a-f]{8}$/;

/** The parts every Ed25519 vkey has, whatever its signature type. */
export interface Ed25519Vkey {
  readonly name: string;
  readonly publicKey: Uint8Array;
}

/**
 * Parses a vkey. Requires a string; throws `VerifyError` `BAD_KEY` unless it has a valid name,
 * an 8-hex-digit key ID that matches the key, type byte 0x01 and a 32-byte public key that is a
 * valid Ed25519 point. The key ID check catches copy-paste damage to the key material.
 */
export function parseVerifierKey(vkey: string): VerifierKey {
  const { name, publicKey } = decodeEd25519Vkey(vkey, SIGNATURE_TYPE_ED25519);
  return {
    name,
    keyId: computeKeyId(name, SIGNATURE_TYPE_ED25519, publicKey),
    timeKeyId: computeKeyId(name, SIGNATURE_TYPE_COSIGNATURE, publicKey),
    publicKey,
    vkey,
  };
}

const TYPE_HINTS: Readonly<Record<number, string>> = {
  [SIGNATURE_TYPE_ED25519]: "a log key (type 0x01); witness keys are type 0x04",
  [SIGNATURE_TYPE_COSIGNATURE]: "a witness cosigning key (type 0x04), not a log key (type 0x01)",
};

/**
 * Decodes `<name>+<hex key ID>+<base64(type || 32-byte Ed25519 key)>` for signature type `type`
 * (0x01 log keys, 0x04 witness cosigning keys). Requires a string; throws `VerifyError`
 * `BAD_KEY` unless the name is valid, the type byte is `type`, the key is a valid Ed25519 point,
 * and the key ID is the one `type`, name and key hash to.
 */
export function decodeEd25519Vkey(vkey: string, type: number): Ed25519Vkey {
  // Split at the first two "+" only: names cannot contain "+", but base64 can.
  const first = vkey.indexOf("+");
  const second = first < 0 ? -1 : vkey.indexOf("+", first + 1);
  if (second < 0) throw new VerifyError("BAD_KEY", `vkey "${vkey}" is not <name>+<key ID>+<base64 key>`);
  const name = vkey.slice(0, first);
  const hex = vkey.slice(first + 1, second);
  const encoded = vkey.slice(second + 1);
  if (!isValidKeyName(name)) throw new VerifyError("BAD_KEY", `vkey "${vkey}" has an invalid name`);
  // Go's note package reads the hex case-insensitively; published vkeys use lowercase.
  if (!HEX_KEY_ID.test(hex.toLowerCase())) {
    throw new VerifyError("BAD_KEY", `vkey "${vkey}" has a key ID that is not 8 hex digits`);
  }
  const material = decodeBase64(encoded);
  if (material === undefined || material.length === 0) {
    throw new VerifyError("BAD_KEY", `vkey "${vkey}" has invalid base64 key material`);
  }
  if (material[0] !== type) {
    const found = `0x${material[0]!.toString(16).padStart(2, "0")}`;
    const hint = TYPE_HINTS[material[0]!] ?? `only Ed25519 type 0x${type.toString(16).padStart(2, "0")} is supported here`;
    throw new VerifyError("BAD_KEY", `vkey "${vkey}" has signature type ${found}: ${hint}`);
  }
  const publicKey = material.slice(1);
  if (publicKey.length !== 32) {
    throw new VerifyError("BAD_KEY", `vkey "${vkey}" has a ${publicKey.length}-byte key, not 32`);
  }
  const keyId = computeKeyId(name, type, publicKey);
  if (keyIdHex(keyId) !== hex.toLowerCase()) {
    throw new VerifyError("BAD_KEY", `vkey "${vkey}" has key ID ${hex} but its key hashes to ${keyIdHex(keyId)}`);
  }
  if (!ed25519.utils.isValidPublicKey(publicKey, false)) {
    throw new VerifyError("BAD_KEY", `vkey "${vkey}" is not a valid Ed25519 public key`);
  }
  return { name, publicKey };
}

/**
 * Checks an Ed25519 signature strictly (RFC 8032, not the more permissive ZIP-215 rules), so a
 * signature has exactly one accepted encoding. Accepts any bytes; never throws.
 */
export function verifyEd25519(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64 || publicKey.length !== 32) return false;
  try {
    return ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}
