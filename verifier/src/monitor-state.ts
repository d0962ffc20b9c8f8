// The monitor's memory between runs: the last checkpoint it accepted, verbatim, in a small JSON
// file. It is replaced atomically (temporary file, fsync, rename, fsync of the directory), so a
// crash leaves either the old or the new state, never a torn one. On load the checkpoint is
// verified again: a state file edited by hand cannot make the monitor trust a different tree.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { UsageError } from "./cli-inputs.ts";
import type { FollowedCheckpoint, MonitorTrust } from "./monitor.ts";
import { verifyCheckpoint } from "./verify.ts";

const MAX_STATE_BYTES = 1024 * 1024;

interface StateFile {
  readonly version: 1;
  readonly origin: string;
  readonly treeSize: string;
  readonly checkpoint: string;
}

/** The accepted checkpoint in `path`, or undefined if the file does not exist yet. */
export function loadState(path: string, trust: MonitorTrust): FollowedCheckpoint | undefined {
  let text: string;
  try {
    const bytes = readFileSync(path);
    if (bytes.length > MAX_STATE_BYTES) throw new UsageError("BAD_STATE", `state file ${path} is larger than ${MAX_STATE_BYTES} bytes`);
    text = bytes.toString("utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    if (error instanceof UsageError) throw error;
    throw new UsageError("UNREADABLE_FILE", `cannot read state file ${path}: ${(error as Error).message}`);
  }
  let state: Partial<StateFile>;
  try {
    state = JSON.parse(text) as Partial<StateFile>;
  } catch {
    throw new UsageError("BAD_STATE", `state file ${path} is not JSON`);
  }
  if (state.version !== 1 || typeof state.checkpoint !== "string") {
    throw new UsageError("BAD_STATE", `state file ${path} is not a kapsel-verify monitor state (version 1 with a checkpoint)`);
  }
  // The quorum was checked when the checkpoint was accepted; the keys decide whether it is ours.
  const facts = verifyCheckpoint(state.checkpoint, trust.keys);
  if (!facts.ok) throw new UsageError("BAD_STATE", `state file ${path} holds a checkpoint that does not verify with the given keys: ${facts.message}`);
  if (state.origin !== facts.origin || state.treeSize !== String(facts.treeSize)) {
    throw new UsageError("BAD_STATE", `state file ${path}: its origin and tree size do not match its checkpoint`);
  }
  return { note: state.checkpoint, facts };
}

/** Replaces the state file with `latest`, atomically and durably. */
export function saveState(path: string, latest: FollowedCheckpoint): void {
  const state: StateFile = { version: 1, origin: latest.facts.origin, treeSize: String(latest.facts.treeSize), checkpoint: latest.note };
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    const fd = openSync(temporary, "w", 0o644);
    try {
      writeSync(fd, `${JSON.stringify(state, null, 2)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
    const dir = openSync(dirname(path), "r");
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  } catch (error) {
    rmSync(temporary, { force: true });
    throw new UsageError("UNREADABLE_FILE", `cannot write state file ${path}: ${(error as Error).message}`);
  }
}
