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
    if (body === undefined) {
      send(response, 400, "text/plain; charset=utf-8", `malformed request: the body is larger than ${limits.maxBodyBytes} bytes\n`, true);
      log(`400 body larger than ${limits.maxBodyBytes} bytes from ${request.socket.remoteAddress}`);
      return;
    }
    const verdict = await witness.addCheckpoint(body);
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

/** The whole body, or undefined once it passes `max` bytes (the rest is not read). */
function readBody(request: IncomingMessage, max: number): Promise<Uint8Array | undefined> {
  const declared = Number(request.headers["content-length"] ?? 0);
  if (declared > max) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    request.on("data", (chunk: Buffer) => {
      length += chunk.length;
      if (length > max) {
        request.removeAllListeners("data");
        request.pause();
        resolve(undefined);
      } else {
        chunks.push(chunk);
      }
    });
    request.on("end", () => resolve(Buffer.concat(chunks)));
    // A client that goes away mid-body gets no answer; settling here frees the handler.
    request.on("close", () => resolve(undefined));
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
