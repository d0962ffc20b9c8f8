// Reading signed checkpoints, and the in-process notice of new ones for WatchCheckpoints.
import { EventEmitter } from "node:events";
import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";

export interface StoredCheckpoint {
  treeSize: number;
  rootHash: Buffer;
  note: string;
  signedAt: Date;
}

const row = z.object({ tree_size: z.string(), root_hash: z.instanceof(Buffer), note: z.string(), signed_at: z.date() });

export function toCheckpoint(r: z.infer<typeof row>): StoredCheckpoint {
  return { treeSize: Number(r.tree_size), rootHash: r.root_hash, note: r.note, signedAt: r.signed_at };
}

export async function latestCheckpoint(db: CommonQueryMethods): Promise<StoredCheckpoint | undefined> {
  const r = await db.maybeOne(sql.type(row)`SELECT tree_size, root_hash, note, signed_at FROM checkpoints ORDER BY tree_size DESC LIMIT 1`);
  return r ? toCheckpoint(r) : undefined;
}

export async function allCheckpoints(db: CommonQueryMethods): Promise<(StoredCheckpoint & { keyId: Buffer })[]> {
  const rows = await db.any(sql.type(row.extend({ key_id: z.instanceof(Buffer) }))`
    SELECT tree_size, root_hash, note, signed_at, key_id FROM checkpoints ORDER BY tree_size`);
  return rows.map((r) => ({ ...toCheckpoint(r), keyId: r.key_id }));
}

export class CheckpointFeed {
  readonly #emitter = new EventEmitter().setMaxListeners(0);

  published(checkpoint: StoredCheckpoint): void {
    this.#emitter.emit("checkpoint", checkpoint);
  }

  /** Resolves with the next checkpoint signed in this process, or undefined after timeoutMs or abort. */
  next(timeoutMs: number, signal: AbortSignal): Promise<StoredCheckpoint | undefined> {
    return new Promise((resolve) => {
      const done = (c?: StoredCheckpoint) => {
        clearTimeout(timer);
        this.#emitter.off("checkpoint", done);
        signal.removeEventListener("abort", onAbort);
        resolve(c);
      };
      const onAbort = () => done();
      const timer = setTimeout(done, timeoutMs);
      this.#emitter.on("checkpoint", done);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }
}
