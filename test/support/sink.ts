// Loopback webhook receivers for delivery tests: a node:http server on 127.0.0.1 that records every
// request it sees (with the time it arrived and the time it was answered) and answers the way its
// behaviour says — succeed, fail, hang, throttle, redirect, reset the connection.
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface ReceivedRequest {
  /** Date.now() when the request's headers arrived. */
  at: number;
  /** Date.now() when the answer was sent (undefined while it hangs, or for a reset). */
  answeredAt: number | undefined;
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** The `webhook-id` header: the event id. */
  eventId: string;
}

export type Reply =
  /** Answers after `delayMs`, or once `after` settles (a request held until the test lets go). */
  | { status: number; headers?: Record<string, string>; body?: string; delayMs?: number; after?: Promise<unknown> }
  | { hang: true }
  | { reset: true };

/** Chooses the reply; `nth` counts earlier requests for the same event (0 for the first). */
export type Behaviour = (req: ReceivedRequest, nth: number) => Reply;

export const succeed = (body = "ok"): Behaviour => () => ({ status: 200, body });
/** Answers 2xx after `delayMs`. */
export const slow = (delayMs: number): Behaviour => () => ({ status: 200, body: "ok", delayMs });
/** Each event fails `n` times with `status`, then succeeds. */
export const failTimes = (n: number, status = 500): Behaviour => (_req, nth) => (nth < n ? { status, body: "not yet" } : { status: 200, body: "ok" });
export const alwaysFail = (status = 500): Behaviour => () => ({ status, body: "broken" });
/** Never answers; the connection stays open until the client gives up or the sink closes. */
export const hang: Behaviour = () => ({ hang: true });
/** Each event is throttled `n` times with `Retry-After: <retryAfter>`, then succeeds. */
export const throttle = (n: number, retryAfter: string): Behaviour => (_req, nth) =>
  nth < n ? { status: 429, headers: { "retry-after": retryAfter }, body: "slow down" } : { status: 200, body: "ok" };
export const gone: Behaviour = () => ({ status: 410, body: "gone" });
export const redirect = (location: string, status = 307): Behaviour => () => ({ status, headers: { location }, body: "" });
/** Destroys the socket without answering. */
export const reset: Behaviour = () => ({ reset: true });

export interface Sink {
  /** The URL deliveries go to (`http://127.0.0.1:<port>/hook`). */
  url: string;
  port: number;
  requests: ReceivedRequest[];
  behaviour: Behaviour;
  /** Requests for one event, in arrival order. */
  forEvent(eventId: string): ReceivedRequest[];
  /** Resolves once `count` requests (optionally only those matching) have arrived. */
  waitFor(count: number, filter?: (r: ReceivedRequest) => boolean, timeoutMs?: number): Promise<ReceivedRequest[]>;
  close(): Promise<void>;
}

export async function startSink(behaviour: Behaviour = succeed(), path = "/hook"): Promise<Sink> {
  const requests: ReceivedRequest[] = [];
  const perEvent = new Map<string, number>();
  const waiters = new Set<() => void>();
  const server = http.createServer((req, res) => {
    const at = Date.now();
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const eventId = String(req.headers["webhook-id"] ?? "");
      const record: ReceivedRequest = {
        at,
        answeredAt: undefined,
        method: req.method ?? "",
        path: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks),
        eventId,
      };
      const nth = perEvent.get(eventId) ?? 0;
      perEvent.set(eventId, nth + 1);
      requests.push(record);
      for (const w of waiters) w();
      const reply = sink.behaviour(record, nth);
      if ("hang" in reply) return;
      if ("reset" in reply) {
        req.socket.destroy();
        return;
      }
      const answer = () => {
        if (res.destroyed) return;
        record.answeredAt = Date.now();
        res.writeHead(reply.status, { "content-type": "text/plain", ...reply.headers });
        res.end(reply.body ?? "");
      };
      if (reply.after) void reply.after.then(answer, answer);
      else if (reply.delayMs) setTimeout(answer, reply.delayMs);
      else answer();
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const sink: Sink = {
    url: `http://127.0.0.1:${port}${path}`,
    port,
    requests,
    behaviour,
    forEvent: (eventId) => requests.filter((r) => r.eventId === eventId),
    waitFor(count, filter = () => true, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const matching = requests.filter(filter);
          if (matching.length < count) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(matching);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`sink saw ${requests.filter(filter).length} of ${count} expected requests`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return sink;
}
