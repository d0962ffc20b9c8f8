// The body of a C2SP tlog-witness add-checkpoint request:
//   old <size>\n  <base64 hash>\n × 0..63  \n  <checkpoint note>
// Parsed strictly and within bounds before anything is verified; every violation is a 400.
import { decodeBase64, parseUint64 } from "@kapsel/verify";

/** The spec's limit on consistency proof lines. */
export const MAX_PROOF_LINES = 63;

/** A parsed request, nothing verified yet. */
export interface AddCheckpointRequest {
  /** The size of the checkpoint the client believes the witness last cosigned. */
  readonly oldSize: bigint;
  /** RFC 6962 consistency proof from `oldSize` to the checkpoint's size. */
  readonly proof: readonly Uint8Array[];
  /** The signed checkpoint note, as sent. */
  readonly checkpoint: Uint8Array;
}

/** A request that is not in the add-checkpoint format (answered 400). */
export class MalformedRequest extends Error {}

const NEWLINE = 0x0a;
const OLD_LINE = /^old (0|[1-9][0-9]*)$/;
// A 32-byte hash in padded base64 is exactly 44 characters.
const HASH_LINE_LENGTH = 44;

/** Parses an add-checkpoint body. Accepts any bytes; throws MalformedRequest naming the problem. */
export function parseAddCheckpoint(body: Uint8Array): AddCheckpointRequest {
  let offset = 0;
  const nextLine = (what: string, maxLength: number): string => {
    const end = body.indexOf(NEWLINE, offset);
    if (end < 0) throw new MalformedRequest(`missing ${what} (every line ends in a newline)`);
    if (end - offset > maxLength) throw new MalformedRequest(`${what} is longer than ${maxLength} bytes`);
    const line = String.fromCharCode(...body.subarray(offset, end));
    offset = end + 1;
    return line;
  };

  const oldLine = nextLine("the old size line", 32);
  const match = OLD_LINE.exec(oldLine);
  const oldSize = match === null ? undefined : parseUint64(match[1]!);
  if (oldSize === undefined) throw new MalformedRequest('the first line must be "old <size>" (decimal, no leading zeros)');

  const proof: Uint8Array[] = [];
  for (;;) {
    const line = nextLine("the empty line before the checkpoint", HASH_LINE_LENGTH);
    if (line === "") break;
    if (proof.length === MAX_PROOF_LINES) throw new MalformedRequest(`more than ${MAX_PROOF_LINES} consistency proof lines`);
    const hash = decodeBase64(line);
    if (hash === undefined || hash.length !== 32) throw new MalformedRequest(`proof line ${proof.length + 1} is not the base64 of a 32-byte hash`);
    proof.push(hash);
  }
  const checkpoint = body.subarray(offset);
  if (checkpoint.length === 0) throw new MalformedRequest("missing the checkpoint after the empty line");
  return { oldSize, proof, checkpoint };
}
