// `kapsel-verify monitor`: follows a log from the command line, once (for cron) or continuously
// (with Prometheus counters). Exit status: 0 the log behaved; 1 it misbehaved (the evidence is
// printed); 2 usage or state-file problems; 3 the log could not be read (nothing was learned).
import type { Server } from "node:http";
import process from "node:process";
import { parseArgs } from "node:util";
import { checkRecentAttempts, type InclusionReport } from "./attempt-inclusion.ts";
import { UsageError, loadLogKeys, loadWitnessPolicy } from "./cli-inputs.ts";
import { isoTime } from "./cli-format.ts";
import { encodeBase64 } from "./base64.ts";
import { LogAccessError, LogClient } from "./log-client.ts";
import { MonitorMetrics, serveMetrics } from "./monitor-metrics.ts";
import { loadState, saveState } from "./monitor-state.ts";
import { followLog, type Evidence, type FollowedCheckpoint, type MonitorTrust } from "./monitor.ts";

export const MONITOR_USAGE = `  kapsel-verify monitor --url URL --key VKEY [--key VKEY ...] --state FILE [WITNESSES]
        [--once] [--interval SECONDS] [--api-key KEY [--recent N]] [--metrics-listen HOST:PORT]`;

/** Exit statuses of the monitor. */
const EXIT = { ok: 0, misbehaved: 1, usage: 2, unreachable: 3 } as const;

/** Attempt ids remembered as proven, at most; past this the set starts over (they are only re-asked). */
const MAX_REMEMBERED_ATTEMPTS = 50_000;

interface MonitorConfig {
  readonly url: string;
  readonly statePath: string;
  readonly trust: MonitorTrust;
  readonly once: boolean;
  readonly intervalMs: number;
  readonly apiKey: string | undefined;
  readonly recentEvents: number;
  readonly metricsListen: { host: string; port: number } | undefined;
}

/** Runs the monitor with the arguments after `monitor`; resolves with the exit status. */
export async function runMonitor(argv: readonly string[]): Promise<number> {
  const config = parseMonitorArgs(argv);
  const log = new LogClient(config.url, config.apiKey === undefined ? {} : { apiKey: config.apiKey });
  const metrics = new MonitorMetrics();
  const remembered = new Set<string>();
  let stored = loadState(config.statePath, config.trust);

  const round = async (): Promise<number> => {
    try {
      const result = await followLog({ checkpoint: () => log.checkpoint(), tile: (l, n, w) => log.tile(l, n, w) }, stored, config.trust);
      if (result.kind === "misbehaved") {
        metrics.rounds.misbehaved++;
        printEvidence(result.failure.code, result.failure.message, result.evidence, config);
        return EXIT.misbehaved;
      }
      metrics.checkpointsVerified++;
      const latest = result.latest;
      if (result.kind === "advanced") metrics.consistencyProofsVerified++;
      console.log(describeRound(result.kind, latest, stored, result.kind === "advanced" ? result.proof.length : 0));
      if (config.trust.policy !== undefined) console.log(`  witnesses  ${cosigners(latest)}`);
      if (latest.note !== stored?.note) saveState(config.statePath, latest);
      stored = latest;
      metrics.treeSize = latest.facts.treeSize;
      metrics.checkpointTime = latest.facts.timestamp ?? 0n;
      metrics.cosignatures = latest.facts.cosignatures.length;

      if (config.apiKey !== undefined) {
        if (remembered.size > MAX_REMEMBERED_ATTEMPTS) remembered.clear();
        const report = await checkRecentAttempts((s, m, r) => log.rpc(s, m, r), latest, {
          recentEvents: config.recentEvents,
          alreadyVerified: remembered,
        });
        metrics.inclusionProofsVerified += report.verified;
        metrics.inclusionPending += report.pending;
        if (report.findings.length > 0) {
          metrics.rounds.misbehaved++;
          printInclusionEvidence(report, latest);
          return EXIT.misbehaved;
        }
        console.log(`  inclusion  ${report.verified} recent attempt(s) of the tenant proven in the tree of size ${latest.facts.treeSize}` +
          (report.pending > 0 ? `, ${report.pending} not in it yet` : ""));
      }
      metrics.rounds.ok++;
      metrics.lastSuccess = Math.floor(Date.now() / 1000);
      return EXIT.ok;
    } catch (error) {
      if (!(error instanceof LogAccessError)) throw error;
      if (error.refusedCredential) throw new UsageError("REFUSED_CREDENTIAL", `--api-key: the server refused it: ${error.message}`);
      metrics.rounds.unreachable++;
      console.error(`kapsel-verify monitor: cannot read the log: ${error.message}`);
      return EXIT.unreachable;
    }
  };

  if (config.once) return round();

  let stopping = false;
  let wake = (): void => {};
  const stop = () => {
    stopping = true;
    wake();
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  let server: Server | undefined;
  try {
    if (config.metricsListen !== undefined) {
      let served;
      try {
        served = await serveMetrics(config.metricsListen, metrics);
      } catch (error) {
        throw new UsageError("USAGE", `--metrics-listen: cannot listen: ${(error as Error).message}`);
      }
      server = served.server;
      console.log(`metrics at ${served.url}`);
    }
    while (!stopping) {
      const status = await round();
      if (status === EXIT.misbehaved) return status;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, config.intervalMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return EXIT.ok;
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    server?.closeAllConnections();
    server?.close();
  }
}

function parseMonitorArgs(argv: readonly string[]): MonitorConfig {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: false,
      strict: true,
      options: {
        url: { type: "string" },
        key: { type: "string", multiple: true },
        state: { type: "string" },
        witness: { type: "string", multiple: true },
        quorum: { type: "string" },
        policy: { type: "string" },
        once: { type: "boolean" },
        interval: { type: "string" },
        "api-key": { type: "string" },
        recent: { type: "string" },
        "metrics-listen": { type: "string" },
      },
    });
  } catch (error) {
    throw new UsageError("USAGE", `monitor: ${error instanceof Error ? error.message : String(error)}`);
  }
  const { values } = parsed;
  if (values.url === undefined || !/^https?:\/\/[^/]/.test(values.url)) throw new UsageError("USAGE", "monitor needs --url with the log server's http(s) base URL");
  if (values.state === undefined) throw new UsageError("USAGE", "monitor needs --state FILE (where it keeps the last checkpoint it accepted)");
  const policy = loadWitnessPolicy(values);
  const keys = [...loadLogKeys(values.key ?? []), ...(policy?.logs ?? []).map((log) => log.key)];
  if (keys.length === 0) throw new UsageError("USAGE", "at least one --key is required (the log's vkey, obtained out of band)");
  if (values.once === true && values["metrics-listen"] !== undefined) throw new UsageError("USAGE", "--metrics-listen is for continuous mode, not --once");
  if (values.once === true && values.interval !== undefined) throw new UsageError("USAGE", "--interval is for continuous mode, not --once");
  if (values["api-key"] === undefined && values.recent !== undefined) throw new UsageError("USAGE", "--recent needs --api-key");
  const interval = values.interval === undefined ? 60 : Number(values.interval);
  if (!/^\d+(\.\d+)?$/.test(values.interval ?? "60") || interval < 0.1 || interval > 86_400) {
    throw new UsageError("USAGE", `--interval ${values.interval}: expected seconds between 0.1 and 86400`);
  }
  const recent = values.recent === undefined ? 20 : /^[1-9]\d{0,2}$/.test(values.recent) ? Number(values.recent) : 0;
  if (recent < 1 || recent > 500) throw new UsageError("USAGE", `--recent ${values.recent}: expected 1 to 500 events`);
  return {
    url: values.url,
    statePath: values.state,
    trust: { keys, policy },
    once: values.once === true,
    intervalMs: Math.round(interval * 1000),
    apiKey: values["api-key"],
    recentEvents: recent,
    metricsListen: values["metrics-listen"] === undefined ? undefined : parseListen(values["metrics-listen"]),
  };
}

/** HOST:PORT, with [v6] brackets allowed; port 0 picks a free one. */
export function parseListen(value: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  const port = match === null ? NaN : Number(match[3]);
  if (match === null || port > 65_535) throw new UsageError("USAGE", `--metrics-listen ${value}: expected HOST:PORT`);
  return { host: match[1] ?? match[2]!, port };
}

function describeRound(kind: "started" | "unchanged" | "advanced", latest: FollowedCheckpoint, previous: FollowedCheckpoint | undefined, proofLength: number): string {
  const { origin, treeSize, rootHash, timestamp } = latest.facts;
  const signed = timestamp === null ? "no signed time" : `signed ${isoTime(timestamp) ?? timestamp}`;
  switch (kind) {
    case "started":
      return `following ${origin} from size ${treeSize} (root ${encodeBase64(rootHash)}, ${signed}); first checkpoint trusted on first use`;
    case "unchanged":
      return `${origin} unchanged at size ${treeSize} (${signed})`;
    case "advanced":
      return `${origin} grew from size ${previous!.facts.treeSize} to ${treeSize} (${signed}): consistent, ${proofLength}-hash proof from the log's tiles`;
  }
}

function cosigners(latest: FollowedCheckpoint): string {
  const list = latest.facts.cosignatures.map((c) => `${c.witness} at ${isoTime(c.timestamp) ?? c.timestamp}`);
  return list.length === 0 ? "quorum none: no cosignature required" : `quorum met, cosigned by ${list.join(", ")}`;
}

function printEvidence(code: string, message: string, evidence: Evidence, config: MonitorConfig): void {
  console.error(`LOG MISBEHAVED [${code}] ${message}`);
  const lines = [`MISBEHAVED [${code}] ${message}`];
  if (evidence.stored !== undefined) lines.push(`--- checkpoint accepted earlier (state file ${config.statePath})`, evidence.stored.trimEnd());
  lines.push(`--- checkpoint served now by ${config.url.replace(/\/+$/, "")}/log/checkpoint`, evidence.served.trimEnd());
  if (evidence.proof !== undefined) {
    lines.push("--- consistency proof built from the log's tiles (one hash a line)", ...evidence.proof.map(encodeBase64));
  }
  lines.push("--- end of evidence");
  console.log(lines.join("\n"));
}

function printInclusionEvidence(report: InclusionReport, latest: FollowedCheckpoint): void {
  for (const finding of report.findings) {
    console.error(`LOG MISBEHAVED [INCLUSION_FAILED] attempt ${finding.attemptId} of event ${finding.eventId}: ${finding.message}`);
  }
  const lines = [`MISBEHAVED [INCLUSION_FAILED] ${report.findings.length} recent attempt(s) of the tenant are not in the verified log as the API describes them`];
  lines.push(`--- checkpoint accepted (size ${latest.facts.treeSize})`, latest.note.trimEnd());
  for (const finding of report.findings) {
    lines.push(`--- attempt ${finding.attemptId} of event ${finding.eventId}: ${finding.message}`, finding.answer);
  }
  lines.push("--- end of evidence");
  console.log(lines.join("\n"));
}
