// Sends one delivery with undici: pooled keep-alive connections per origin, connect and total
// timeouts, no redirects (a 3xx is a failed attempt), the response read up to a cap. The
// destination is checked again at connect time — after DNS resolution — and the socket goes to the
// exact address that passed, so a DNS answer that flips to a private address cannot get through.
import { createHash } from "node:crypto";
import { lookup as dnsLookup } from "node:dns/promises";
import net from "node:net";
import { Agent, buildConnector } from "undici";
import { KapselError } from "../errors.ts";
import { assertAddressAllowed, type DestinationPolicy } from "./destination-policy.ts";
import type { AttemptOutcome, LocalRefusal } from "./attempt-outcome.ts";

export const USER_AGENT = "Kapsel-Webhooks/0.1 (+https://github.com/kapsel)";
/** How much of a response is read (and hashed); the rest is discarded. */
export const RESPONSE_READ_CAP = 64 * 1024;
/** How much of it is kept as text for people. */
export const EXCERPT_BYTES = 1024;

export type Lookup = (host: string) => Promise<{ address: string; family: number }[]>;

export interface SendRequest {
  url: string;
  body: Buffer;
  headers: Record<string, string>;
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface SendResult {
  startedAt: Date;
  durationMs: number;
  outcome: AttemptOutcome;
  statusCode: number | undefined;
  responseSha256: string | undefined;
  excerpt: string;
  error: string;
  retryAfter: string | undefined;
  /** Set when the attempt failed before sending anything (its outcome is network_error). */
  refusedLocally: LocalRefusal | undefined;
}

export interface SenderOptions {
  policy: DestinationPolicy;
  connectTimeoutMs: number;
  connectionsPerOrigin: number;
  lookup?: Lookup;
}

/** The destination's host name resolved to no address. */
export class HostUnresolved extends Error {
  constructor(host: string) {
    super(`${host} does not resolve`);
    this.name = "HostUnresolved";
  }
}

/** Why an attempt's request was aborted: its total time ran out. */
class AttemptTimedOut extends Error {
  constructor(timeoutMs: number) {
    super(`no complete response within ${timeoutMs} ms`);
    this.name = "AttemptTimedOut";
  }
}

const TIMEOUT_CODES = new Set(["UND_ERR_CONNECT_TIMEOUT", "UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT"]);
/** undici's refusals of a request it will not write (checked before any connection is used). */
const INVALID_REQUEST_CODES = new Set(["UND_ERR_INVALID_ARG", "UND_ERR_NOT_SUPPORTED", "ERR_INVALID_URL"]);

export class HttpSender {
  readonly #agent: Agent;

  constructor(options: SenderOptions) {
    const lookup: Lookup = options.lookup ?? ((host) => dnsLookup(host, { all: true, verbatim: true }));
    const connect = buildConnector({ timeout: options.connectTimeoutMs });
    this.#agent = new Agent({
      connections: options.connectionsPerOrigin,
      keepAliveTimeout: 30_000,
      pipelining: 1,
      connect: (opts, callback) => {
        const host = opts.hostname.replace(/^\[|\]$/g, "");
        const resolved = net.isIP(host) !== 0 ? Promise.resolve([{ address: host, family: net.isIP(host) }]) : lookup(host);
        resolved.then(
          (addresses) => {
            if (addresses.length === 0) throw new HostUnresolved(host);
            for (const a of addresses) assertAddressAllowed(options.policy, host, a.address);
            const servername = net.isIP(host) === 0 ? host : undefined;
            connect({ ...opts, hostname: addresses[0]!.address, servername }, callback);
          },
        ).catch((err: unknown) => callback(err as Error, null));
      },
    });
  }

  async send(req: SendRequest): Promise<SendResult> {
    const startedAt = new Date();
    const t0 = performance.now();
    // One controller for the total timeout and the caller's signal (AbortSignal.timeout plus
    // AbortSignal.any cost ten times as much, per delivery).
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new AttemptTimedOut(req.timeoutMs));
    }, req.timeoutMs);
    const onAbort = () => controller.abort(req.signal!.reason);
    if (req.signal?.aborted) onAbort();
    else req.signal?.addEventListener("abort", onAbort, { once: true });
    const signal = controller.signal;
    const done = (r: Omit<SendResult, "startedAt" | "durationMs">): SendResult => ({ startedAt, durationMs: Math.round(performance.now() - t0), ...r });
    try {
      const url = new URL(req.url);
      const res = await this.#agent.request({
        origin: url.origin,
        path: `${url.pathname}${url.search}`,
        method: "POST",
        headers: { "user-agent": USER_AGENT, ...req.headers, "content-length": String(req.body.length) },
        body: req.body,
        signal,
        headersTimeout: req.timeoutMs,
        bodyTimeout: req.timeoutMs,
      });
      const hash = createHash("sha256");
      const kept: Buffer[] = [];
      let read = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        const room = RESPONSE_READ_CAP - read;
        const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
        hash.update(part);
        if (read < EXCERPT_BYTES) kept.push(part.subarray(0, EXCERPT_BYTES - read));
        read += part.length;
        if (read >= RESPONSE_READ_CAP) {
          res.body.destroy();
          break;
        }
      }
      const status = res.statusCode;
      const retryAfter = res.headers["retry-after"];
      return done({
        outcome: status >= 200 && status < 300 ? "delivered" : "http_error",
        statusCode: status,
        responseSha256: hash.digest("hex"),
        excerpt: Buffer.concat(kept).toString("utf8"),
        error: status >= 300 && status < 400 ? `redirect to ${String(res.headers.location ?? "?")} not followed` : "",
        retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
        refusedLocally: undefined,
      });
    } catch (err) {
      const e = err as Error & { code?: string; cause?: Error & { code?: string } };
      timedOut ||= TIMEOUT_CODES.has(e.code ?? "") || TIMEOUT_CODES.has(e.cause?.code ?? "");
      const blocked = err instanceof KapselError || e.cause instanceof KapselError;
      const invalid = !timedOut && !blocked && INVALID_REQUEST_CODES.has(e.code ?? "");
      const refusedLocally: LocalRefusal | undefined = timedOut ? undefined : blocked ? "destination" : invalid ? "request" : undefined;
      return done({
        outcome: timedOut ? "timeout" : "network_error",
        statusCode: undefined,
        responseSha256: undefined,
        excerpt: "",
        error: timedOut
          ? `no complete response within ${req.timeoutMs} ms`
          : blocked
            ? (e instanceof KapselError ? e.message : e.cause!.message)
            : invalid
              ? `not sent: the request cannot be written as HTTP (${describe(e)})`
              : describe(e),
        retryAfter: undefined,
        refusedLocally,
      });
    } finally {
      clearTimeout(timer);
      req.signal?.removeEventListener("abort", onAbort);
    }
  }

  close(): Promise<void> {
    return this.#agent.close();
  }
}

function describe(e: Error & { code?: string; cause?: Error & { code?: string } }): string {
  const code = e.cause?.code ?? e.code;
  const message = e.cause?.message ?? e.message;
  return code ? `${code}: ${message}` : message;
}
