#!/usr/bin/env node
// kapsel-verify: the auditor's command line (ATTESTATION.md §8). Exit 0 when the input verifies,
// 1 when it does not (for any reason, malformed content included), 2 for usage errors and
// unreadable files, so scripts can tell "the log lied" from "I typed the path wrong".
// The CLI files (cli*.ts, monitor-*.ts) are the only ones of the package that touch Node APIs,
// and they stay within Node 20's; the library itself runs in browsers too.
import process from "node:process";
import { parseArgs } from "node:util";
import { UsageError, loadLogKeys, loadWitnessPolicy, readFile } from "./cli-inputs.ts";
import { runMonitor, MONITOR_USAGE } from "./monitor-cli.ts";
import { checkpointJson, report, reportFailure, signedTimeText, treeText, witnessLines } from "./cli-format.ts";
import { encodeBase64, verifyCheckpoint, verifyConsistency, verifyProofBundle } from "./index.ts";

const USAGE = `usage:
  kapsel-verify proof FILE --key VKEY [--key VKEY ...] [WITNESSES] [--payload FILE] [--require-time] [--json]
  kapsel-verify checkpoint FILE --key VKEY [--key VKEY ...] [WITNESSES] [--require-time] [--json]
  kapsel-verify consistency OLD_CHECKPOINT NEW_CHECKPOINT PROOF_FILE --key VKEY [--key VKEY ...] [WITNESSES] [--json]
${MONITOR_USAGE}

--key takes a vkey (name+keyid+base64key) or a file with one vkey a line.
WITNESSES: --witness VKEY [--witness VKEY ...] [--quorum K] (K of the witnesses must have cosigned,
default all), or --policy FILE (a C2SP tlog-policy; its log lines count as --key).
Exit status: 0 verified, 1 does not verify, 2 usage error or unreadable file
(monitor: 3 when the log could not be reached).`;

interface Command {
  readonly positionals: number;
  readonly options: readonly string[];
}

const WITNESS_OPTIONS = ["witness", "quorum", "policy"];

const COMMANDS: Readonly<Record<string, Command>> = {
  proof: { positionals: 1, options: ["key", "payload", "require-time", "json", ...WITNESS_OPTIONS] },
  checkpoint: { positionals: 1, options: ["key", "require-time", "json", ...WITNESS_OPTIONS] },
  consistency: { positionals: 3, options: ["key", "json", ...WITNESS_OPTIONS] },
};

async function main(argv: readonly string[]): Promise<number> {
  const json = argv.includes("--json");
  if (argv[0] === "--help" || argv[0] === "-h" || argv[0] === "help") {
    console.log(USAGE);
    return 0;
  }
  try {
    if (argv[0] === "monitor") return await runMonitor(argv.slice(1));
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
        witness: { type: "string", multiple: true },
        quorum: { type: "string" },
        policy: { type: "string" },
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
  const policy = loadWitnessPolicy(values);
  const keys = loadLogKeys(values.key ?? []);
  if (keys.length === 0 && (policy?.logs.length ?? 0) === 0) {
    throw new UsageError("USAGE", "at least one --key is required (the log's vkey, obtained out of band)");
  }
  const requireTimestamp = values["require-time"] === true;
  const witnesses = policy === undefined ? {} : { policy };

  switch (name) {
    case "proof": {
      const bundle = readFile(positionals[0]!, "proof bundle");
      const payload = values.payload === undefined ? undefined : readFile(values.payload, "payload");
      const result = verifyProofBundle(bundle, {
        trustedKeys: keys,
        requireTimestamp,
        ...witnesses,
        ...(payload === undefined ? {} : { payload }),
      });
      if (!result.ok) return reportFailure(result, json);
      const r = result.receipt;
      const status = r.status_code === null ? "no HTTP response" : `HTTP ${r.status_code}`;
      report(json, { ok: true, command: "proof", ...checkpointJson(result, policy), index: String(result.index), receipt: r, payloadVerified: result.payloadVerified }, [
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
        ...witnessLines(policy, result),
        ["payload", result.payloadVerified ? `matches payload_sha256 ${r.payload_sha256}` : "not checked (no --payload)"],
      ]);
      return 0;
    }
    case "checkpoint": {
      const text = readFile(positionals[0]!, "checkpoint");
      const result = verifyCheckpoint(text, keys, { requireTimestamp, ...witnesses });
      if (!result.ok) return reportFailure(result, json);
      report(json, { ok: true, command: "checkpoint", ...checkpointJson(result, policy) }, [
        `VERIFIED: checkpoint of the log ${result.origin}, signed by a trusted key`,
        ["tree size", String(result.treeSize)],
        ["root hash", encodeBase64(result.rootHash)],
        ["signed time", signedTimeText(result.timestamp)],
        ["signing key", result.signedBy.vkey],
        ...witnessLines(policy, result),
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
        witnesses,
      );
      if (!result.ok) return reportFailure(result, json);
      report(json, { ok: true, command: "consistency", old: checkpointJson(result.old, policy), new: checkpointJson(result.new, policy) }, [
        `VERIFIED: the log ${result.new.origin} at size ${result.new.treeSize} extends its tree at size ${result.old.treeSize} (append-only)`,
        ["old tree", treeText(result.old)],
        ["new tree", treeText(result.new)],
        ["signing key", result.new.signedBy.vkey],
        ...witnessLines(policy, result.new),
      ]);
      return 0;
    }
  }
}

process.exitCode = await main(process.argv.slice(2));
