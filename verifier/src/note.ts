// C2SP signed notes (c2sp.org/signed-note): a text ending in a newline, an empty line, then
// signature lines "— <key name> base64(key ID || signature)". The parser is strict because the
// signed bytes are the text itself: anything a lenient parser repaired would no longer be what
// was signed.
import { decodeBase64 } from "./base64.ts";
import { readUint32 } from "./bytes.ts";
import { VerifyError, failure, type Outcome } from "./failure.ts";
import { SIGNATURE_TYPE_ED25519, isValidKeyName, keyIdHex } from "./key-id.ts";
import { encodeUtf8, textOf, type TextInput } from "./utf8.ts";
import { verifyEd25519, type VerifierKey } from "./vkey.ts";

/** Upper bound on signature lines, as in Go's golang.org/x/mod/sumdb/note (the spec asks ≥ 16). */
export const MAX_NOTE_SIGNATURES = 100;

const SIGNATURE_PREFIX = "\u2014 ";
// Control characters other than newline are forbidden by the spec; \r is the one that matters in
// practice (a checkpoint saved with CRLF line ends no longer matches its signature).
const CONTROL = /[\u0000-\u0009\u000b-\u001f]/;

/** One signature line of a note. */
export interface NoteSignature {
  readonly name: string;
  readonly keyId: number;
  /** The signature bytes after the 4-byte key ID. */
  readonly signature: Uint8Array;
  /** 1-based line number in the text the note was parsed from. */
  readonly line: number;
}

/** A parsed, not yet verified, signed note. */
export interface SignedNote {
  /** The signed text, final newline included. */
  readonly text: string;
  readonly signatures: readonly NoteSignature[];
}

/** Options for {@link parseNote}. */
export interface ParseNoteOptions {
  /** Line number of the note's first line inside a larger file, for error messages. Default 1. */
  readonly firstLine?: number;
}

/**
 * Parses a signed note. Accepts any input; throws `VerifyError` `PARSE_ERROR`, naming the line,
 * unless it is valid UTF-8 without control characters other than newline, ends in a newline, and
 * after its last empty line has 1 to {@link MAX_NOTE_SIGNATURES} well-formed signature lines.
 */
export function parseNote(input: TextInput, options: ParseNoteOptions = {}): SignedNote {
  const firstLine = options.firstLine ?? 1;
  const message = textOf(input);
  if (message === undefined) throw new VerifyError("PARSE_ERROR", "note is not valid UTF-8");
  checkNoteCharacters(message, firstLine);
  if (!message.endsWith("\n")) {
    throw new VerifyError("PARSE_ERROR", `line ${firstLine + newlines(message)}: note does not end in a newline`);
  }
  const split = message.lastIndexOf("\n\n");
  if (split < 0) throw new VerifyError("PARSE_ERROR", "note has no empty line before its signatures");
  const text = message.slice(0, split + 1);
  const lines = message.slice(split + 2, -1).split("\n");
  const firstSignatureLine = firstLine + newlines(text) + 1;
  if (lines.length === 1 && lines[0] === "") {
    throw new VerifyError("PARSE_ERROR", `line ${firstSignatureLine}: note has no signature lines`);
  }
  if (lines.length > MAX_NOTE_SIGNATURES) {
    throw new VerifyError("PARSE_ERROR", `note has ${lines.length} signature lines, more than ${MAX_NOTE_SIGNATURES}`);
  }
  const signatures = lines.map((line, i) => parseSignatureLine(line, firstSignatureLine + i));
  return { text, signatures };
}

function parseSignatureLine(line: string, lineNumber: number): NoteSignature {
  if (!line.startsWith(SIGNATURE_PREFIX)) {
    throw new VerifyError("PARSE_ERROR", `line ${lineNumber}: signature line does not start with "— " (U+2014, space)`);
  }
  const rest = line.slice(SIGNATURE_PREFIX.length);
  const space = rest.indexOf(" ");
  const name = space < 0 ? rest : rest.slice(0, space);
  const encoded = space < 0 ? "" : rest.slice(space + 1);
  if (!isValidKeyName(name)) throw new VerifyError("PARSE_ERROR", `line ${lineNumber}: invalid key name "${name}"`);
  const bytes = decodeBase64(encoded);
  if (bytes === undefined || bytes.length < 5) {
    throw new VerifyError("PARSE_ERROR", `line ${lineNumber}: signature is not base64 of a key ID and a signature`);
  }
  return { name, keyId: readUint32(bytes, 0), signature: bytes.subarray(4), line: lineNumber };
}

/**
 * A key that can check note signature lines. `type` is the signature type byte the key ID was
 * computed with, so callers can tell which kind of line failed.
 */
export interface NoteVerifier {
  readonly name: string;
  readonly keyId: number;
  readonly type: number;
  /** Checks `signature` (the bytes after the key ID) over the UTF-8 note text. Never throws. */
  verify(text: Uint8Array, signature: Uint8Array): boolean;
}

/** A signature line matched to the verifier whose name and key ID it carries. */
export interface CheckedSignature {
  readonly signature: NoteSignature;
  readonly verifier: NoteVerifier;
}

/** Every known-key line of a note, sorted by whether it verified. */
export interface OpenedNote {
  readonly text: string;
  readonly verified: readonly CheckedSignature[];
  readonly failed: readonly CheckedSignature[];
}

/**
 * Checks every signature line whose name and key ID both match a verifier, and ignores the
 * rest (the spec requires ignoring unknown keys, which is what lets witnesses and rotated keys
 * add lines). Requires a parsed note; never throws. The policy (which failures are fatal, which
 * key must have signed) is the caller's: see {@link verifyNote}.
 */
export function openNote(note: SignedNote, verifiers: readonly NoteVerifier[]): OpenedNote {
  const textBytes = encodeUtf8(note.text);
  const verified: CheckedSignature[] = [];
  const failed: CheckedSignature[] = [];
  for (const signature of note.signatures) {
    const verifier = verifiers.find((v) => v.name === signature.name && v.keyId === signature.keyId);
    if (verifier === undefined) continue;
    (verifier.verify(textBytes, signature.signature) ? verified : failed).push({ signature, verifier });
  }
  return { text: note.text, verified, failed };
}

/**
 * Verifies a signed note under the signed-note spec's rules: a line from a known key that does
 * not verify rejects the note (`BAD_SIGNATURE`), and at least one known key must have signed
 * (`NO_TRUSTED_SIGNATURE`). Accepts any input; malformed notes give `PARSE_ERROR`. Never throws.
 */
export function verifyNote(
  input: TextInput,
  verifiers: readonly NoteVerifier[],
): Outcome<{ readonly text: string; readonly verified: readonly CheckedSignature[] }> {
  let note: SignedNote;
  try {
    note = parseNote(input);
  } catch (error) {
    if (error instanceof VerifyError) return failure(error.code, `note: ${error.message}`);
    throw error;
  }
  const opened = openNote(note, verifiers);
  const bad = opened.failed[0];
  if (bad !== undefined) {
    return failure(
      "BAD_SIGNATURE",
      `note signature: line ${bad.signature.line} from key ${bad.verifier.name}+${keyIdHex(bad.verifier.keyId)} does not verify`,
    );
  }
  if (opened.verified.length === 0) {
    return failure("NO_TRUSTED_SIGNATURE", "note signature: no line is signed by a known key");
  }
  return { ok: true, text: opened.text, verified: opened.verified };
}

/** The plain Ed25519 (type 0x01) note verifier for a vkey. */
export function ed25519NoteVerifier(key: VerifierKey): NoteVerifier {
  return {
    name: key.name,
    keyId: key.keyId,
    type: SIGNATURE_TYPE_ED25519,
    verify: (text, signature) => verifyEd25519(key.publicKey, text, signature),
  };
}

function checkNoteCharacters(message: string, firstLine: number): void {
  const match = CONTROL.exec(message);
  if (match === null) return;
  const line = firstLine + newlines(message.slice(0, match.index));
  const code = match[0].charCodeAt(0).toString(16).padStart(4, "0");
  const hint = match[0] === "\r" ? " (CRLF line ends? the signed text uses \\n only)" : "";
  throw new VerifyError("PARSE_ERROR", `line ${line}: control character U+${code} is not allowed${hint}`);
}

function newlines(text: string): number {
  let count = 0;
  for (const char of text) if (char === "\n") count++;
  return count;
}
