// What the witness remembers per log: the latest checkpoint it cosigned (size, root, the time it
// cosigned at, and the cosigned note itself for monitors). One JSON file per log, named by the
// SHA-256 of the origin, replaced durably on every cosignature. The directory is locked to one
// process: two witnesses sharing it could each cosign a different history.
import { createHash } from "node:crypto";
import { mkdir, open, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { decodeBase64, encodeBase64, parseUint64 } from "@kapsel/verify";
import { writeFileDurably } from "./durable-file.ts";

/** The latest checkpoint the witness cosigned for one log. */
export interface LogState {
  readonly origin: string;
  readonly size: bigint;
  readonly rootHash: Uint8Array;
  /** POSIX seconds of the cosignature; later cosignatures never go below it. */
  readonly timestamp: bigint;
  /** The checkpoint as cosigned: the log's note with the witness's line added. */
  readonly checkpoint: string;
}

/** The state directory cannot be used (locked by another process, unreadable, corrupt). */
export class StateError extends Error {}

interface StateFile {
  version: 1;
  origin: string;
  size: string;
  rootHash: string;
  timestamp: string;
  checkpoint: string;
}

/** Lowercase hex SHA-256 of an origin: the file name, and the C2SP monitoring path segment. */
export function originHash(origin: string): string {
  return createHash("sha256").update(origin, "utf8").digest("hex");
}

export class StateStore {
  readonly #dir: string;
  readonly #cache = new Map<string, LogState | undefined>();

  private constructor(dir: string) {
    this.#dir = dir;
  }

  /** Opens (creating if needed) the state directory and takes its lock. */
  static async open(dir: string): Promise<StateStore> {
    try {
      await mkdir(join(dir, "logs"), { recursive: true, mode: 0o700 });
    } catch (error) {
      throw new StateError(`cannot create state directory ${dir}: ${(error as Error).message}`);
    }
    await takeLock(join(dir, "lock"));
    return new StateStore(dir);
  }

  /** The state of `origin`, or undefined if the witness never cosigned it. Throws StateError if corrupt. */
  async load(origin: string): Promise<LogState | undefined> {
    if (this.#cache.has(origin)) return this.#cache.get(origin);
    const path = this.#path(origin);
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw new StateError(`cannot read ${path}: ${(error as Error).message}`);
      this.#cache.set(origin, undefined);
      return undefined;
    }
    const state = parseState(text, origin, path);
    this.#cache.set(origin, state);
    return state;
  }

  /** Records `state` durably; only then does it become what `load` returns. */
  async save(state: LogState): Promise<void> {
    const file: StateFile = {
      version: 1,
      origin: state.origin,
      size: String(state.size),
      rootHash: encodeBase64(state.rootHash),
      timestamp: String(state.timestamp),
      checkpoint: state.checkpoint,
    };
    await writeFileDurably(this.#path(state.origin), `${JSON.stringify(file, null, 2)}\n`);
    this.#cache.set(state.origin, state);
  }

  /** The stored cosigned checkpoint whose origin hashes to `hash`, among `origins`. */
  async checkpointByHash(hash: string, origins: Iterable<string>): Promise<string | undefined> {
    for (const origin of origins) if (originHash(origin) === hash) return (await this.load(origin))?.checkpoint;
    return undefined;
  }

  /** Releases the lock. */
  async close(): Promise<void> {
    await rm(join(this.#dir, "lock"), { force: true });
  }

  #path(origin: string): string {
    return join(this.#dir, "logs", `${originHash(origin)}.json`);
  }
}

function parseState(text: string, origin: string, path: string): LogState {
  const corrupt = (why: string): never => {
    throw new StateError(`state file ${path} is corrupt (${why}); refusing to guess what was cosigned`);
  };
  let file: Partial<StateFile>;
  try {
    file = JSON.parse(text) as Partial<StateFile>;
  } catch {
    return corrupt("not JSON");
  }
  if (file.version !== 1 || file.origin !== origin) corrupt("wrong version or origin");
  const size = typeof file.size === "string" ? parseUint64(file.size) : undefined;
  const rootHash = typeof file.rootHash === "string" ? decodeBase64(file.rootHash) : undefined;
  const timestamp = typeof file.timestamp === "string" ? parseUint64(file.timestamp) : undefined;
  if (size === undefined || rootHash?.length !== 32 || timestamp === undefined || typeof file.checkpoint !== "string") {
    return corrupt("missing or malformed fields");
  }
  if (!file.checkpoint.startsWith(`${origin}\n${size}\n${file.rootHash}\n`)) corrupt("the checkpoint does not match the size and root");
  return { origin, size, rootHash, timestamp, checkpoint: file.checkpoint };
}

/**
 * Creates the lock file holding this process's id. A lock whose process is gone (a crash, a
 * kill -9) is taken over; a live one is refused.
 */
async function takeLock(path: string): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const file = await open(path, "wx", 0o600);
      await file.writeFile(`${process.pid}\n`);
      await file.close();
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw new StateError(`cannot lock ${path}: ${(error as Error).message}`);
    }
    const pid = Number((await readFile(path, "utf8").catch(() => "")).trim());
    if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) {
      throw new StateError(`the state directory is in use by process ${pid} (lock ${path}); one witness per state directory`);
    }
    await rm(path, { force: true });
  }
  throw new StateError(`cannot lock ${path}: another process keeps taking it`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
