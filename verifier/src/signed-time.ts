// The signed time of a Kapsel checkpoint: a C2SP tlog-cosignature (type 0x04) line that the log
// adds with its own key. Reusing the cosignature format, rather than an extension line, keeps the
// checkpoint text the three lines every tlog tool understands.
import { cosignatureMessage, cosignatureNoteVerifier } from "./cosignature.ts";
import type { NoteVerifier } from "./note.ts";
import type { VerifierKey } from "./vkey.ts";

/** The message a 0x04 signed-time line signs (the cosignature message; kept under this name). */
export const signedTimeMessage = cosignatureMessage;

/** The note verifier for a log key's 0x04 signed-time lines. */
export function timeNoteVerifier(key: VerifierKey): NoteVerifier {
  return cosignatureNoteVerifier(key.name, key.timeKeyId, key.publicKey);
}
