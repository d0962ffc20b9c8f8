// The witness (C2SP tlog-witness add-checkpoint): it cosigns a log's checkpoint only if the log
// signed it and it extends — by a verified consistency proof — the checkpoint the witness cosigned
// last for that log. Check and record happen under one per-log lock, and the record is on disk
// before the answer leaves, so the witness never cosigns two different trees of one size: not
// under concurrent requests, not across restarts.
import {
  decodeBase64,
  ed25519NoteVerifier,
  emptyRoot,
  encodeBase64,
  openNote,
  parseNote,
  parseUint64,
  verifyConsistencyProof,
  VerifyError,
  type VerifierKey,
} from "@kapsel/verify";
import { MalformedRequest, parseAddCheckpoint } from "./add-checkpoint-request.ts";
import type { LogState, StateStore } from "./state-store.ts";
import type { WitnessKey } from "./witness-key.ts";

/** An HTTP answer, with a line for the witness's own log. */
export interface Verdict {
  readonly status: 200 | 400 | 403 | 404 | 409 | 422;
  readonly body: string;
  readonly contentType: string;
  /** What happened, for the operator (the full checkpoint when a log was caught misbehaving). */
  readonly logLine: string;
}

export interface WitnessOptions {
  readonly key: WitnessKey;
  /** Trusted log keys by origin (several per origin during a key rotation). */
  readonly logs: ReadonlyMap<string, readonly VerifierKey[]>;
  readonly store: StateStore;
  /** POSIX seconds now; injected for tests. */
  readonly now?: () => bigint;
}

const TEXT = "text/plain; charset=utf-8";

export class Witness {
  readonly #key: WitnessKey;
  readonly #logs: ReadonlyMap<string, readonly VerifierKey[]>;
  readonly #store: StateStore;
  readonly #now: () => bigint;
  readonly #queues = new Map<string, Promise<unknown>>();

  constructor(options: WitnessOptions) {
    this.#key = options.key;
    this.#logs = options.logs;
    this.#store = options.store;
    this.#now = options.now ?? (() => BigInt(Math.floor(Date.now() / 1000)));
  }

  /** The origins this witness follows. */
  get origins(): Iterable<string> {
    return this.#logs.keys();
  }

  /**
   * Handles one add-checkpoint body. Resolves with the answer the spec prescribes; rejects only
   * when the state cannot be read or written (then nothing was cosigned).
   */
  async addCheckpoint(body: Uint8Array): Promise<Verdict> {
    let request;
    try {
      request = parseAddCheckpoint(body);
    } catch (error) {
      if (error instanceof MalformedRequest) return refuse(400, `malformed request: ${error.message}`);
      throw error;
    }
    const firstNewline = request.checkpoint.indexOf(0x0a);
    const origin = firstNewline < 0 ? undefined : new TextDecoder("utf-8", { fatal: false }).decode(request.checkpoint.subarray(0, firstNewline));
    if (origin === undefined) return refuse(400, "malformed request: the checkpoint has no origin line");
    const keys = this.#logs.get(origin);
    if (keys === undefined) return refuse(404, `unknown log origin "${origin}"`);

    // 403: no signature of a trusted key, or a line claiming one that does not verify.
    let note;
    try {
      note = parseNote(request.checkpoint);
    } catch (error) {
      if (error instanceof VerifyError) return refuse(403, `${origin}: not a signed note: ${error.message}`);
      throw error;
    }
    // A note carries at most one line per key; refusing repeats bounds the signature checks an
    // unauthenticated request can cause to one per trusted key.
    const claims = note.signatures.filter((line) => keys.some((key) => key.name === line.name && key.keyId === line.keyId));
    if (claims.length > new Set(claims.map((line) => line.keyId)).size) return refuse(403, `${origin}: the log's key signs a note once, this one has repeated lines`);
    const opened = openNote(note, keys.map(ed25519NoteVerifier));
    if (opened.failed.length > 0) return refuse(403, `${origin}: a signature line of the log's key does not verify`);
    if (opened.verified.length === 0) return refuse(403, `${origin}: no signature from the log's key`);

    const parsed = parseCheckpointText(note.text);
    if (typeof parsed === "string") return refuse(400, `${origin}: malformed checkpoint: ${parsed}`);
    const { size, rootHash } = parsed;
    if (request.oldSize > size) return refuse(400, `${origin}: old size ${request.oldSize} is above the checkpoint's size ${size}`);

    return this.#serialise(origin, async () => {
      const recorded = await this.#store.load(origin);
      const recordedSize = recorded?.size ?? 0n;
      if (request.oldSize !== recordedSize) {
        return {
          status: 409,
          body: `${recordedSize}\n`,
          contentType: "text/x.tlog.size",
          logLine: `409 ${origin}: old size ${request.oldSize}, but the last cosigned size is ${recordedSize}`,
        };
      }
      const inconsistent = (why: string): Verdict =>
        refuse(422, `${origin}: ${why}`, `REFUSED ${origin}: ${why}; the log signed:\n${new TextDecoder().decode(request.checkpoint)}`);
      if (size === 0n && !bytesEqual(rootHash, emptyRoot())) return inconsistent("a checkpoint of size 0 must have the empty tree's root");
      if (request.oldSize === 0n) {
        if (request.proof.length > 0) return inconsistent("old size 0 takes an empty proof");
      } else if (request.oldSize === size) {
        if (!bytesEqual(rootHash, recorded!.rootHash)) {
          return inconsistent(`size ${size} was cosigned with root ${encodeBase64(recorded!.rootHash)}, this checkpoint has root ${encodeBase64(rootHash)}`);
        }
        if (request.proof.length > 0) return inconsistent("equal sizes take an empty proof");
      } else {
        const result = verifyConsistencyProof(request.oldSize, size, request.proof, recorded!.rootHash, rootHash);
        if (!result.ok) return inconsistent(`no consistency from the cosigned size ${request.oldSize} to ${size}: ${result.message}`);
      }

      // Cosignature times never go backwards for a log, even if the clock does.
      const now = this.#now();
      const timestamp = recorded !== undefined && recorded.timestamp > now ? recorded.timestamp : now;
      const line = this.#key.cosign(new TextEncoder().encode(note.text), timestamp);
      const state: LogState = { origin, size, rootHash, timestamp, checkpoint: `${new TextDecoder().decode(request.checkpoint)}${line}` };
      await this.#store.save(state);
      return { status: 200, body: line, contentType: TEXT, logLine: `200 ${origin}: cosigned size ${size} (from ${request.oldSize}) at ${timestamp}` };
    });
  }

  /** The latest cosigned checkpoint of the log whose origin hashes to `hash` (C2SP monitoring API). */
  checkpoint(hash: string): Promise<string | undefined> {
    return this.#store.checkpointByHash(hash, this.#logs.keys());
  }

  /** Runs `task` after every earlier task for `origin` has settled. */
  #serialise<T>(origin: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#queues.get(origin) ?? Promise.resolve();
    const run = previous.then(task);
    const tail = run.catch(() => undefined);
    this.#queues.set(origin, tail);
    void tail.then(() => {
      if (this.#queues.get(origin) === tail) this.#queues.delete(origin);
    });
    return run;
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a).equals(b);
}

/** Origin, size and root of a checkpoint's note text; extension lines are allowed and ignored. */
function parseCheckpointText(text: string): { size: bigint; rootHash: Uint8Array } | string {
  const lines = text.split("\n");
  if (lines.length < 4) return "fewer than three lines (origin, size, root hash)";
  const size = parseUint64(lines[1]!);
  if (size === undefined) return `tree size "${lines[1]}" is not a decimal u64 without leading zeros`;
  const rootHash = decodeBase64(lines[2]!);
  if (rootHash === undefined || rootHash.length !== 32) return "the root hash is not base64 of 32 bytes";
  if (lines.slice(3, -1).some((line) => line === "")) return "an extension line is empty";
  return { size, rootHash };
}

function refuse(status: Verdict["status"], reason: string, logLine = `${status} ${reason}`): Verdict {
  return { status, body: `${reason}\n`, contentType: TEXT, logLine };
}
