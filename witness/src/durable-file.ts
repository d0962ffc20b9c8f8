// Durable file replacement: the witness must not answer before its new state would survive a
// crash or power loss, and a crash must never leave a torn state file. So: write a temporary
// file beside the target, fsync it, rename it over the target (atomic on POSIX), fsync the
// directory so the rename itself is on disk.
import { randomBytes } from "node:crypto";
import { open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** Replaces `path` with `content`; when this resolves, the new content is on disk. */
export async function writeFileDurably(path: string, content: string): Promise<void> {
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    const file = await open(temporary, "wx", 0o644);
    try {
      await file.writeFile(content);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  await syncDirectory(dirname(path));
}

/** fsyncs a directory, making renames and creations in it durable. */
export async function syncDirectory(path: string): Promise<void> {
  const directory = await open(path, "r");
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}
