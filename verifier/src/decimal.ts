// Unsigned 64-bit decimals as the text formats write them: ASCII digits, no sign, no leading
// zeros. Sizes and indexes are 64-bit in the log, so they are BigInt here.

/** The largest value a u64 field can hold. */
export const MAX_UINT64 = (1n << 64n) - 1n;

const DECIMAL = /^(?:0|[1-9][0-9]*)$/;

/**
 * Parses a u64 in canonical decimal form, or returns `undefined` (leading zeros, signs, spaces,
 * overflow). Accepts any string.
 */
export function parseUint64(text: string): bigint | undefined {
  if (text.length > 20 || !DECIMAL.test(text)) return undefined;
  const value = BigInt(text);
  return value <= MAX_UINT64 ? value : undefined;
}
