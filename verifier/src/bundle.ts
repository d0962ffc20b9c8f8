// Kapsel proof bundles: C2SP tlog-proof@v1 files (ATTESTATION.md §4). The `extra` line, optional
// in the C2SP format, is required here because it carries the receipt: a bundle without it
// would prove that *something* was logged, not what.
import { decodeBase64 } from "./base64.ts";
import { parseUint64 } from "./decimal.ts";
import { VerifyError } from "./failure.ts";
import { HASH_SIZE, MAX_PROOF_HASHES } from "./merkle.ts";
import { textOf, type TextInput } from "./utf8.ts";

/** First line of every tlog-proof@v1 file. */
export const PROOF_BUNDLE_HEADER = "c2sp.org/tlog-proof@v1";

/** The parts of a proof bundle, none of them verified yet. */
export interface ProofBundle {
  /** The `extra` data: for Kapsel, the canonical receipt bytes (the leaf). */
  readonly extra: Uint8Array;
  /** Zero-based leaf index. */
  readonly index: bigint;
  /** Inclusion proof hashes, the leaf's sibling first. */
  readonly proof: readonly Uint8Array[];
  /** The checkpoint as it appears in the file, signature lines included. */
  readonly checkpoint: string;
  /** Line number where the checkpoint starts, for messages about it. */
  readonly checkpointLine: number;
}

/**
 * Parses a proof bundle. Accepts any input; throws `VerifyError` `PARSE_ERROR` naming the line
 * unless it is: the header, `extra <base64>`, `index <u64>`, at most {@link MAX_PROOF_HASHES}
 * lines each the base64 of a 32-byte hash, one empty line, then a non-empty checkpoint (whose
 * own format is checked when the checkpoint is opened).
 */
export function parseProofBundle(input: TextInput): ProofBundle {
  const text = textOf(input);
  if (text === undefined) throw new VerifyError("PARSE_ERROR", "bundle is not valid UTF-8");
  const lines = text.split("\n");
  const line = (n: number): string | undefined => lines[n - 1];

  if (line(1) !== PROOF_BUNDLE_HEADER) {
    throw new VerifyError("PARSE_ERROR", `line 1: expected "${PROOF_BUNDLE_HEADER}"`);
  }
  const extraLine = line(2) ?? "";
  if (!extraLine.startsWith("extra ")) {
    throw new VerifyError("PARSE_ERROR", 'line 2: expected "extra <base64 receipt>" (Kapsel bundles carry the receipt)');
  }
  const extra = decodeBase64(extraLine.slice("extra ".length));
  if (extra === undefined || extra.length === 0) {
    throw new VerifyError("PARSE_ERROR", "line 2: extra data is not non-empty padded base64");
  }
  const indexLine = line(3) ?? "";
  const index = indexLine.startsWith("index ") ? parseUint64(indexLine.slice("index ".length)) : undefined;
  if (index === undefined) {
    throw new VerifyError("PARSE_ERROR", 'line 3: expected "index <decimal leaf index without leading zeros>"');
  }

  const proof: Uint8Array[] = [];
  let n = 4;
  for (; line(n) !== undefined && line(n) !== ""; n++) {
    if (proof.length === MAX_PROOF_HASHES) {
      throw new VerifyError("PARSE_ERROR", `line ${n}: more than ${MAX_PROOF_HASHES} proof hashes`);
    }
    const hash = decodeBase64(line(n)!);
    if (hash === undefined || hash.length !== HASH_SIZE) {
      throw new VerifyError("PARSE_ERROR", `line ${n}: proof hash is not base64 of 32 bytes`);
    }
    proof.push(hash);
  }
  if (line(n) === undefined) {
    throw new VerifyError("PARSE_ERROR", `line ${n}: missing the empty line before the checkpoint`);
  }
  const checkpointLine = n + 1;
  const checkpoint = lines.slice(n).join("\n");
  if (checkpoint === "") throw new VerifyError("PARSE_ERROR", `line ${checkpointLine}: missing checkpoint`);
  return { extra, index, proof, checkpoint, checkpointLine };
}
