// The signed time of a Kapsel checkpoint: a C2SP tlog-cosignature (type 0x04) line that the log
// adds with its own key. Its payload is key ID || u64 seconds || Ed25519 signature over
// "cosignature/v1\ntime <seconds>\n" || note text. Reusing the cosignature format, rather than an
// extension line, keeps the checkpoint text the three lines every tlog tool understands.
import { concatBytes, readUint64 } from "./bytes.ts";
import { SIGNATURE_TYPE_COSIGNATURE } from "./key-id.ts";
import type { NoteVerifier } from "./note.ts";
import { encodeUtf8 } from "./utf8.ts";
import { verifyEd25519, type VerifierKey } from "./vkey.ts";

/** The spec's ceiling on cosignature timestamps. */
export const MAX_SIGNED_TIME = (1n << 63n) - 1n;

/** Size of the bytes after the key ID on a 0x04 line: u64 time and an Ed25519 signature. */
export const SIGNED_TIME_SIZE = 8 + 64;

/**
 * The POSIX seconds of a 0x04 line's payload (the bytes after the key ID). Requires at least 8
 * bytes; the value is only meaningful once {@link timeNoteVerifier} has accepted the line.
 */
export function signedTimeOf(signature: Uint8Array): bigint {
  return readUint64(signature, 0);
}

/**
 * The message a 0x04 line signs for `seconds` and the note text. Requires
 * `0 <= seconds <= 2^63-1`.
 */
export function signedTimeMessage(seconds: bigint, text: Uint8Array): Uint8Array {
  return concatBytes(encodeUtf8(`cosignature/v1\ntime ${seconds}\n`), text);
}

/**
 * The note verifier for a key's 0x04 signed-time lines. Lines of the wrong size, with a time
 * above 2^63-1, or whose signature does not verify are rejected.
 */
export function timeNoteVerifier(key: VerifierKey): NoteVerifier {
  return {
    name: key.name,
    keyId: key.timeKeyId,
    type: SIGNATURE_TYPE_COSIGNATURE,
    verify(text, signature) {
      if (signature.length !== SIGNED_TIME_SIZE) return false;
      const seconds = signedTimeOf(signature);
      if (seconds > MAX_SIGNED_TIME) return false;
      return verifyEd25519(key.publicKey, signedTimeMessage(seconds, text), signature.subarray(8));
    },
  };
}
