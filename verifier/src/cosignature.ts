// C2SP tlog-cosignature, Ed25519 type 0x04: a note signature line whose payload is
// key ID || u64 big-endian POSIX seconds || Ed25519 signature over
// "cosignature/v1\ntime <seconds>\n" || checkpoint text. Witnesses cosign checkpoints with it,
// and Kapsel's log uses the same format with its own key for the checkpoint's signed time.
import { concatBytes, readUint64 } from "./bytes.ts";
import { SIGNATURE_TYPE_COSIGNATURE } from "./key-id.ts";
import type { NoteVerifier } from "./note.ts";
import { encodeUtf8 } from "./utf8.ts";
import { verifyEd25519 } from "./vkey.ts";

/** The spec's ceiling on cosignature timestamps. */
export const MAX_COSIGNATURE_TIME = (1n << 63n) - 1n;

/** Size of the bytes after the key ID on a 0x04 line: u64 time and an Ed25519 signature. */
export const COSIGNATURE_SIZE = 8 + 64;

/**
 * The POSIX seconds of a 0x04 line's payload (the bytes after the key ID). Requires at least 8
 * bytes; the value is only meaningful once a {@link cosignatureNoteVerifier} has accepted the line.
 */
export function cosignatureTimeOf(signature: Uint8Array): bigint {
  return readUint64(signature, 0);
}

/**
 * The message a 0x04 line signs for `seconds` and the note text. Requires
 * `0 <= seconds <= 2^63-1`.
 */
export function cosignatureMessage(seconds: bigint, text: Uint8Array): Uint8Array {
  return concatBytes(encodeUtf8(`cosignature/v1\ntime ${seconds}\n`), text);
}

/**
 * The note verifier for 0x04 lines of the Ed25519 key `publicKey` named `name`, whose 0x04 key
 * ID is `keyId`. Lines of the wrong size, with a time above 2^63-1, or whose signature does not
 * verify are rejected; a zero time is accepted here (the log's own signed time may be zero in
 * principle) and refused for witnesses by the policy check.
 */
export function cosignatureNoteVerifier(name: string, keyId: number, publicKey: Uint8Array): NoteVerifier {
  return {
    name,
    keyId,
    type: SIGNATURE_TYPE_COSIGNATURE,
    verify(text, signature) {
      if (signature.length !== COSIGNATURE_SIZE) return false;
      const seconds = cosignatureTimeOf(signature);
      if (seconds > MAX_COSIGNATURE_TIME) return false;
      return verifyEd25519(publicKey, cosignatureMessage(seconds, text), signature.subarray(8));
    },
  };
}
