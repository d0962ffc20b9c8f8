// The witnesses the log submits its checkpoints to, and the quorum that makes a checkpoint
// "witnessed". KAPSEL_WITNESSES is a contract: comma-separated entries, each the witness's base
// URL and its vkey (C2SP tlog-cosignature, type 0x04) with one space between; add-checkpoint is
// POSTed to <URL>/add-checkpoint. KAPSEL_WITNESS_QUORUM is how many of them must cosign (default
// all). The policy is the verifier's own k-of-n group, so the server and `kapsel-verify --witness
// … --quorum K` name witnesses the same way and agree on when the quorum is met.
import { parseWitnessKey, quorumPolicy, VerifyError, type WitnessKey } from "@kapsel/verify";

/** One configured witness. */
export interface ConfiguredWitness {
  /** Base URL without a trailing slash. */
  readonly url: string;
  readonly key: WitnessKey;
  /** Its name in metrics, logs and /readyz: the key name (plus key ID when two share a name). */
  readonly name: string;
}

export interface WitnessingConfig {
  /** Empty: the log is not witnessed. */
  readonly witnesses: readonly ConfiguredWitness[];
  /** How many witnesses must cosign a checkpoint; 0 when there are none. */
  readonly quorum: number;
  /** Least time between two add-checkpoint submissions of new checkpoints to a witness. */
  readonly intervalMs: number;
  /** Bound on one add-checkpoint exchange (connect, send, answer). */
  readonly timeoutMs: number;
}

/** Most witnesses a log may name (the C2SP tlog-policy limit Kapsel's verifier applies). */
export const MAX_WITNESSES = 64;

/**
 * Parses KAPSEL_WITNESSES and KAPSEL_WITNESS_QUORUM. Throws an Error whose message names the
 * variable and the entry at fault: the caller turns it into a configuration error.
 */
export function parseWitnesses(list: string | undefined, quorum: string | undefined): { witnesses: ConfiguredWitness[]; quorum: number } {
  const entries = (list ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (entries.length > MAX_WITNESSES) throw new Error(`KAPSEL_WITNESSES: at most ${MAX_WITNESSES} witnesses, found ${entries.length}`);
  const parsed = entries.map((entry, i) => {
    const parts = entry.split(" ");
    if (parts.length !== 2) throw new Error(`KAPSEL_WITNESSES entry ${i + 1} ${JSON.stringify(entry)}: expected "URL VKEY" with one space between`);
    const [rawUrl, vkey] = parts as [string, string];
    let url: URL;
    try {
      url = new URL(rawUrl);
    } catch {
      throw new Error(`KAPSEL_WITNESSES entry ${i + 1}: ${JSON.stringify(rawUrl)} is not a URL`);
    }
    if ((url.protocol !== "https:" && url.protocol !== "http:") || url.search !== "" || url.hash !== "" || url.username !== "" || url.password !== "") {
      throw new Error(`KAPSEL_WITNESSES entry ${i + 1}: ${JSON.stringify(rawUrl)} must be an http(s) URL without query, fragment or credentials`);
    }
    let key: WitnessKey;
    try {
      key = parseWitnessKey(vkey);
    } catch (error) {
      if (error instanceof VerifyError) throw new Error(`KAPSEL_WITNESSES entry ${i + 1}: ${error.message}`);
      throw error;
    }
    return { url: url.href.replace(/\/+$/, ""), key };
  });
  if (parsed.length === 0) {
    if (quorum !== undefined) throw new Error("KAPSEL_WITNESS_QUORUM is set but KAPSEL_WITNESSES names no witness");
    return { witnesses: [], quorum: 0 };
  }
  let threshold = parsed.length;
  if (quorum !== undefined) {
    threshold = Number(quorum);
    if (!/^\d+$/.test(quorum) || threshold < 1 || threshold > parsed.length) {
      throw new Error(`KAPSEL_WITNESS_QUORUM=${JSON.stringify(quorum)}: expected an integer from 1 to ${parsed.length} (the witnesses configured)`);
    }
  }
  let policy;
  try {
    policy = quorumPolicy(parsed.map((p) => p.key), threshold);
  } catch (error) {
    if (error instanceof VerifyError) throw new Error(`KAPSEL_WITNESSES: ${error.message}`);
    throw error;
  }
  return { witnesses: parsed.map((p, i) => ({ ...p, name: policy.witnesses[i]!.name })), quorum: threshold };
}
