#!/usr/bin/env node
// kapsel-verify: the auditor's command line (ATTESTATION.md §8). Exit 0 when the input verifies,
// 1 when it does not (for any reason, malformed content included), 2 for usage errors and
// unreadable files, so scripts can tell "the log lied" from "I typed the path wrong".
// This is the only file of the package that touches Node APIs, and it stays within Node 20's.
import { readFileSync, statSync } from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import {
  encodeBase64,
  parseVerifierKey,
  verifyCheckpoint,
  verifyConsistency,
  verifyProofBundle,
  VerifyError,
  type CheckpointFacts,
  type Failure,
  type VerifierKey,
} from "./index.ts";

const USAGE = `usage:
  kapsel-verify proof FILE --key VKEY [--key VKEY ...] [--payload FILE] [--require-time] [--json]
  kapsel-verify checkpoint FILE --key VKEY [--key VKEY ...] [--require-time] [--json]
  kapsel-verify consistency OLD_CHECKPOINT NEW_CHECKPOINT PROOF_FILE --key VKEY [--key VKEY ...] [--json]

--key takes a vkey (name+keyid+base64key) or a file with one vkey a line.
Exit status: 0 verified, 1 does not verify, 2 usage error or unreadable file.`;

/** Why the command could not run (exit 2), as opposed to why the input does not verify. */
type UsageCode = "USAGE" | "UNREADABLE_FILE" | "BAD_KEY";

/** A problem with how the command was called, as opposed to what it was asked to verify. */
class UsageError extends Error {
  readonly code: UsageCode;
  constructor(code: UsageCode, message: string) {
    super(message);
    this.code = code;
  }
}

interface Command {
  readonly positionals: number;
  readonly options: readonly string[];
}

const COMMANDS: Readonly<Record<string, Command>> = {
  proof: { positionals: 1, options: ["key", "payload", "require-time", "json"] },
  checkpoint: { positionals: 1, options: ["key", "require-time", "json"] },
  consistency: { positionals: 3, options: ["key", "json"] },
};

function main(argv: readonly string[]): number {
  const json = argv.includes("--json");
  if (argv[0] === "--help" || argv[0] === "-h" || argv[0] === "help") {
    console.log(USAGE);
    return 0;
  }
  try {
    return runCommand(argv, json);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    if (json) console.log(JSON.stringify({ ok: false, code: error.code, message: error.message }));
    console.error(`kapsel-verify: ${error.message}`);
    if (error.code === "USAGE") console.error(USAGE);
    return 2;
  }
}

function runCommand(argv: readonly string[], json: boolean): number {
  const [name, ...rest] = argv;
  if (name === undefined) throw new UsageError("USAGE", "no command given");
  const command = COMMANDS[name];
  if (command === undefined) throw new UsageError("USAGE", `unknown command "${name}"`);
  let parsed;
  try {
    parsed = parseArgs({
      args: [...rest],
      allowPositionals: true,
      strict: true,
      options: {
        key: { type: "string", multiple: true },
        payload: { type: "string" },
        "require-time": { type: "boolean" },
        json: { type: "boolean" },
      },
    });
  } catch (error) {
    throw new UsageError("USAGE", error instanceof Error ? error.message : String(error));
  }
  const { values, positionals } = parsed;
  for (const option of Object.keys(values)) {
    if (!command.options.includes(option)) throw new UsageError("USAGE", `${name} does not take --${option}`);
  }
  if (positionals.length !== command.positionals) {
    throw new UsageError("USAGE", `${name} takes ${command.positionals} file argument(s), got ${positionals.length}`);
  }
  if (values.key === undefined || values.key.length === 0) {
    throw new UsageError("USAGE", "at least one --key is required (the log's vkey, obtained out of band)");
  }
  const keys = values.key.flatMap(loadKeys);
  const requireTimestamp = values["require-time"] === true;

  switch (name) {
    case "proof": {
      const bundle = readFile(positionals[0]!, "proof bundle");
      const payload = values.payload === undefined ? undefined : readFile(values.payload, "payload");
      const result = verifyProofBundle(bundle, {
        trustedKeys: keys,
        requireTimestamp,
        ...(payload === undefined ? {} : { payload }),
      });
      if (!result.ok) return reportFailure(result, json);
      const r = result.receipt;
      const status = r.status_code === null ? "no HTTP response" : `HTTP ${r.status_code}`;
      report(json, { ok: true, command: "proof", ...checkpointJson(result), index: String(result.index), receipt: r, payloadVerified: result.payloadVerified }, [
        `VERIFIED: this delivery attempt is recorded in the log ${result.origin}`,
        ["destination", r.url],
        ["attempt", `#${r.attempt} of event ${r.event_id} (attempt id ${r.attempt_id})`],
        ["outcome", `${r.outcome}, ${status}`],
        ["started at", `${r.started_at} (took ${r.duration_ms} ms)`],
        ["signed time", signedTimeText(result.timestamp)],
        ["leaf index", String(result.index)],
        ["tree size", String(result.treeSize)],
        ["root hash", encodeBase64(result.rootHash)],
        ["signing key", result.signedBy.vkey],
        ["payload", result.payloadVerified ? `matches payload_sha256 ${r.payload_sha256}` : "not checked (no --payload)"],
      ]);
      return 0;
    }
    case "checkpoint": {
      const text = readFile(positionals[0]!, "checkpoint");
      const result = verifyCheckpoint(text, keys, { requireTimestamp });
      if (!result.ok) return reportFailure(result, json);
      report(json, { ok: true, command: "checkpoint", ...checkpointJson(result) }, [
        `VERIFIED: checkpoint of the log ${result.origin}, signed by a trusted key`,
        ["tree size", String(result.treeSize)],
        ["root hash", encodeBase64(result.rootHash)],
        ["signed time", signedTimeText(result.timestamp)],
        ["signing key", result.signedBy.vkey],
      ]);
      return 0;
    }
    default: {
      const [oldPath, newPath, proofPath] = positionals as [string, string, string];
      const result = verifyConsistency(
        readFile(oldPath, "old checkpoint"),
        readFile(newPath, "new checkpoint"),
        readFile(proofPath, "consistency proof"),
        keys,
      );
      if (!result.ok) return reportFailure(result, json);
      report(json, { ok: true, command: "consistency", old: checkpointJson(result.old), new: checkpointJson(result.new) }, [
        `VERIFIED: the log ${result.new.origin} at size ${result.new.treeSize} extends its tree at size ${result.old.treeSize} (append-only)`,
        ["old tree", treeText(result.old)],
        ["new tree", treeText(result.new)],
        ["signing key", result.new.signedBy.vkey],
      ]);
      return 0;
    }
  }
}

/** Reads `--key` values: a file of vkeys (blank lines and `#` comments allowed) or one vkey. */
function loadKeys(value: string): VerifierKey[] {
  if (isFile(value)) {
    const lines = new TextDecoder().decode(readFile(value, "key file")).split("\n");
    const keys = lines.flatMap((line, i) => {
      const vkey = line.trim();
      if (vkey === "" || vkey.startsWith("#")) return [];
      return [parseKey(vkey, `--key ${value}, line ${i + 1}`)];
    });
    if (keys.length === 0) throw new UsageError("BAD_KEY", `--key ${value}: the file holds no vkey`);
    return keys;
  }
  return [parseKey(value, "--key (neither a file nor a valid vkey)")];
}

function parseKey(vkey: string, where: string): VerifierKey {
  try {
    return parseVerifierKey(vkey);
  } catch (error) {
    if (error instanceof VerifyError) throw new UsageError("BAD_KEY", `${where}: ${error.message}`);
    throw error;
  }
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function readFile(path: string, what: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new UsageError("UNREADABLE_FILE", `cannot read ${what} ${path}: ${reason}`);
  }
}

function checkpointJson(facts: CheckpointFacts): Record<string, unknown> {
  return {
    origin: facts.origin,
    treeSize: String(facts.treeSize),
    rootHash: encodeBase64(facts.rootHash),
    timestamp: facts.timestamp === null ? null : String(facts.timestamp),
    time: facts.timestamp === null ? null : isoTime(facts.timestamp),
    signingKey: facts.signedBy.vkey,
  };
}

function treeText(facts: CheckpointFacts): string {
  const time = facts.timestamp === null ? "no signed time" : `signed ${isoTime(facts.timestamp) ?? facts.timestamp}`;
  return `size ${facts.treeSize}, root ${encodeBase64(facts.rootHash)}, ${time}`;
}

function signedTimeText(seconds: bigint | null): string {
  if (seconds === null) return "none (the checkpoint carries no signed time)";
  return `${isoTime(seconds) ?? `${seconds} s after the epoch`} (signed by the log with the checkpoint)`;
}

/** ISO 8601 for POSIX seconds, or null beyond what a JS Date can hold. */
function isoTime(seconds: bigint): string | null {
  if (seconds > 8_640_000_000_000n) return null;
  return new Date(Number(seconds) * 1000).toISOString().replace(".000Z", "Z");
}

function report(json: boolean, object: Record<string, unknown>, lines: readonly (string | readonly [string, string])[]): void {
  if (json) {
    console.log(JSON.stringify(object));
    return;
  }
  for (const line of lines) console.log(typeof line === "string" ? line : `  ${line[0].padEnd(12)} ${line[1]}`);
}

function reportFailure(result: Failure, json: boolean): number {
  if (json) console.log(JSON.stringify({ ok: false, code: result.code, message: result.message }));
  console.error(`NOT VERIFIED [${result.code}] ${result.message}`);
  return 1;
}

process.exitCode = main(process.argv.slice(2));
