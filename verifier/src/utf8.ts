// UTF-8 at the edges. Signed notes are defined over bytes, so text handed in as bytes must decode
// exactly, and text handed in as a string must encode back to the bytes that were signed.

const encoder = new TextEncoder();
// ignoreBOM keeps a leading U+FEFF in the text so that the strict checks see and reject it,
// instead of the decoder silently dropping three bytes of a signed or hashed message.
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Encodes a string as UTF-8. Requires a well-formed string ({@link isWellFormedText}). */
export function encodeUtf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Decodes UTF-8, or returns `undefined` for invalid sequences. */
export function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return decoder.decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * Whether a JS string has no lone surrogates, i.e. encodes to UTF-8 without replacement
 * characters. (`String.prototype.isWellFormed` is not in every runtime this package supports.)
 */
export function isWellFormedText(text: string): boolean {
  return !LONE_SURROGATE.test(text);
}

/** Text accepted by the parsers: a string, or the raw bytes of a file (strict UTF-8). */
export type TextInput = string | Uint8Array;

/** Turns {@link TextInput} into a string, or `undefined` if it is not valid UTF-8 / well formed. */
export function textOf(input: TextInput): string | undefined {
  if (typeof input === "string") return isWellFormedText(input) ? input : undefined;
  return decodeUtf8(input);
}
