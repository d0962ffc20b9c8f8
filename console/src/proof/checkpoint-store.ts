// The last checkpoint this browser verified, per log, and the fork alarm once one is raised. The
// alarm is evidence: both signed checkpoints (and the proof that failed to link them), kept until
// the user clears it on purpose.
import { readJson, removeKey, writeJson } from "./local-store.ts";

export interface StoredCheckpoint {
  /** The signed note, verbatim. */
  text: string;
  treeSize: string;
  verifiedAt: string;
}

export interface ForkAlarm {
  logName: string;
  reason: string;
  /** The checkpoint verified earlier. */
  old: string;
  /** The checkpoint that does not extend it. */
  new: string;
  /** The consistency proof the server gave (base64 hashes, one a line); empty if none applied. */
  proof: string;
  detectedAt: string;
}

export function lastCheckpoint(logName: string): StoredCheckpoint | undefined {
  const stored = readJson<StoredCheckpoint>(`lastCheckpoint.${logName}`);
  return stored && typeof stored.text === "string" && typeof stored.treeSize === "string" ? stored : undefined;
}

export function saveLastCheckpoint(logName: string, text: string, treeSize: bigint): void {
  writeJson(`lastCheckpoint.${logName}`, { text, treeSize: treeSize.toString(), verifiedAt: new Date().toISOString() });
}

export function forkAlarm(logName: string): ForkAlarm | undefined {
  return readJson<ForkAlarm>(`forkAlarm.${logName}`);
}

export function raiseForkAlarm(alarm: ForkAlarm): void {
  // The first alarm is the evidence; a later one must not overwrite it.
  if (!forkAlarm(alarm.logName)) writeJson(`forkAlarm.${alarm.logName}`, alarm);
}

export function clearForkAlarm(logName: string): void {
  removeKey(`forkAlarm.${logName}`);
}

export function forgetCheckpoint(logName: string): void {
  removeKey(`lastCheckpoint.${logName}`);
}
