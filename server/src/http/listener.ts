// One port for every protocol. Node's cleartext HTTP/2 server speaks only HTTP/2 (prior
// knowledge), while browsers and webhook senders speak HTTP/1.1; so a plain TCP server looks at
// the first bytes of each connection and hands it to an h2c server when they are the HTTP/2
// preface ("PRI * HTTP/2.0"), else to an HTTP/1.1 server. With TLS, ALPN does the same job.
//
// Every stage is bounded in time, so a client that goes silent (or trickles) is closed rather than
// held forever: the first bytes (or the TLS handshake), an HTTP/1.1 request's headers, a request
// body's pauses and its total time, and idle connections. Connections are capped, and so are the
// HTTP/2 streams one connection may open at once.
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { readFileSync } from "node:fs";
import type { HttpTimeouts } from "../config.ts";

/** Called for HTTP/1.1 and HTTP/2 requests alike (HTTP/2 through Node's compatibility API). */
export type RequestHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

export interface Listener {
  port: number;
  /** Stops accepting; open HTTP/2 sessions get GOAWAY, idle HTTP/1.1 sockets close. */
  stopAccepting(): void;
  /** Destroys whatever is still open. */
  destroyAll(): void;
  closed: Promise<void>;
}

export interface ListenOptions {
  host: string;
  port: number;
  tls?: { certFile: string; keyFile: string } | undefined;
  timeouts: HttpTimeouts;
  maxConnections: number;
  maxConcurrentStreams: number;
  /** Share the port with other processes on this host (SO_REUSEPORT). */
  reusePort?: boolean;
}

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

function dropSocket(this: net.Socket): void {
  this.destroy();
}

export async function listen(options: ListenOptions, handler: RequestHandler): Promise<Listener> {
  const { timeouts } = options;
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.Http2Session>();
  const h2Options: http2.ServerOptions = {
    // Watch streams are cancelled often; nghttp2's rapid-reset guard would otherwise GOAWAY clients.
    streamResetBurst: 10_000,
    streamResetRate: 1_000,
    settings: { maxConcurrentStreams: options.maxConcurrentStreams },
  } as http2.ServerOptions;
  const guarded = guardRequestBodies(handler, timeouts);
  // Node checks HTTP/1.1 header and request deadlines on an interval: check often enough that a
  // deadline is kept to within a quarter of itself (and at least every second).
  const checkEveryMs = Math.max(25, Math.min(1000, Math.floor(timeouts.headersMs / 4)));
  let front: net.Server;
  let h1: http.Server | undefined;
  let h2: http2.Http2Server | http2.Http2SecureServer;

  if (options.tls) {
    const secure = http2.createSecureServer(
      {
        ...h2Options,
        allowHTTP1: true,
        cert: readFileSync(options.tls.certFile),
        key: readFileSync(options.tls.keyFile),
        handshakeTimeout: timeouts.firstBytesMs,
        noDelay: true,
      },
      guarded as never,
    );
    // HTTP/1.1 over TLS is served by the HTTP/2 server's fallback, which reads the same settings
    // an http.Server has.
    Object.assign(secure, {
      headersTimeout: timeouts.headersMs,
      requestTimeout: timeouts.requestMs,
      keepAliveTimeout: timeouts.idleMs,
      connectionsCheckingInterval: checkEveryMs,
    });
    h2 = secure;
    front = secure as unknown as net.Server;
  } else {
    h1 = http.createServer({
      keepAliveTimeout: timeouts.idleMs,
      headersTimeout: timeouts.headersMs,
      requestTimeout: timeouts.requestMs,
      connectionsCheckingInterval: checkEveryMs,
    }, guarded as never);
    // The HTTP/1.1 server never listens itself (connections are handed to it), and Node starts
    // checking header and request deadlines only when a server starts listening.
    h1.emit("listening");
    h2 = http2.createServer(h2Options, guarded as never);
    // No Nagle delay (what an http.Server sets on its own sockets; these are accepted here).
    front = net.createServer({ noDelay: true }, (socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      // Until a server owns the socket, a client's reset would be an unhandled 'error' event,
      // which crashes the process.
      socket.on("error", dropSocket);
      // A connection that says nothing (or only part of the HTTP/2 preface) is closed.
      socket.setTimeout(timeouts.firstBytesMs, () => socket.destroy());
      route(socket, Buffer.alloc(0));
    });
    // Decide by the first bytes; a short first read waits for more.
    const route = (socket: net.Socket, seen: Buffer): void => {
      socket.once("data", (chunk: Buffer) => {
        const data = Buffer.concat([seen, chunk]);
        const n = Math.min(data.length, PREFACE.length);
        const isH2 = data.subarray(0, n).equals(PREFACE.subarray(0, n));
        if (isH2 && n < PREFACE.length) return route(socket, data);
        socket.setTimeout(0);
        socket.removeAllListeners("timeout");
        socket.pause();
        socket.off("error", dropSocket);
        socket.unshift(data);
        (isH2 ? h2 : h1!).emit("connection", socket);
        // The HTTP/2 session reads the unshifted bytes itself (on the next tick) and then takes the
        // native handle; resuming would let them flow past it as 'data' events and nghttp2 would
        // never see the preface (GOAWAY PROTOCOL_ERROR). HTTP/1.1 needs the resume.
        if (!isH2) socket.resume();
      });
    };
  }
  front.maxConnections = options.maxConnections;
  h2.on("session", (session: http2.Http2Session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
    // Idle means no open stream: a quiet watch stream is bounded by its own lifetime instead.
    let open = 0;
    session.on("stream", (stream: http2.ServerHttp2Stream) => {
      open++;
      stream.once("close", () => open--);
    });
    session.setTimeout(timeouts.idleMs, () => {
      if (open === 0) session.close();
    });
  });
  if (options.tls) {
    front.on("connection", (socket: net.Socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
    });
  }

  await new Promise<void>((resolve, reject) => {
    front.once("error", reject);
    front.listen({ port: options.port, host: options.host, reusePort: options.reusePort ?? false }, () => resolve());
  });
  const port = (front.address() as net.AddressInfo).port;
  const closed = new Promise<void>((resolve) => front.on("close", () => resolve()));
  return {
    port,
    closed,
    stopAccepting() {
      front.close();
      for (const s of sessions) s.close();
      h1?.close();
      h1?.closeIdleConnections();
    },
    destroyAll() {
      for (const s of sessions) s.destroy();
      h1?.closeAllConnections();
      for (const s of sockets) s.destroy();
    },
  };
}

/**
 * Bounds the time a request body may take: at most `bodyIdleMs` between two of its pieces and
 * `requestMs` in all (HTTP/1.1 keeps the total itself). A body that breaks either is cut off:
 * the HTTP/1.1 connection closes, the HTTP/2 stream is reset. Nothing is read here, so a handler
 * that never reads the body still decides when it is read; an HTTP/2 body still coming when the
 * answer is complete is declined.
 */
function guardRequestBodies(handler: RequestHandler, timeouts: HttpTimeouts): RequestHandler {
  return (req, res) => {
    if (!req.complete) {
      const stream = (req as unknown as { stream?: http2.ServerHttp2Stream }).stream;
      if (stream) {
        const cancel = () => {
          if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
        };
        stream.setTimeout(timeouts.bodyIdleMs, cancel);
        const total = setTimeout(cancel, timeouts.requestMs);
        const done = () => {
          clearTimeout(total);
          if (!stream.destroyed) stream.setTimeout(0);
        };
        req.once("end", done);
        stream.once("close", done);
        // Answered before the body was read (refused early, or over a limit): tell the client to
        // stop sending rather than let it wait on a flow-control window that will never open.
        stream.once("finish", () => {
          if (!req.complete) declineRestOfBody(stream);
        });
      } else {
        const socket = req.socket;
        const cut = () => socket.destroy();
        socket.setTimeout(timeouts.bodyIdleMs);
        socket.on("timeout", cut);
        // Answered before the body was all read (a refusal): Node starts keep-alive timing when
        // the answer is finished, which would let the rest of the body pause for the idle timeout
        // instead of the body's; the body's is put back until it ends, then keep-alive's.
        let answeredEarly = false;
        req.once("end", () => {
          socket.off("timeout", cut);
          if (answeredEarly) socket.setTimeout(timeouts.idleMs);
          // A finished response has started keep-alive timing on the socket: leave that.
          else if (!res.writableEnded) socket.setTimeout(0);
        });
        res.once("finish", () => {
          if (req.complete) return;
          answeredEarly = true;
          socket.setTimeout(timeouts.bodyIdleMs);
        });
      }
    }
    handler(req, res);
  };
}

/**
 * RST_STREAM NO_ERROR once the complete answer is out (RFC 9113 §8.1: the server may ask a client
 * to stop sending a request it has answered). The reset must follow the trailers on the wire —
 * sent earlier it discards them — and Node signals no such moment, so this looks at the stream's
 * state (END_STREAM sent) on a short, bounded backoff.
 */
function declineRestOfBody(stream: http2.ServerHttp2Stream): void {
  let waitMs = 1;
  const look = () => {
    if (stream.destroyed) return;
    if (stream.state.localClose || waitMs > 512) {
      stream.close(http2.constants.NGHTTP2_NO_ERROR);
      return;
    }
    setTimeout(look, waitMs);
    waitMs *= 2;
  };
  look();
}
