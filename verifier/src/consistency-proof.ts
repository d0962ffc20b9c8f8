// Consistency proofs as text (ATTESTATION.md §6): one base64 hash a line, the form the CLI reads
// from a file and `GetConsistencyProof` results can be written in.
import { decodeBase64 } from "./base64.ts";
import { VerifyError } from "./failure.ts";
import { HASH_SIZE, MAX_PROOF_HASHES } from "./merkle.ts";
import { textOf, type TextInput } from "./utf8.ts";

/**
 * Parses a consistency proof file. Accepts any input; throws `VerifyError` `PARSE_ERROR` naming
 * the line unless every line is the base64 of a 32-byte hash (at most {@link MAX_PROOF_HASHES}).
 * Empty text is the empty proof (equal sizes); the final newline may be omitted.
 */
export function parseConsistencyProof(input: TextInput): Uint8Array[] {
  const text = textOf(input);
  if (text === undefined) throw new VerifyError("PARSE_ERROR", "proof is not valid UTF-8");
  if (text === "") return [];
  const lines = (text.endsWith("\n") ? text.slice(0, -1) : text).split("\n");
  if (lines.length > MAX_PROOF_HASHES) {
    throw new VerifyError("PARSE_ERROR", `line ${MAX_PROOF_HASHES + 1}: more than ${MAX_PROOF_HASHES} proof hashes`);
  }
  return lines.map((line, i) => {
    const hash = decodeBase64(line);
    if (hash === undefined || hash.length !== HASH_SIZE) {
      throw new VerifyError("PARSE_ERROR", `line ${i + 1}: proof hash is not base64 of 32 bytes`);
    }
    return hash;
  });
}
