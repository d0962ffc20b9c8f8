// Load generator for bench/ingest.ts, run as its own process (never inside the server). Reads one
// JSON job from argv[2], drives the server over HTTP/1.1 keep-alive connections (one request in
// flight per connection, no pipelining) and prints one JSON result line on stdout.
//
// The HTTP client is a few lines over net.Socket rather than undici: the load generator shares the
// two cores with the server and Postgres, and undici cost ~35 µs of CPU per request here, a third
// of what the server spends; this one costs a fraction of that, so more of the machine measures
// Kapsel. Request bytes are built once per request; responses are parsed just enough to get the
// status and the body (Content-Length or chunked).
//
// Modes:
//   gateway        closed loop: `connections` senders, each POST /ingest/{id} → await → repeat
//   ingest         closed loop of IngestService.Ingest (Connect protocol, binary protobuf)
//   batch          closed loop of IngestService.IngestBatch with `batchSize` events per call
//   gateway-paced  open loop: POST /ingest/{id} at a fixed `rate` over `connections` connections;
//                  latency is measured from each request's *scheduled* send time, so waiting for a
//                  free connection counts (no coordinated omission); also reported from the moment
//                  the request was written to its connection ("on the wire": what the server and
//                  the network took, without the sender's own queue)
//
// Every event carries a unique idempotency key (so each one writes an events, a delivery_jobs and
// an idempotency_keys row) and a 1 KiB payload. A run sends for warmupMs + durationMs; only
// completions inside the last durationMs count for the rate and the latency percentiles. After the
// deadline no new request starts, and every request still in flight is awaited, so `acked` is
// exactly what the server acknowledged.
import net from "node:net";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  IngestBatchRequestSchema, IngestBatchResponseSchema, IngestRequestSchema, IngestResponseSchema, IngestResultStatus,
} from "@kapsel/contracts/ingest";
import { Fifo } from "./_fifo.ts";

interface Response {
  status: number;
  body: Buffer;
}

const CRLFCRLF = Buffer.from("\r\n\r\n");

/** One keep-alive HTTP/1.1 connection with at most one request in flight (also used by the e2e
 * load generator, bench/_e2e-load.ts). */
export class Connection {
  readonly #host: string;
  readonly #port: number;
  #socket: net.Socket | undefined;
  #ready: Promise<void> | undefined;
  #buf: Buffer = Buffer.alloc(0);
  #pending: { resolve: (r: Response) => void; reject: (e: Error) => void } | undefined;

  constructor(host: string, port: number) {
    this.#host = host;
    this.#port = port;
  }

  async request(bytes: Buffer): Promise<Response> {
    if (!this.#socket) this.#connect();
    await this.#ready;
    return new Promise<Response>((resolve, reject) => {
      this.#pending = { resolve, reject };
      this.#socket!.write(bytes);
    });
  }

  /** Opens the connection ahead of its first request. */
  async open(): Promise<void> {
    if (!this.#socket) this.#connect();
    await this.#ready;
  }

  close(): void {
    this.#socket?.destroy();
  }

  #connect(): void {
    const socket = net.connect({ host: this.#host, port: this.#port, noDelay: true });
    this.#socket = socket;
    this.#buf = Buffer.alloc(0);
    this.#ready = new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    socket.on("data", (chunk: Buffer) => {
      this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
      const r = this.#parse();
      if (r && this.#pending) {
        const p = this.#pending;
        this.#pending = undefined;
        p.resolve(r);
      }
    });
    const fail = (err: Error) => {
      // A connection already replaced (closed by the server after its last answer) owes nothing.
      if (this.#socket !== socket && this.#socket !== undefined) return;
      this.#socket = undefined;
      const p = this.#pending;
      this.#pending = undefined;
      p?.reject(err);
    };
    socket.on("error", fail);
    socket.on("close", () => fail(new Error("connection closed")));
  }

  /** A complete response at the start of the buffer (consumed), or undefined if more is needed. */
  #parse(): Response | undefined {
    const buf = this.#buf;
    const end = buf.indexOf(CRLFCRLF);
    if (end === -1) return undefined;
    const head = buf.toString("latin1", 0, end);
    const status = Number(head.slice(9, 12));
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    let body: Buffer;
    let consumed: number;
    if (length) {
      consumed = end + 4 + Number(length[1]);
      if (buf.length < consumed) return undefined;
      body = buf.subarray(end + 4, consumed);
    } else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
      const parts: Buffer[] = [];
      let at = end + 4;
      for (;;) {
        const lineEnd = buf.indexOf("\r\n", at);
        if (lineEnd === -1) return undefined;
        const size = parseInt(buf.toString("latin1", at, lineEnd), 16);
        if (buf.length < lineEnd + 2 + size + 2) return undefined;
        if (size === 0) {
          consumed = lineEnd + 4;
          break;
        }
        parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
        at = lineEnd + 2 + size + 2;
      }
      body = Buffer.concat(parts);
    } else {
      body = Buffer.alloc(0);
      consumed = end + 4;
    }
    this.#buf = buf.subarray(consumed);
    // The server closes after this answer: the next request opens a new connection (written to this
    // one, it would be lost).
    if (/\r\nconnection:\s*close/i.test(head)) {
      this.#socket?.end();
      this.#socket = undefined;
    }
    return { status, body };
  }
}

export interface LoadJob {
  /** `fanout`: Ingest RPC with no endpoint, by event type (`eventType`), to every subscribed endpoint. */
  mode: "gateway" | "ingest" | "batch" | "gateway-paced" | "fanout";
  url: string;
  endpointId: string;
  apiKey: string;
  connections: number;
  warmupMs: number;
  durationMs: number;
  batchSize?: number;
  rate?: number;
  eventType?: string;
  payloadBytes: number;
  keyPrefix: string;
}

export interface LoadResult {
  mode: LoadJob["mode"];
  /** Events the server acknowledged (2xx; for batches, items answered ACCEPTED; for fan-out, the
   * events of each acknowledged message), whole run. */
  acked: number;
  /** Requests (messages) acknowledged, whole run. */
  ackedRequests: number;
  /** Events acknowledged inside the measurement window. */
  windowEvents: number;
  windowSeconds: number;
  eventsPerSecond: number;
  /** Requests (calls) completed inside the window. */
  windowRequests: number;
  /** Per-request latency of acknowledged requests inside the window, milliseconds. */
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  /** Requests refused as overloaded (503) inside the window, and how fast the refusal came. */
  refused: { count: number; latencyMs: { p50: number; p99: number; max: number } };
  /** The same latencies measured from the moment each request was written to its connection: the
   * server's (and the loopback's) share, without the wait for a free connection. */
  wire: {
    acceptedMs: { p50: number; p99: number; max: number };
    refusedMs: { p50: number; p99: number; max: number };
    /** Accepted on the wire, p99 in each third of the window (by answer time): level when the
     * server's share of the latency is bounded, rising when it grows with the phase. */
    acceptedP99ByThird: number[];
  };
  /** Non-2xx / failed requests by status or error, whole run. */
  failures: Record<string, number>;
  /** Batch items answered DUPLICATE or ERROR (should be none). */
  itemsNotAccepted: number;
  /** This process's CPU time over the run, seconds. */
  cpuSeconds: number;
  wallSeconds: number;
  /** For the paced mode: requests sent and the rate actually offered. */
  offered?: { sent: number; ratePerSecond: number };
}

function payload(bytes: number): Buffer {
  // A JSON document of exactly `bytes` bytes, like a typical webhook body.
  const head = '{"type":"invoice.paid","data":{"filler":"';
  const tail = '"}}';
  return Buffer.from(head + "x".repeat(bytes - head.length - tail.length) + tail);
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function summary(sorted: Float64Array): { p50: number; p99: number; max: number } {
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.length ? sorted[sorted.length - 1]! : NaN };
}

export async function runLoad(job: LoadJob): Promise<LoadResult> {
  const body = payload(job.payloadBytes);
  const url = new URL(job.url);
  const conns = Array.from({ length: job.connections }, () => new Connection(url.hostname, Number(url.port)));
  // Free connections are taken in turn (first freed, first taken): every open connection stays in
  // use, none sits idle long enough for the server's idle timeouts to close it under the sender.
  const idle = new Fifo<Connection>();
  for (const c of conns) idle.push(c);
  const waitingForConn = new Fifo<(c: Connection) => void>();
  const acquire = (): Promise<Connection> | Connection => idle.shift() ?? new Promise((resolve) => waitingForConn.push(resolve));
  const release = (c: Connection) => {
    const next = waitingForConn.shift();
    if (next) next(c);
    else idle.push(c);
  };
  let counter = 0;
  const nextKey = () => `${job.keyPrefix}-${(counter++).toString(36).padStart(8, "0")}`;

  let latencies = new Float64Array(1 << 16);
  let nLat = 0;
  const record = (ms: number) => {
    if (nLat === latencies.length) {
      const bigger = new Float64Array(latencies.length * 2);
      bigger.set(latencies);
      latencies = bigger;
    }
    latencies[nLat++] = ms;
  };
  const refusedLatencies: number[] = [];
  const failures: Record<string, number> = {};
  const fail = (why: string) => (failures[why] = (failures[why] ?? 0) + 1);
  let acked = 0;
  let ackedRequests = 0;
  let windowEvents = 0;
  let windowRequests = 0;
  let itemsNotAccepted = 0;

  const host = `Host: ${url.host}\r\n`;
  const post = (path: string, headers: string, content: Uint8Array) => {
    const head = Buffer.from(`POST ${path} HTTP/1.1\r\n${host}${headers}Content-Length: ${content.length}\r\n\r\n`, "latin1");
    return Buffer.concat([head, content]);
  };
  const rpcHeaders = `Content-Type: application/proto\r\nConnect-Protocol-Version: 1\r\nAuthorization: Bearer ${job.apiKey}\r\n`;
  const gatewayPath = `/ingest/${job.endpointId}`;
  const batchSize = job.batchSize ?? 100;
  const event = () => create(IngestRequestSchema, {
    endpointId: job.endpointId, payload: body, contentType: "application/json", idempotencyKey: nextKey(),
  });
  const message = () => create(IngestRequestSchema, {
    eventType: job.eventType ?? "invoice.paid", payload: body, contentType: "application/json", idempotencyKey: nextKey(),
  });

  /** One request; resolves with the number of events acknowledged (0 on failure, -1 for an overload
   * refusal) and when the request was written to its connection. */
  const send = async (): Promise<[number, number]> => {
    let bytes: Buffer;
    if (job.mode === "gateway" || job.mode === "gateway-paced") {
      bytes = post(gatewayPath, `Content-Type: application/json\r\nX-Idempotency-Key: ${nextKey()}\r\n`, body);
    } else if (job.mode === "ingest") {
      bytes = post("/kapsel.v1.IngestService/Ingest", rpcHeaders, toBinary(IngestRequestSchema, event()));
    } else if (job.mode === "fanout") {
      bytes = post("/kapsel.v1.IngestService/Ingest", rpcHeaders, toBinary(IngestRequestSchema, message()));
    } else {
      const events = Array.from({ length: batchSize }, event);
      bytes = post("/kapsel.v1.IngestService/IngestBatch", rpcHeaders, toBinary(IngestBatchRequestSchema, create(IngestBatchRequestSchema, { events })));
    }
    const conn = await acquire();
    const written = performance.now();
    try {
      const r = await conn.request(bytes);
      const ok = job.mode === "gateway" || job.mode === "gateway-paced" ? 202 : 200;
      if (r.status !== ok) {
        fail(String(r.status));
        return [r.status === 503 ? -1 : 0, written];
      }
      if (job.mode === "fanout") return [fromBinary(IngestResponseSchema, r.body).eventIds.length, written];
      if (job.mode !== "batch") return [1, written];
      let accepted = 0;
      for (const item of fromBinary(IngestBatchResponseSchema, r.body).results) {
        if (item.status === IngestResultStatus.ACCEPTED) accepted++;
        else itemsNotAccepted++;
      }
      return [accepted, written];
    } catch (err) {
      fail((err as Error).message);
      return [0, written];
    } finally {
      release(conn);
    }
  };

  // Every connection open before the clock starts, a few at a time: thousands of SYNs at once
  // overflow the listen backlog, and the retransmission seconds later would be measured as the
  // server's latency.
  for (let i = 0; i < conns.length; i += 64) await Promise.all(conns.slice(i, i + 64).map((c) => c.open()));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const windowStart = t0 + job.warmupMs;
  const deadline = windowStart + job.durationMs;
  const wireAccepted: number[] = [];
  const wireAcceptedThirds: number[][] = [[], [], []];
  const wireRefused: number[] = [];
  /** `n` events acknowledged; -1 for an overload refusal (503). `started`: when the request was due
   * (paced) or begun (closed loop); `written`: when it went onto its connection. */
  const done = (started: number, [n, written]: [number, number]) => {
    const now = performance.now();
    const inWindow = now >= windowStart && now <= deadline;
    if (n < 0) {
      if (inWindow) {
        refusedLatencies.push(now - started);
        wireRefused.push(now - written);
      }
      return;
    }
    acked += n;
    if (n > 0) ackedRequests++;
    if (inWindow) {
      windowEvents += n;
      windowRequests++;
      record(now - started);
      if (n > 0) {
        wireAccepted.push(now - written);
        wireAcceptedThirds[Math.min(2, Math.floor(((now - windowStart) / job.durationMs) * 3))]!.push(now - written);
      }
    }
  };

  let offered: LoadResult["offered"];
  if (job.mode === "gateway-paced") {
    const rate = job.rate ?? 2000;
    const inflight = new Set<Promise<void>>();
    let sent = 0;
    let sentInWindow = 0;
    while (performance.now() < deadline) {
      const now = performance.now();
      const due = Math.floor(((now - t0) / 1000) * rate);
      while (sent < due) {
        const scheduled = t0 + (sent * 1000) / rate;
        if (scheduled >= windowStart && scheduled < deadline) sentInWindow++;
        sent++;
        const p: Promise<void> = send().then((n) => done(scheduled, n)).finally(() => inflight.delete(p));
        inflight.add(p);
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    await Promise.all(inflight);
    offered = { sent, ratePerSecond: sentInWindow / (job.durationMs / 1000) };
  } else {
    // Closed loop: each sender owns one connection (acquire never waits).
    const worker = async () => {
      while (performance.now() < deadline) {
        const started = performance.now();
        done(started, await send());
      }
    };
    await Promise.all(Array.from({ length: job.connections }, worker));
  }
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  for (const c of conns) c.close();

  const sorted = latencies.slice(0, nLat).sort();
  const refusedSorted = Float64Array.from(refusedLatencies).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  const windowSeconds = job.durationMs / 1000;
  return {
    mode: job.mode,
    acked,
    ackedRequests,
    windowEvents,
    windowSeconds,
    eventsPerSecond: windowEvents / windowSeconds,
    windowRequests,
    latencyMs: {
      p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99),
      max: sorted.length ? sorted[sorted.length - 1]! : NaN, mean: sorted.length ? sum / sorted.length : NaN,
    },
    refused: { count: refusedSorted.length, latencyMs: summary(refusedSorted) },
    wire: {
      acceptedMs: summary(Float64Array.from(wireAccepted).sort()),
      refusedMs: summary(Float64Array.from(wireRefused).sort()),
      acceptedP99ByThird: wireAcceptedThirds.map((t) => percentile(Float64Array.from(t).sort(), 99)),
    },
    failures,
    itemsNotAccepted,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    wallSeconds: wall,
    offered,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const job = JSON.parse(process.argv[2]!) as LoadJob;
  const result = await runLoad(job);
  process.stdout.write(JSON.stringify(result) + "\n");
}
