// What the kapsel-verify commands read from their arguments: files, log keys, witness keys and
// policies. Problems here are the caller's (exit 2), never a verdict about the log (exit 1).
// Node-only, like the rest of the CLI.
import { readFileSync, statSync } from "node:fs";
import { VerifyError } from "./failure.ts";
import { parseVerifierKey, type VerifierKey } from "./vkey.ts";
import { parseWitnessKey, type WitnessKey } from "./witness-key.ts";
import { parseWitnessPolicy, quorumPolicy, type WitnessPolicy } from "./witness-policy.ts";

/** Why a command could not run (exit 2), as opposed to why the input does not verify. */
export type UsageCode = "USAGE" | "UNREADABLE_FILE" | "BAD_KEY" | "BAD_POLICY" | "BAD_STATE" | "REFUSED_CREDENTIAL";

/** A problem with how the command was called, as opposed to what it was asked to verify. */
export class UsageError extends Error {
  readonly code: UsageCode;
  constructor(code: UsageCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** Reads `--key` values: each a file of vkeys (blank lines and `#` comments allowed) or one vkey. */
export function loadLogKeys(values: readonly string[]): VerifierKey[] {
  return values.flatMap((value) => loadVkeys(value, "--key", parseVerifierKey));
}

/** Reads `--witness` values the same way, as witness (type 0x04) vkeys. */
export function loadWitnessKeys(values: readonly string[]): WitnessKey[] {
  return values.flatMap((value) => loadVkeys(value, "--witness", parseWitnessKey));
}

/** The witness flags of a command, as parseArgs returns them. */
export interface WitnessFlags {
  readonly witness?: readonly string[] | undefined;
  readonly quorum?: string | undefined;
  readonly policy?: string | undefined;
}

/**
 * The witness policy `--policy FILE`, or `--witness VKEY… [--quorum K]` describe, or undefined
 * when neither is given. Throws UsageError for conflicting flags, unreadable or malformed
 * policies, bad witness keys and quorums outside 1..n.
 */
export function loadWitnessPolicy(flags: WitnessFlags): WitnessPolicy | undefined {
  const witnesses = flags.witness ?? [];
  if (flags.policy !== undefined) {
    if (witnesses.length > 0 || flags.quorum !== undefined) {
      throw new UsageError("USAGE", "--policy already names the witnesses and the quorum; do not add --witness or --quorum");
    }
    return asUsage("BAD_POLICY", `--policy ${flags.policy}`, () => parseWitnessPolicy(readFile(flags.policy!, "policy file")));
  }
  if (witnesses.length === 0) {
    if (flags.quorum !== undefined) throw new UsageError("USAGE", "--quorum needs --witness");
    return undefined;
  }
  const keys = loadWitnessKeys(witnesses);
  const quorum = flags.quorum === undefined ? keys.length : /^[1-9][0-9]{0,3}$/.test(flags.quorum) ? Number(flags.quorum) : NaN;
  if (Number.isNaN(quorum)) throw new UsageError("USAGE", `--quorum ${flags.quorum}: expected a whole number of witnesses`);
  return asUsage("BAD_POLICY", "--quorum", () => quorumPolicy(keys, quorum));
}

/** Whether `path` names a regular file (a `--key` value may be a file or a vkey). */
export function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Reads a whole file; an unreadable one is a UsageError naming `what` it was meant to be. */
export function readFile(path: string, what: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new UsageError("UNREADABLE_FILE", `cannot read ${what} ${path}: ${reason}`);
  }
}

function loadVkeys<T>(value: string, flag: string, parse: (vkey: string) => T): T[] {
  if (isFile(value)) {
    const lines = new TextDecoder().decode(readFile(value, "key file")).split("\n");
    const keys = lines.flatMap((line, i) => {
      const vkey = line.trim();
      if (vkey === "" || vkey.startsWith("#")) return [];
      return [asUsage("BAD_KEY", `${flag} ${value}, line ${i + 1}`, () => parse(vkey))];
    });
    if (keys.length === 0) throw new UsageError("BAD_KEY", `${flag} ${value}: the file holds no vkey`);
    return keys;
  }
  return [asUsage("BAD_KEY", `${flag} (neither a file nor a valid vkey)`, () => parse(value))];
}

function asUsage<T>(code: UsageCode, where: string, run: () => T): T {
  try {
    return run();
  } catch (error) {
    if (error instanceof VerifyError) throw new UsageError(code, `${where}: ${error.message}`);
    throw error;
  }
}
