// Standard base64 with padding (RFC 4648 §4), decoded strictly. Every format here is signed or
// hashed as text, so a decoder that accepted two spellings of the same bytes (missing padding,
// stray whitespace, non-zero trailing bits) would let one proof have many byte-different forms.

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const VALUES = new Map<string, number>([...ALPHABET].map((char, value) => [char, value]));

/**
 * Decodes canonical padded base64, or returns `undefined` if `text` is not exactly the encoding
 * {@link encodeBase64} would produce for some bytes. Accepts any string.
 */
export function decodeBase64(text: string): Uint8Array | undefined {
  if (text.length % 4 !== 0) return undefined;
  const padding = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0;
  const out = new Uint8Array((text.length / 4) * 3 - padding);
  let bits = 0;
  let bitCount = 0;
  let written = 0;
  for (let i = 0; i < text.length - padding; i++) {
    const value = VALUES.get(text[i]!);
    if (value === undefined) return undefined;
    bits = ((bits << 6) | value) & 0xffffff;
    bitCount += 6;
    if (bitCount >= 8) {
      bitCount -= 8;
      out[written++] = (bits >> bitCount) & 0xff;
    }
  }
  // Leftover bits that encode no byte must be zero, or the text is not canonical.
  if (bitCount > 0 && (bits & ((1 << bitCount) - 1)) !== 0) return undefined;
  return written === out.length ? out : undefined;
}

/** Encodes bytes as padded standard base64. */
export function encodeBase64(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const b0 = bytes[i]!;
    const b1 = bytes[i + 1];
    const b2 = bytes[i + 2];
    out += ALPHABET[b0 >> 2];
    out += ALPHABET[((b0 & 3) << 4) | ((b1 ?? 0) >> 4)];
    out += b1 === undefined ? "=" : ALPHABET[((b1 & 15) << 2) | ((b2 ?? 0) >> 6)];
    out += b2 === undefined ? "=" : ALPHABET[b2 & 63];
  }
  return out;
}
