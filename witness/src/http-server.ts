// The witness's HTTP face (C2SP tlog-witness): POST /add-checkpoint, and GET
// /<origin hash>/checkpoint for monitors. No credentials exist: the only thing a request can make
// the witness do is check a signature and a proof, so what bounds abuse is the size of a request
// (body, headers), the time it may take, and the number of open connections.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Witness } from "./witness.ts";

/** Largest add-checkpoint body: 63 proof lines are under 3 KiB; the rest is room for cosignatures. */
export const MAX_BODY_BYTES = 64 * 1024;

export interface ServerLimits {
  readonly maxBodyBytes: number;
  /** Time for the whole request to arrive. */
  readonly requestTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly maxConnections: number;
}

export const DEFAULT_LIMITS: ServerLimits = {
  maxBodyBytes: MAX_BODY_BYTES,
  requestTimeoutMs: 10_000,
  headersTimeoutMs: 5_000,
  maxConnections: 512,
};

const CHECKPOINT_PATH = /^\/([0-9a-f]{64})\/checkpoint$/;

/** An HTTP server for `witness`; `log` receives one line per request worth an operator's eye. */
export function createWitnessServer(witness: Witness, log: (line: string) => void, limits: ServerLimits = DEFAULT_LIMITS): Server {
  // connectionsCheckingInterval: how often Node enforces the timeouts (default every 30 s).
  const server = createServer({ maxHeaderSize: 8 * 1024, connectionsCheckingInterval: 1_000 }, (request, response) => {
    handle(witness, request, response, log, limits).catch((error: unknown) => {
      log(`500 ${request.method} ${request.url}: ${error instanceof Error ? error.message : String(error)}`);
      if (!response.headersSent) send(response, 500, "text/plain; charset=utf-8", "internal error: nothing was cosigned\n");
      else response.destroy();
    });
  });
  server.requestTimeout = limits.requestTimeoutMs;
  server.headersTimeout = limits.headersTimeoutMs;
  server.keepAliveTimeout = 5_000;
  server.maxConnections = limits.maxConnections;
  return server;
}

async function handle(witness: Witness, request: IncomingMessage, response: ServerResponse, log: (line: string) => void, limits: ServerLimits): Promise<void> {
  const path = (request.url ?? "/").split("?")[0]!;
  if (path === "/add-checkpoint") {
    if (request.method !== "POST") {
      response.setHeader("allow", "POST");
      send(response, 405, "text/plain; charset=utf-8", "add-checkpoint takes POST\n");
      return;
    }
    const body = await readBody(request, limits.maxBodyBytes);
    if ("tooLarge" in body) {
      log(`400 body larger than ${limits.maxBodyBytes} bytes from ${request.socket.remoteAddress}`);
      send(response, 400, "text/plain; charset=utf-8", `malformed request: the body is larger than ${limits.maxBodyBytes} bytes\n`, !body.drained);
      return;
    }
    const verdict = await witness.addCheckpoint(body.bytes);
    log(verdict.logLine);
    send(response, verdict.status, verdict.contentType, verdict.body);
    return;
  }
  const match = CHECKPOINT_PATH.exec(path);
  if (match !== null && (request.method === "GET" || request.method === "HEAD")) {
    const checkpoint = await witness.checkpoint(match[1]!);
    if (checkpoint === undefined) send(response, 404, "text/plain; charset=utf-8", "this witness has not cosigned that log\n");
    else send(response, 200, "text/plain; charset=utf-8", checkpoint);
    return;
  }
  send(response, 404, "text/plain; charset=utf-8", "not found\n");
}

/** How much of an over-long body is read and thrown away so that its sender still gets the 400. */
const DRAIN_BYTES = 1024 * 1024;

type Body = { readonly bytes: Uint8Array } | { readonly tooLarge: true; readonly drained: boolean };

/**
 * The whole body, or `tooLarge` once it passes `max` bytes. An over-long body of up to
 * {@link DRAIN_BYTES} is still read (and discarded) to its end, because a client that is still
 * sending when the connection closes never sees the answer; beyond that the connection is cut.
 */
function readBody(request: IncomingMessage, max: number): Promise<Body> {
  const declared = Number(request.headers["content-length"] ?? 0);
  if (declared > DRAIN_BYTES) return Promise.resolve({ tooLarge: true, drained: false });
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    request.on("data", (chunk: Buffer) => {
      length += chunk.length;
      if (length <= max) chunks.push(chunk);
      else if (length > DRAIN_BYTES) {
        request.removeAllListeners("data");
        request.pause();
        resolve({ tooLarge: true, drained: false });
      }
    });
    request.on("end", () => resolve(length <= max ? { bytes: Buffer.concat(chunks) } : { tooLarge: true, drained: true }));
    // A client that goes away mid-body gets no answer; settling here frees the handler.
    request.on("close", () => resolve({ tooLarge: true, drained: false }));
    request.on("error", reject);
  });
}

/** Answers; `close` ends the connection afterwards (used when the request body was left unread). */
function send(response: ServerResponse, status: number, contentType: string, body: string, close = false): void {
  const bytes = Buffer.from(body, "utf8");
  const headers: Record<string, string | number> = { "content-type": contentType, "content-length": bytes.length };
  if (close) headers["connection"] = "close";
  response.writeHead(status, headers);
  response.end(bytes);
  if (close) response.on("finish", () => response.req.destroy());
}
