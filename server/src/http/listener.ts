// One port for every protocol. Node's cleartext HTTP/2 server speaks only HTTP/2 (prior
// knowledge), while browsers and webhook senders speak HTTP/1.1; so a plain TCP server looks at
// the first bytes of each connection and hands it to an h2c server when they are the HTTP/2
// preface ("PRI * HTTP/2.0"), else to an HTTP/1.1 server. With TLS, ALPN does the same job.
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { readFileSync } from "node:fs";

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
  tls?: { certFile: string; keyFile: string };
}

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

function dropSocket(this: net.Socket): void {
  this.destroy();
}

const h2Options: http2.ServerOptions = {
  // Watch streams are cancelled often; nghttp2's rapid-reset guard would otherwise GOAWAY clients.
  streamResetBurst: 10_000,
  streamResetRate: 1_000,
  settings: { maxConcurrentStreams: 1000 },
} as http2.ServerOptions;

export async function listen(options: ListenOptions, handler: RequestHandler): Promise<Listener> {
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.Http2Session>();
  let front: net.Server;
  let h1: http.Server | undefined;
  let h2: http2.Http2Server | http2.Http2SecureServer;

  if (options.tls) {
    h2 = http2.createSecureServer(
      { ...h2Options, allowHTTP1: true, cert: readFileSync(options.tls.certFile), key: readFileSync(options.tls.keyFile) },
      handler as never,
    );
    front = h2 as unknown as net.Server;
  } else {
    h1 = http.createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, handler as never);
    h2 = http2.createServer(h2Options, handler as never);
    front = net.createServer((socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      // Until a server owns the socket, a client's reset would be an unhandled 'error' event,
      // which crashes the process.
      socket.on("error", dropSocket);
      route(socket, Buffer.alloc(0));
    });
    // Decide by the first bytes; a short first read waits for more.
    const route = (socket: net.Socket, seen: Buffer): void => {
      socket.once("data", (chunk: Buffer) => {
        const data = Buffer.concat([seen, chunk]);
        const n = Math.min(data.length, PREFACE.length);
        const isH2 = data.subarray(0, n).equals(PREFACE.subarray(0, n));
        if (isH2 && n < PREFACE.length) return route(socket, data);
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
  h2.on("session", (session: http2.Http2Session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
  });
  if (options.tls) {
    front.on("connection", (socket: net.Socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
    });
  }

  await new Promise<void>((resolve, reject) => {
    front.once("error", reject);
    front.listen(options.port, options.host, () => resolve());
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
