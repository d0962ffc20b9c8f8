// Reading a Kapsel log over HTTP, as a monitor does: the public tlog-tiles paths (checkpoint and
// hash tiles, no credential) and, with a tenant's API key, Connect JSON RPCs. Uses only `fetch`,
// so it runs wherever the library does. Every answer is bounded in time and size.
import { concatBytes } from "./bytes.ts";
import { tilePath } from "./tile-proofs.ts";

/** The log could not be read (network, HTTP status, size or time limit); nothing was learned. */
export class LogAccessError extends Error {
  /** The server refused the API key (unauthenticated or permission denied): a configuration error. */
  readonly refusedCredential: boolean;

  constructor(message: string, options: { refusedCredential?: boolean } = {}) {
    super(message);
    this.name = "LogAccessError";
    this.refusedCredential = options.refusedCredential === true;
  }
}

/** A Connect RPC answer: the JSON body, or the error's Connect code and Kapsel code (ErrorInfo reason). */
export type RpcAnswer =
  | { readonly ok: true; readonly body: unknown }
  | { readonly ok: false; readonly code: string; readonly reason: string | undefined; readonly message: string };

export interface LogClientOptions {
  /** A tenant API key, sent as a bearer token on RPCs (never on the public tile reads). */
  readonly apiKey?: string;
  /** Time limit per request. Default 10 s. */
  readonly timeoutMs?: number;
}

/** Largest checkpoint accepted (a checkpoint with 100 cosignatures is under 20 KiB). */
const MAX_CHECKPOINT_BYTES = 64 * 1024;
/** A full tile: 256 hashes. */
const MAX_TILE_BYTES = 256 * 32;
/** RPC answers carry event payloads (10 MiB by default, base64 in JSON). */
const MAX_RPC_BYTES = 32 * 1024 * 1024;

/** A Kapsel server's log, read at `baseUrl` (`/log/checkpoint`, `/log/tile/…`, `/kapsel.v1.*`). */
export class LogClient {
  readonly baseUrl: string;
  readonly #apiKey: string | undefined;
  readonly #timeoutMs: number;

  constructor(baseUrl: string, options: LogClientOptions = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.#apiKey = options.apiKey;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
  }

  /** The latest checkpoint the log publishes, as bytes. */
  async checkpoint(): Promise<Uint8Array> {
    const { status, bytes } = await this.#get("/log/checkpoint", MAX_CHECKPOINT_BYTES);
    if (status !== 200) throw new LogAccessError(`GET ${this.baseUrl}/log/checkpoint answered ${status}`);
    return bytes;
  }

  /** A hash tile (see `TileSource`). */
  async tile(level: number, index: bigint, width: number): Promise<Uint8Array> {
    const path = `/log/${tilePath(level, index, width)}`;
    const { status, bytes } = await this.#get(path, MAX_TILE_BYTES);
    if (status !== 200) throw new LogAccessError(`GET ${this.baseUrl}${path} answered ${status}`);
    return bytes;
  }

  /** Calls `service/method` with a JSON request over the Connect protocol. */
  async rpc(service: string, method: string, request: unknown): Promise<RpcAnswer> {
    const url = `${this.baseUrl}/kapsel.v1.${service}/${method}`;
    const headers: Record<string, string> = { "content-type": "application/json", "connect-protocol-version": "1" };
    if (this.#apiKey !== undefined) headers["authorization"] = `Bearer ${this.#apiKey}`;
    const { status, bytes } = await this.#fetch(url, { method: "POST", headers, body: JSON.stringify(request) }, MAX_RPC_BYTES);
    let body: unknown;
    try {
      body = JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      throw new LogAccessError(`${method} answered ${status} with a body that is not JSON`);
    }
    if (status === 200) return { ok: true, body };
    const error = body as { code?: unknown; message?: unknown; details?: { type?: unknown; debug?: { reason?: unknown } }[] };
    if (typeof error.code !== "string") throw new LogAccessError(`${method} answered ${status} without a Connect error`);
    const info = Array.isArray(error.details) ? error.details.find((d) => d?.type === "google.rpc.ErrorInfo") : undefined;
    const reason = typeof info?.debug?.reason === "string" ? info.debug.reason : undefined;
    return { ok: false, code: error.code, reason, message: typeof error.message === "string" ? error.message : "" };
  }

  #get(path: string, maxBytes: number): Promise<{ status: number; bytes: Uint8Array }> {
    return this.#fetch(`${this.baseUrl}${path}`, { method: "GET" }, maxBytes);
  }

  async #fetch(url: string, init: RequestInit, maxBytes: number): Promise<{ status: number; bytes: Uint8Array }> {
    const signal = AbortSignal.timeout(this.#timeoutMs);
    try {
      const response = await fetch(url, { ...init, signal, redirect: "error" });
      return { status: response.status, bytes: await readCapped(response, maxBytes, url) };
    } catch (error) {
      if (error instanceof LogAccessError) throw error;
      const reason = signal.aborted ? `no answer within ${this.#timeoutMs} ms` : describe(error);
      throw new LogAccessError(`${init.method} ${url}: ${reason}`);
    }
  }
}

async function readCapped(response: Response, maxBytes: number, url: string): Promise<Uint8Array> {
  const declared = Number(response.headers.get("content-length") ?? "0");
  if (declared > maxBytes) {
    await response.body?.cancel();
    throw new LogAccessError(`${url}: the answer is ${declared} bytes, more than the ${maxBytes} allowed`);
  }
  if (response.body === null) return new Uint8Array(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    length += value.length;
    if (length > maxBytes) {
      await reader.cancel();
      throw new LogAccessError(`${url}: the answer is more than the ${maxBytes} bytes allowed`);
    }
    chunks.push(value);
  }
  return concatBytes(...chunks);
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = (error as { cause?: unknown }).cause;
  return cause instanceof Error ? `${error.message} (${cause.message})` : error.message;
}
