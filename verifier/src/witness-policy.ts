// Witness policies: which witnesses must have cosigned a checkpoint before it is believed (C2SP
// tlog-policy). A checkpoint signed only by the log could be one of two histories the log shows
// to different people; cosignatures from independent witnesses, each of which checked that the
// checkpoint extends everything it cosigned before, make such a split view visible.
//
// A policy file lists logs (`log <vkey> [<url>]`), witnesses (`witness <name> <vkey> [<url>]`),
// groups (`group <name> all|any|<k> <member>…`) and exactly one `quorum <name>` (or `quorum
// none`). Names are local to the file, shared by witnesses and groups, and defined before use.
import { bytesEqual } from "./bytes.ts";
import { VerifyError } from "./failure.ts";
import { keyIdHex } from "./key-id.ts";
import { textOf, type TextInput } from "./utf8.ts";
import { parseVerifierKey, type VerifierKey } from "./vkey.ts";
import { parseWitnessKey, type WitnessKey } from "./witness-key.ts";

/** A witness as a policy names it. */
export interface PolicyWitness {
  /** The policy's name for it (for a policy built from vkeys: the key name). */
  readonly name: string;
  readonly key: WitnessKey;
  /** The witness's submission prefix, when the policy gives one. */
  readonly url: string | undefined;
}

/** A log a policy accepts. */
export interface PolicyLog {
  readonly key: VerifierKey;
  readonly url: string | undefined;
}

/** The rule a set of cosignatures must satisfy. */
export type Quorum =
  | { readonly kind: "none" }
  | { readonly kind: "witness"; readonly name: string; readonly witness: PolicyWitness }
  | { readonly kind: "group"; readonly name: string; readonly threshold: number; readonly members: readonly Quorum[] };

/** A parsed witness policy. */
export interface WitnessPolicy {
  /** Logs whose checkpoints the policy accepts (may be empty: then the log keys come from elsewhere). */
  readonly logs: readonly PolicyLog[];
  readonly witnesses: readonly PolicyWitness[];
  readonly quorum: Quorum;
}

/** Limits on what a policy may hold; the spec asks implementations to support at least 32 of each. */
export const POLICY_LIMITS = { bytes: 64 * 1024, lineLength: 4096, logs: 64, witnesses: 64, groups: 64 } as const;

const FORBIDDEN = /[\u0000-\u0008\u000a-\u001f\u007f]/;
const DECIMAL = /^[1-9][0-9]*$/;

/**
 * Parses a C2SP tlog-policy file. Accepts any input; throws `VerifyError` `BAD_POLICY` naming the
 * line unless it is valid UTF-8 within {@link POLICY_LIMITS}, every non-empty, non-comment line
 * is a well-formed `log`, `witness`, `group` or `quorum` line referring only to names defined
 * above it, no key appears twice, and there is exactly one quorum. Witness keys must be Ed25519
 * cosigning keys (type 0x04); ML-DSA-44 witnesses (0x06) are not supported.
 */
export function parseWitnessPolicy(input: TextInput): WitnessPolicy {
  const size = typeof input === "string" ? input.length : input.byteLength;
  if (size > POLICY_LIMITS.bytes) throw new VerifyError("BAD_POLICY", `policy is larger than ${POLICY_LIMITS.bytes} bytes`);
  const text = textOf(input);
  if (text === undefined) throw new VerifyError("BAD_POLICY", "policy is not valid UTF-8");

  const logs: PolicyLog[] = [];
  const witnesses: PolicyWitness[] = [];
  const names = new Map<string, Quorum>();
  let groups = 0;
  let quorum: Quorum | undefined;

  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  for (const [i, raw] of lines.entries()) {
    const fail = (message: string): never => {
      throw new VerifyError("BAD_POLICY", `policy line ${i + 1}: ${message}`);
    };
    if (raw.length > POLICY_LIMITS.lineLength) fail(`longer than ${POLICY_LIMITS.lineLength} characters`);
    const bad = FORBIDDEN.exec(raw);
    if (bad !== null) {
      const code = bad[0].charCodeAt(0).toString(16).padStart(4, "0");
      fail(`control character U+${code} is not allowed (only tab and newline)${bad[0] === "\r" ? " (CRLF line ends?)" : ""}`);
    }
    const line = raw.replace(/^[ \t]+|[ \t]+$/g, "");
    if (line === "" || line.startsWith("#")) continue;
    const [keyword, ...fields] = line.split(/[ \t]+/) as [string, ...string[]];
    const key = <T>(parse: (vkey: string) => T, vkey: string): T => {
      try {
        return parse(vkey);
      } catch (error) {
        if (error instanceof VerifyError) return fail(error.message);
        throw error;
      }
    };
    const newName = (name: string): string => {
      if (name === "none") fail(`"none" is predefined and cannot be redefined`);
      if (names.has(name)) fail(`"${name}" is already defined`);
      return name;
    };

    switch (keyword) {
      case "log": {
        if (fields.length < 1 || fields.length > 2) fail("expected: log <vkey> [<url>]");
        if (logs.length === POLICY_LIMITS.logs) fail(`more than ${POLICY_LIMITS.logs} logs`);
        const log = key(parseVerifierKey, fields[0]!);
        if (logs.some((other) => bytesEqual(other.key.publicKey, log.publicKey))) fail("this log key is listed twice");
        logs.push({ key: log, url: fields[1] });
        break;
      }
      case "witness": {
        if (fields.length < 2 || fields.length > 3) fail("expected: witness <name> <vkey> [<url>]");
        if (witnesses.length === POLICY_LIMITS.witnesses) fail(`more than ${POLICY_LIMITS.witnesses} witnesses`);
        const name = newName(fields[0]!);
        const witnessKey = key(parseWitnessKey, fields[1]!);
        const twin = witnesses.find((other) => bytesEqual(other.key.publicKey, witnessKey.publicKey));
        if (twin !== undefined) fail(`witness "${name}" has the same public key as witness "${twin.name}"`);
        const witness = { name, key: witnessKey, url: fields[2] };
        witnesses.push(witness);
        names.set(name, { kind: "witness", name, witness });
        break;
      }
      case "group": {
        if (fields.length < 3) fail("expected: group <name> all|any|<k> <member>...");
        if (groups === POLICY_LIMITS.groups) fail(`more than ${POLICY_LIMITS.groups} groups`);
        const name = newName(fields[0]!);
        const memberNames = fields.slice(2);
        const members = memberNames.map((member, j) => {
          if (member === "none") fail(`"none" cannot be a group member`);
          if (memberNames.indexOf(member) !== j) fail(`"${member}" is listed twice in the group`);
          return names.get(member) ?? fail(`"${member}" is not defined above this line`);
        });
        const rule = fields[1]!;
        const threshold =
          rule === "all" ? members.length : rule === "any" ? 1 : DECIMAL.test(rule) && rule.length <= 3 ? Number(rule) : 0;
        if (threshold < 1 || threshold > members.length) {
          fail(`the threshold must be all, any, or a number from 1 to ${members.length}, not "${rule}"`);
        }
        names.set(name, { kind: "group", name, threshold, members });
        groups++;
        break;
      }
      case "quorum": {
        if (fields.length !== 1) fail("expected: quorum <name>");
        if (quorum !== undefined) fail("a policy has exactly one quorum line");
        const name = fields[0]!;
        quorum = name === "none" ? { kind: "none" } : (names.get(name) ?? fail(`"${name}" is not defined above this line`));
        break;
      }
      default:
        fail(`unknown keyword "${keyword}" (expected log, witness, group or quorum)`);
    }
  }
  if (quorum === undefined) throw new VerifyError("BAD_POLICY", "policy has no quorum line");
  return { logs, witnesses, quorum };
}

/**
 * The policy "at least `threshold` of these witnesses" (default: all of them), as `--witness`
 * and `--quorum` describe it. Requires parsed keys; throws `VerifyError` `BAD_POLICY` if there
 * are none, two share a public key, or the threshold is not an integer from 1 to their number.
 */
export function quorumPolicy(keys: readonly WitnessKey[], threshold = keys.length): WitnessPolicy {
  if (keys.length === 0) throw new VerifyError("BAD_POLICY", "a quorum needs at least one witness key");
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > keys.length) {
    throw new VerifyError("BAD_POLICY", `the quorum must be a whole number from 1 to ${keys.length} (the witnesses given), not ${threshold}`);
  }
  const witnesses = keys.map((key, i): PolicyWitness => {
    if (keys.findIndex((other) => bytesEqual(other.publicKey, key.publicKey)) !== i) {
      throw new VerifyError("BAD_POLICY", `witness key ${key.vkey} is given twice`);
    }
    const shared = keys.some((other) => other !== key && other.name === key.name);
    return { name: shared ? `${key.name}+${keyIdHex(key.keyId)}` : key.name, key, url: undefined };
  });
  const members = witnesses.map((witness): Quorum => ({ kind: "witness", name: witness.name, witness }));
  return { logs: [], witnesses, quorum: { kind: "group", name: "witnesses", threshold, members } };
}

/** Whether the witnesses named in `cosigned` (policy names) satisfy `quorum`. */
export function quorumMet(quorum: Quorum, cosigned: ReadonlySet<string>): boolean {
  switch (quorum.kind) {
    case "none":
      return true;
    case "witness":
      return cosigned.has(quorum.name);
    case "group":
      return quorum.members.filter((member) => quorumMet(member, cosigned)).length >= quorum.threshold;
  }
}

/**
 * Says why `quorum` is not met by `cosigned`: each unmet group with its count, then every
 * witness whose cosignature would have counted and is missing. Requires an unmet quorum.
 */
export function explainQuorum(quorum: Quorum, cosigned: ReadonlySet<string>): string {
  const groups: string[] = [];
  const missing: string[] = [];
  const visit = (rule: Quorum): void => {
    if (rule.kind === "witness") {
      if (!cosigned.has(rule.name) && !missing.includes(rule.name)) missing.push(rule.name);
    } else if (rule.kind === "group" && !quorumMet(rule, cosigned)) {
      const met = rule.members.filter((member) => quorumMet(member, cosigned)).length;
      const of = rule.members.map((member) => (member.kind === "none" ? "none" : member.name)).join(", ");
      groups.push(`group ${rule.name} needs ${rule.threshold} of ${rule.members.length} (${of}) and has ${met}`);
      rule.members.forEach(visit);
    }
  };
  visit(quorum);
  const witnesses = new Map<string, PolicyWitness>();
  const collect = (rule: Quorum): void => {
    if (rule.kind === "witness") witnesses.set(rule.name, rule.witness);
    if (rule.kind === "group") rule.members.forEach(collect);
  };
  collect(quorum);
  const names = missing.map((name) => `${name} (${witnesses.get(name)!.key.vkey})`);
  return [...groups, `no valid cosignature from ${names.join(", ")}`].join("; ");
}
