// Load generator for bench/e2e.ts, run as its own process (child_process.fork, driven over IPC) so
// its CPU is measured apart from the system under test.
//
// Open loop: a step offers `rate` events per second for `seconds` on a clock. Request i is due at
// t0 + i/rate whether or not earlier requests were answered; a request waits for a free keep-alive
// connection only when every connection to its target is busy, i.e. when the system is not keeping
// up, and that wait counts in its latency (the payload carries the *scheduled* time, so there is no
// coordinated omission). Requests still waiting for a connection when the step's clock runs out
// are dropped (never sent; they count as offered and not acknowledged). Requests in flight then get
// `graceMs` to be answered; later answers do not count.
//
// Every event is a 1 KiB JSON document that starts with `{"sent_at":<ms>,"step":<n>,"seq":<n>,` so
// the sink (bench/_delivery-sink.ts) can time it end to end. With several targets (several ingest
// processes) requests go round-robin.
import { Connection } from "./_ingest-load.ts";
import { Fifo } from "./_fifo.ts";

export const PAYLOAD_BYTES = 1024;

export type LoadCommand =
  | { type: "step"; step: number; rate: number; seconds: number; targets: string[]; connectionsPerTarget: number; graceMs: number }
  | { type: "idle"; timeoutMs: number };

export interface StepLoad {
  type: "step";
  step: number;
  /** Events due on the clock during the step (rate × seconds). */
  offered: number;
  /** Requests actually written to a connection. */
  sent: number;
  /** 2xx answers received by the end of the grace period. */
  acked: number;
  /** Non-2xx answers and connection errors, by status or message. */
  failures: Record<string, number>;
  /** Wall-clock ms: when the step's clock started and ran out. */
  startedAt: number;
  endedAt: number;
  /** Scheduled time → 2xx answer, for acknowledged requests. */
  ackMs: { p50: number; p99: number };
  /** Requests still unanswered when the grace period ended. */
  unanswered: number;
}

const FILLER = "x".repeat(PAYLOAD_BYTES);

/** A JSON document of exactly PAYLOAD_BYTES bytes that starts with the sink's marker. */
export function eventBody(sentAt: number, step: number, seq: number): Buffer {
  const head = `{"sent_at":${sentAt.toFixed(3)},"step":${step},"seq":${seq},"type":"invoice.paid","data":{"filler":"`;
  const tail = '"}}';
  return Buffer.from(head + FILLER.slice(0, PAYLOAD_BYTES - head.length - tail.length) + tail);
}

/** Keep-alive connections to one target; callers queue when all are busy. */
class Pool {
  readonly #idle: Connection[] = [];
  readonly #waiting = new Fifo<(c: Connection | undefined) => void>();
  readonly #requestHead: string;
  inFlight = 0;

  constructor(target: string, size: number) {
    const url = new URL(target);
    for (let i = 0; i < size; i++) this.#idle.push(new Connection(url.hostname, Number(url.port)));
    this.#requestHead = `POST ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\nContent-Length: ${PAYLOAD_BYTES}\r\n\r\n`;
  }

  acquire(): Connection | Promise<Connection | undefined> {
    return this.#idle.pop() ?? new Promise((resolve) => this.#waiting.push(resolve));
  }

  release(c: Connection): void {
    const next = this.#waiting.shift();
    if (next) next(c);
    else this.#idle.push(c);
  }

  /** Drops every queued request (they resolve without a connection). */
  dropWaiting(): number {
    const n = this.#waiting.length;
    for (const w of this.#waiting.drain()) w(undefined);
    return n;
  }

  bytes(body: Buffer): Buffer {
    return Buffer.concat([Buffer.from(this.#requestHead, "latin1"), body]);
  }

  close(): void {
    for (const c of this.#idle) c.close();
  }
}

const pools = new Map<string, Pool>();
const wallNow = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

async function runStep(job: Extract<LoadCommand, { type: "step" }>): Promise<StepLoad> {
  const targets = job.targets.map((t) => {
    let pool = pools.get(t);
    if (!pool) pools.set(t, (pool = new Pool(t, job.connectionsPerTarget)));
    return pool;
  });
  const offered = Math.round(job.rate * job.seconds);
  const acks = new Float64Array(offered);
  const failures: Record<string, number> = {};
  const fail = (why: string) => (failures[why] = (failures[why] ?? 0) + 1);
  let sent = 0;
  let acked = 0;
  let open = true;
  const inFlight = new Set<Promise<void>>();

  const send = async (seq: number, scheduled: number): Promise<void> => {
    const pool = targets[seq % targets.length]!;
    const bytes = pool.bytes(eventBody(performance.timeOrigin + scheduled, job.step, seq));
    const conn = await pool.acquire();
    if (!conn) return; // dropped at the end of the step
    sent++;
    pool.inFlight++;
    try {
      const r = await conn.request(bytes);
      if (!open) return;
      if (r.status >= 200 && r.status < 300) acks[acked++] = performance.now() - scheduled;
      else fail(String(r.status));
    } catch (err) {
      if (open) fail((err as Error).message);
    } finally {
      pool.inFlight--;
      pool.release(conn);
    }
  };

  const t0 = performance.now();
  const startedAt = performance.timeOrigin + t0;
  const end = t0 + job.seconds * 1000;
  let due = 0;
  while (due < offered) {
    const now = performance.now();
    const upTo = Math.min(offered, Math.floor(((now - t0) * job.rate) / 1000) + 1);
    for (; due < upTo; due++) {
      const p: Promise<void> = send(due, t0 + (due * 1000) / job.rate).finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
    if (now >= end) break;
    await sleep(1);
  }
  const wait = end - performance.now();
  if (wait > 0) await sleep(wait);
  const endedAt = wallNow();
  for (const pool of targets) pool.dropWaiting();
  await Promise.race([Promise.all(inFlight), sleep(job.graceMs)]);
  open = false;
  const sorted = acks.slice(0, acked).sort();
  return {
    type: "step",
    step: job.step,
    offered,
    sent,
    acked,
    failures,
    startedAt,
    endedAt,
    ackMs: { p50: percentile(sorted, 50), p99: percentile(sorted, 99) },
    unanswered: inFlight.size,
  };
}

/** Waits (bounded) until no request of any step is in flight; answers how many still are. */
async function idle(timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  const busy = () => [...pools.values()].reduce((n, p) => n + p.inFlight, 0);
  while (busy() > 0 && performance.now() < deadline) await sleep(50);
  return busy();
}

process.on("message", (cmd: LoadCommand) => {
  if (cmd.type === "step") void runStep(cmd).then((r) => process.send!(r));
  else void idle(cmd.timeoutMs).then((inFlight) => process.send!({ type: "idle", inFlight }));
});
process.on("disconnect", () => {
  for (const pool of pools.values()) pool.close();
  process.exit(0);
});
process.send!({ type: "ready" });
