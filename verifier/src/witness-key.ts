// Witness keys: the Ed25519 keys witnesses cosign checkpoints with (C2SP tlog-cosignature, type
// 0x04), published as vkeys of that type: `<name>+<hex 0x04 key ID>+<base64(0x04 || key)>`. The
// type is part of the key ID, so a witness key can never be mistaken for a log key or the reverse.
import { SIGNATURE_TYPE_COSIGNATURE, computeKeyId } from "./key-id.ts";
import { cosignatureNoteVerifier } from "./cosignature.ts";
import type { NoteVerifier } from "./note.ts";
import { decodeEd25519Vkey } from "./vkey.ts";

/** A parsed witness cosigning key (vkey of signature type 0x04). */
export interface WitnessKey {
  /** The witness's key name, as on its cosignature lines. */
  readonly name: string;
  /** Key ID of type 0x04, as in the vkey and on cosignature lines. */
  readonly keyId: number;
  /** The 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array;
  /** The vkey string this was parsed from. */
  readonly vkey: string;
}

/**
 * Parses a witness vkey. Requires a string; throws `VerifyError` `BAD_KEY` unless it is a valid
 * vkey of signature type 0x04 (a log key of type 0x01 is refused with a message saying so).
 */
export function parseWitnessKey(vkey: string): WitnessKey {
  const { name, publicKey } = decodeEd25519Vkey(vkey, SIGNATURE_TYPE_COSIGNATURE);
  return { name, keyId: computeKeyId(name, SIGNATURE_TYPE_COSIGNATURE, publicKey), publicKey, vkey };
}

/** The note verifier for a witness's cosignature lines. */
export function witnessNoteVerifier(key: WitnessKey): NoteVerifier {
  return cosignatureNoteVerifier(key.name, key.keyId, key.publicKey);
}
