// The webhook receiver for bench/delivery.ts and bench/e2e.ts, run as its own process
// (child_process.fork) so its CPU is not the benchmark's: answers every request with 200 at once
// and keeps, for the parent, the arrival time of every request and the first arrival of each
// webhook-id. Times are wall-clock milliseconds with sub-millisecond resolution
// (timeOrigin + performance.now()), comparable with the parent's and the load generator's.
//
// Bodies written by the e2e load generator start with `{"sent_at":<ms>,"step":<n>,"seq":<n>,`;
// for those the sink also keeps, per step, the first arrival of each (path, seq), so the harness
// gets deliveries and ingest→delivered latency per step whatever system relayed them (Kapsel's
// webhook-id is its own event id; the peers' ids are theirs). The path tells fan-out endpoints
// apart: one event delivered to five endpoints is five deliveries.
import http from "node:http";
import type { AddressInfo } from "node:net";

export type SinkCommand =
  | { type: "reset" }
  | { type: "stats" }
  | { type: "arrivals" }
  | { type: "firsts" }
  | { type: "stepCounts" }
  | { type: "stepSummary"; step: number; windowFrom: number; windowTo: number };

export interface SinkStats {
  requests: number;
  unique: number;
}

/** One e2e step as the sink saw it. Latencies are of first deliveries only. */
export interface StepSummary {
  step: number;
  /** Requests carrying this step's events, duplicates included. */
  requests: number;
  /** Distinct (path, seq) deliveries. */
  delivered: number;
  /** First deliveries (of any step) that arrived inside [windowFrom, windowTo]. */
  deliveredInWindow: number;
  latencyMs: { p50: number; p99: number; max: number };
  /** Arrival time of the last first delivery of this step. */
  lastArrival: number;
}

const now = () => performance.timeOrigin + performance.now();
const MARK = /^\{"sent_at":([\d.]+),"step":(\d+),"seq":(\d+),/;
/** The marker fits in this many bytes from the start of a body. */
const HEAD_BYTES = 96;

class StepTally {
  requests = 0;
  seen = new Set<string>();
  arrivals: number[] = [];
  latencies: number[] = [];
}

let arrivals: number[] = [];
let firsts = new Map<string, number>();
let steps = new Map<number, StepTally>();

function recordStep(path: string, head: string, at: number): void {
  const m = MARK.exec(head);
  if (!m) return;
  const step = Number(m[2]);
  let tally = steps.get(step);
  if (!tally) steps.set(step, (tally = new StepTally()));
  tally.requests++;
  const key = `${path}|${m[3]}`;
  if (tally.seen.has(key)) return;
  tally.seen.add(key);
  tally.arrivals.push(at);
  tally.latencies.push(at - Number(m[1]));
}

function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function summary(step: number, from: number, to: number): StepSummary {
  const tally = steps.get(step) ?? new StepTally();
  let inWindow = 0;
  for (const t of steps.values()) for (const at of t.arrivals) if (at >= from && at <= to) inWindow++;
  const sorted = Float64Array.from(tally.latencies).sort();
  return {
    step,
    requests: tally.requests,
    delivered: tally.seen.size,
    deliveredInWindow: inWindow,
    latencyMs: { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.length ? sorted[sorted.length - 1]! : Number.NaN },
    lastArrival: tally.arrivals.reduce((a, b) => Math.max(a, b), 0),
  };
}

const server = http.createServer((req, res) => {
  const at = now();
  let head = "";
  req.on("data", (chunk: Buffer) => {
    if (head.length < HEAD_BYTES) head += chunk.toString("latin1", 0, HEAD_BYTES - head.length);
  });
  req.on("end", () => {
    arrivals.push(at);
    const id = req.headers["webhook-id"];
    if (typeof id === "string" && !firsts.has(id)) firsts.set(id, at);
    if (head !== "") recordStep(req.url ?? "/", head, at);
    res.writeHead(200, { "content-type": "text/plain", "content-length": "2" });
    res.end("ok");
  });
});
server.keepAliveTimeout = 120_000;
server.maxRequestsPerSocket = 0;

process.on("message", (cmd: SinkCommand) => {
  switch (cmd.type) {
    case "reset":
      arrivals = [];
      firsts = new Map();
      steps = new Map();
      process.send!({ type: "reset" });
      break;
    case "stats":
      process.send!({ type: "stats", requests: arrivals.length, unique: firsts.size } satisfies SinkStats & { type: string });
      break;
    case "arrivals":
      process.send!({ type: "arrivals", arrivals });
      break;
    case "firsts":
      process.send!({ type: "firsts", firsts: [...firsts] });
      break;
    case "stepCounts":
      process.send!({ type: "stepCounts", counts: [...steps].map(([step, t]) => [step, t.seen.size]), requests: arrivals.length });
      break;
    case "stepSummary":
      process.send!({ type: "stepSummary", summary: summary(cmd.step, cmd.windowFrom, cmd.windowTo) });
      break;
  }
});
process.on("disconnect", () => process.exit(0));

server.listen(0, "127.0.0.1", () => process.send!({ type: "listening", port: (server.address() as AddressInfo).port }));
