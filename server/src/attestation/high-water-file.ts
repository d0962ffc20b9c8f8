// The fork guard's memory outside the database: a small JSON file in the data dir holding the
// last checkpoint this host signed (size and root), a checkpoint about to be committed, and a
// refusal that must outlive a restart. One file per log and signing key: a fork is one key signing
// two histories, so a database with another key (a fresh one generates its own; `kapsel keys
// rotate` starts a new one) is another log as far as verifiers go, and starts its own mark. It lives outside Postgres on purpose: a database restored
// from a backup, or a copy of it, brings its own idea of the log with it; this file does not
// travel with it. Replaced durably (temporary file, fsync, rename, directory fsync), so a crash
// leaves either the old or the new content, never a mix.
import { createHash, randomBytes } from "node:crypto";
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";

/** A tree head: what a signed checkpoint states. */
export interface TreeHead {
  readonly size: number;
  readonly root: Buffer;
}

/** Signing stopped for good (until an operator acts): why, since when, and the evidence. */
export interface PersistedRefusal {
  readonly reason: string;
  readonly since: string;
  readonly evidence: string;
}

export interface HighWaterState {
  /** The largest checkpoint this host knows was committed (published). */
  readonly confirmed: TreeHead | undefined;
  /** A checkpoint written here before its transaction committed; the database says whether it did. */
  readonly pending: TreeHead | undefined;
  readonly refused: PersistedRefusal | undefined;
}

interface FileHead {
  size: string;
  root: string;
}

interface StateFile {
  version: 1;
  origin: string;
  /** The signing key's vkey, for the reader: the file is named by its hash. */
  vkey: string;
  confirmed: FileHead | null;
  pending: FileHead | null;
  refused: PersistedRefusal | null;
}

export const EMPTY_STATE: HighWaterState = { confirmed: undefined, pending: undefined, refused: undefined };

/** The high-water file of the log signing as `vkey` under `dir`, named by the vkey's hash. */
export function highWaterPath(dir: string, vkey: string): string {
  return join(dir, `log-high-water-${createHash("sha256").update(vkey).digest("hex").slice(0, 16)}.json`);
}

export class HighWaterFile {
  readonly path: string;
  /** The log's signing key this file is about. */
  readonly vkey: string;
  readonly #origin: string;

  /** The file of the log `origin` whose checkpoints `vkey` signs, kept in `dir`. */
  constructor(dir: string, origin: string, vkey: string) {
    this.path = highWaterPath(dir, vkey);
    this.#origin = origin;
    this.vkey = vkey;
  }

  /** The stored state; EMPTY_STATE when there is no file. Throws when it exists but is unusable. */
  async load(): Promise<HighWaterState> {
    let text: string;
    try {
      text = await readFile(this.path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return EMPTY_STATE;
      throw new Error(`cannot read ${this.path}: ${(err as Error).message}`);
    }
    let file: StateFile;
    try {
      file = JSON.parse(text) as StateFile;
    } catch {
      throw new Error(`${this.path} is not JSON`);
    }
    if (file?.version !== 1 || file.origin !== this.#origin || file.vkey !== this.vkey) {
      throw new Error(`${this.path} is not a version-1 high-water file of log ${this.#origin} signed by ${this.vkey}`);
    }
    return { confirmed: head(file.confirmed, this.path), pending: head(file.pending, this.path), refused: file.refused ?? undefined };
  }

  /** Replaces the file durably. */
  async save(state: HighWaterState): Promise<void> {
    const file: StateFile = {
      version: 1,
      origin: this.#origin,
      vkey: this.vkey,
      confirmed: toFile(state.confirmed),
      pending: toFile(state.pending),
      refused: state.refused ?? null,
    };
    const dir = dirname(this.path);
    await mkdir(dir, { recursive: true });
    // Unique per writer: two processes sharing a data dir never rename each other's half-written file.
    const temporary = `${this.path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
    try {
      const handle = await open(temporary, "w", 0o600);
      try {
        await handle.writeFile(`${JSON.stringify(file, null, 2)}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temporary, this.path);
    } catch (err) {
      await rm(temporary, { force: true });
      throw err;
    }
    const directory = await open(dir, "r");
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
  }
}

function head(value: FileHead | null | undefined, path: string): TreeHead | undefined {
  if (value === null || value === undefined) return undefined;
  const root = Buffer.from(value.root ?? "", "base64");
  if (!/^(0|[1-9]\d*)$/.test(value.size ?? "") || root.length !== 32 || root.toString("base64") !== value.root) {
    throw new Error(`${path} holds a malformed tree head`);
  }
  return { size: Number(value.size), root };
}

function toFile(value: TreeHead | undefined): FileHead | null {
  return value === undefined ? null : { size: String(value.size), root: value.root.toString("base64") };
}
