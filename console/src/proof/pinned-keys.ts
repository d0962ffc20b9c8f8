// Log keys the user pinned, per log name (the checkpoint origin). Verification trusts only these:
// never a key the server merely presents. Pinning is always an explicit click; a key the server
// presents that is not pinned is reported (see keyStatus), never adopted.
import { parseVerifierKey } from "@kapsel/verify";
import { readJson, writeJson, removeKey } from "./local-store.ts";

export interface PinnedKey {
  vkey: string;
  pinnedAt: string;
}

const storeKey = (logName: string) => `pinnedKeys.${logName}`;

export function pinnedKeys(logName: string): PinnedKey[] {
  const stored = readJson<PinnedKey[]>(storeKey(logName));
  if (!Array.isArray(stored)) return [];
  // A pinned entry that no longer parses (edited storage) is dropped rather than trusted.
  return stored.filter((k) => {
    try {
      return parseVerifierKey(k.vkey).name === logName;
    } catch {
      return false;
    }
  });
}

/** Pins keys (adding to those already pinned). Each must be a valid vkey named `logName`. */
export function pinKeys(logName: string, vkeys: readonly string[]): PinnedKey[] {
  const current = pinnedKeys(logName);
  const now = new Date().toISOString();
  for (const vkey of vkeys) {
    if (parseVerifierKey(vkey).name !== logName) throw new Error(`key ${vkey} is not named ${logName}`);
    if (!current.some((k) => k.vkey === vkey)) current.push({ vkey, pinnedAt: now });
  }
  writeJson(storeKey(logName), current);
  return current;
}

export function forgetKeys(logName: string): void {
  removeKey(storeKey(logName));
}

export interface ServedKey {
  vkey: string;
  keyId: string;
  /** Unset for the key that signs now. */
  validUntil?: Date;
}

/**
 * How the keys the server presents compare with the pinned ones:
 * - `unpinned`: first use, nothing pinned yet;
 * - `ok`: the key the log signs with now is pinned;
 * - `rotated`: the server still presents a pinned key, as retired, and a new current one;
 * - `replaced`: none of the pinned keys is presented any more (the loud case).
 */
export type KeyStatus = "unpinned" | "ok" | "rotated" | "replaced";

export function keyStatus(pinned: readonly PinnedKey[], served: readonly ServedKey[]): KeyStatus {
  if (pinned.length === 0) return "unpinned";
  const isPinned = (k: ServedKey) => pinned.some((p) => p.vkey === k.vkey);
  const current = served.filter((k) => k.validUntil === undefined);
  if (current.length > 0 && current.every(isPinned)) return "ok";
  return served.some(isPinned) ? "rotated" : "replaced";
}

/** A short fingerprint people can compare: the key ID and the first bytes of the key. */
export function fingerprint(vkey: string): string {
  try {
    const key = parseVerifierKey(vkey);
    const hex = Array.from(key.publicKey.slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
    return `${key.keyId.toString(16).padStart(8, "0")} · ${hex.match(/.{4}/g)!.join(" ")}`;
  } catch {
    return "(malformed key)";
  }
}
