// How the kapsel-verify commands print what they verified: aligned "label  value" lines for
// people, one JSON object for scripts (64-bit numbers as decimal strings).
import { encodeBase64 } from "./base64.ts";
import type { Failure } from "./failure.ts";
import type { CheckpointFacts } from "./verify.ts";
import type { WitnessPolicy } from "./witness-policy.ts";

/** One output line: a sentence, or a label and its value. */
export type ReportLine = string | readonly [string, string];

/** The "witnesses" line of a verified checkpoint, when a witness policy was given. */
export function witnessLines(policy: WitnessPolicy | undefined, facts: CheckpointFacts): (readonly [string, string])[] {
  if (policy === undefined) return [];
  if (facts.cosignatures.length === 0) return [["witnesses", "quorum none: no cosignature required, none present"]];
  const cosigners = facts.cosignatures.map((c) => `${c.witness} at ${isoTime(c.timestamp) ?? `${c.timestamp} s`}`);
  return [["witnesses", `quorum met, cosigned by ${cosigners.join(", ")}`]];
}

/** A checkpoint's facts for `--json`; `cosignatures` only when a witness policy was given. */
export function checkpointJson(facts: CheckpointFacts, policy?: WitnessPolicy): Record<string, unknown> {
  return {
    origin: facts.origin,
    treeSize: String(facts.treeSize),
    rootHash: encodeBase64(facts.rootHash),
    timestamp: facts.timestamp === null ? null : String(facts.timestamp),
    time: facts.timestamp === null ? null : isoTime(facts.timestamp),
    signingKey: facts.signedBy.vkey,
    ...(policy === undefined
      ? {}
      : {
          cosignatures: facts.cosignatures.map((c) => ({
            witness: c.witness,
            vkey: c.key.vkey,
            timestamp: String(c.timestamp),
            time: isoTime(c.timestamp),
          })),
        }),
  };
}

/** "size N, root R, signed T" for a checkpoint. */
export function treeText(facts: CheckpointFacts): string {
  const time = facts.timestamp === null ? "no signed time" : `signed ${isoTime(facts.timestamp) ?? facts.timestamp}`;
  return `size ${facts.treeSize}, root ${encodeBase64(facts.rootHash)}, ${time}`;
}

export function signedTimeText(seconds: bigint | null): string {
  if (seconds === null) return "none (the checkpoint carries no signed time)";
  return `${isoTime(seconds) ?? `${seconds} s after the epoch`} (signed by the log with the checkpoint)`;
}

/** ISO 8601 for POSIX seconds, or null beyond what a JS Date can hold. */
export function isoTime(seconds: bigint): string | null {
  if (seconds > 8_640_000_000_000n) return null;
  return new Date(Number(seconds) * 1000).toISOString().replace(".000Z", "Z");
}

export function report(json: boolean, object: Record<string, unknown>, lines: readonly ReportLine[]): void {
  if (json) {
    console.log(JSON.stringify(object));
    return;
  }
  for (const line of lines) console.log(typeof line === "string" ? line : `  ${line[0].padEnd(12)} ${line[1]}`);
}

export function reportFailure(result: Failure, json: boolean): number {
  if (json) console.log(JSON.stringify({ ok: false, code: result.code, message: result.message }));
  console.error(`NOT VERIFIED [${result.code}] ${result.message}`);
  return 1;
}
