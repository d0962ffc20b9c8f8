// Clients that hold the port without finishing anything, tried with raw sockets against a server
// with short timeouts: a silent connection, partial headers, a stalled and a trickled body, a
// partial HTTP/2 preface, an idle HTTP/2 connection, a stalled HTTP/2 stream. Each used to stay
// open forever; each must now be closed. The tests assert that it closes (waiting well past the
// configured timeout), never how fast. Also the caps: connections, HTTP/2 streams per connection,
// and long-lived RPC streams (their lifetime, and how many one connection, one tenant, or
// everyone without a credential may hold).
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import http2 from "node:http2";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { promisify } from "node:util";
import { ConnectError, Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AttestationService } from "@kapsel/contracts/attestation";
import { Health } from "@kapsel/contracts/health";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { until } from "../../test/support/delivery.ts";
import { createEndpoint } from "../../test/support/ingest.ts";
import { createTenant } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";

const TIMEOUTS = {
  KAPSEL_HTTP_FIRST_BYTES_TIMEOUT_MS: "400",
  KAPSEL_HTTP_HEADERS_TIMEOUT_MS: "400",
  KAPSEL_HTTP_BODY_IDLE_TIMEOUT_MS: "400",
  KAPSEL_HTTP_REQUEST_TIMEOUT_MS: "1500",
  KAPSEL_HTTP_IDLE_TIMEOUT_MS: "600",
};
/** How long a test waits for the server to close something: far past every timeout above. */
const SLACK_MS = 15_000;

let server: TestServer;
let endpointId: string;
beforeAll(async () => {
  server = await startTestServer({ ...TIMEOUTS, KAPSEL_DELIVERY_ENABLED: "false" });
  const tenant = await createTenant(server.url, ADMIN_TOKEN);
  endpointId = await createEndpoint(server.url, tenant.apiKey);
});
afterAll(async () => {
  await server?.stop();
});

/** Opens a raw connection, runs `act` on it, and resolves with what the server sent once it
 * closed the connection; rejects if it is still open after SLACK_MS. */
function untilClosed(port: number, act: (socket: net.Socket) => void): Promise<{ received: string; openMs: number }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    let received = "";
    const started = performance.now();
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`still open after ${SLACK_MS} ms; received ${JSON.stringify(received.slice(0, 200))}`));
    }, SLACK_MS);
    socket.on("data", (d: Buffer) => (received += d.toString("latin1")));
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ received, openMs: performance.now() - started });
    });
    socket.on("connect", () => act(socket));
  });
}

/** Writes `bytes` one at a time, every `everyMs`, until the socket closes. */
function trickle(socket: net.Socket, bytes: string, everyMs: number): void {
  let i = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || i >= bytes.length) return clearInterval(timer);
    socket.write(bytes[i++]!);
  }, everyMs);
  socket.on("close", () => clearInterval(timer));
}

describe("connections that never finish are closed", () => {
  it("a silent TCP connection (no first bytes)", async () => {
    const r = await untilClosed(server.port, () => {});
    expect(r.received).toBe("");
  });

  it("partial HTTP/1.1 headers", async () => {
    const r = await untilClosed(server.port, (s) => s.write(`POST /ingest/${endpointId} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n`));
    expect(r.received === "" || r.received.startsWith("HTTP/1.1 408")).toBe(true);
  });

  it("HTTP/1.1 headers trickled a byte at a time, each pause shorter than any idle timeout", async () => {
    const r = await untilClosed(server.port, (s) => trickle(s, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ${"a".repeat(500)}\r\n\r\n`, 100));
    expect(r.received === "" || r.received.startsWith("HTTP/1.1 408")).toBe(true);
  });

  it("a body that stops half way", async () => {
    const r = await untilClosed(server.port, (s) => s.write(`POST /ingest/${endpointId} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n${"a".repeat(500)}`));
    expect(r.received).not.toMatch(/^HTTP\/1\.1 2/);
  });

  it("a body trickled a byte at a time, each pause shorter than the idle timeout (the total ends it)", async () => {
    const r = await untilClosed(server.port, (s) => {
      s.write(`POST /ingest/${endpointId} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n`);
      trickle(s, "a".repeat(100_000), 100);
    });
    expect(r.received).not.toMatch(/^HTTP\/1\.1 2/);
    // It outlived the idle timeout: the total request timeout closed it.
    expect(r.openMs).toBeGreaterThan(Number(TIMEOUTS.KAPSEL_HTTP_BODY_IDLE_TIMEOUT_MS));
  });

  it("a partial HTTP/2 preface", async () => {
    const r = await untilClosed(server.port, (s) => s.write("PRI * HTTP/2.0\r\n"));
    expect(r.received).toBe("");
  });

  it("an HTTP/2 connection with no streams (preface and settings, then silence)", async () => {
    const session = http2.connect(server.url);
    const closed = new Promise<void>((resolve) => session.on("close", () => resolve()));
    session.on("error", () => {});
    await new Promise<void>((resolve) => session.once("remoteSettings", () => resolve()));
    // Every stream the server allows is advertised, and it is bounded.
    expect(session.remoteSettings.maxConcurrentStreams).toBe(256);
    await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error("session still open")), SLACK_MS))]);
  });

  it("an HTTP/2 stream whose body stops: the stream is reset", async () => {
    const session = http2.connect(server.url);
    session.on("error", () => {});
    try {
      const stream = session.request({ ":method": "POST", ":path": `/ingest/${endpointId}`, "content-length": "1000" }, { endStream: false });
      stream.on("error", () => {});
      stream.on("data", () => {});
      stream.write("a".repeat(100));
      const code = await new Promise<number>((resolve, reject) => {
        stream.on("close", () => resolve(stream.rstCode ?? -1));
        setTimeout(() => reject(new Error("stream still open")), SLACK_MS);
      });
      expect(code).toBe(http2.constants.NGHTTP2_CANCEL);
    } finally {
      session.destroy();
    }
  });

  it("a request that completes in time is served as before", async () => {
    const r = await untilClosed(server.port, (s) => s.write("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    expect(r.received).toMatch(/^HTTP\/1\.1 200/);
  });
});

describe("caps", () => {
  let capped: TestServer;
  beforeAll(async () => {
    capped = await startTestServer({
      KAPSEL_DELIVERY_ENABLED: "false",
      KAPSEL_HTTP_MAX_CONNECTIONS: "20",
      KAPSEL_STREAM_MAX_LIFETIME_MS: "1500",
      KAPSEL_STREAMS_PER_CONNECTION: "2",
      KAPSEL_STREAMS_PER_TENANT: "3",
      KAPSEL_STREAMS_UNAUTHENTICATED: "4",
    });
  });
  afterAll(async () => {
    await capped?.stop();
  });

  it("connections past the cap are closed at once, while the ones before them stay open", async () => {
    const open: net.Socket[] = [];
    try {
      for (let i = 0; i < 20; i++) {
        const s = net.connect(capped.port, "127.0.0.1");
        s.on("error", () => {});
        await new Promise<void>((resolve) => s.once("connect", () => resolve()));
        open.push(s);
      }
      // Accepted before the next connection is counted.
      await new Promise((r) => setTimeout(r, 200));
      const extra = await untilClosed(capped.port, () => {});
      expect(extra.received).toBe("");
      expect(open.filter((s) => s.destroyed || s.readyState !== "open")).toEqual([]);
    } finally {
      for (const s of open) s.destroy();
      // The server counts them until it has seen them close.
      await until("room for new connections", async () => ((await fetch(`${capped.url}/healthz`).catch(() => undefined))?.status === 200 ? true : undefined));
    }
  });

  const watchHealth = (baseUrl: string) => {
    const client = createClient(Health, createGrpcTransport({ baseUrl }));
    return (signal?: AbortSignal) => (async () => {
      const seen: number[] = [];
      for await (const m of client.watch({ service: "" }, { signal })) seen.push(m.status);
      return seen;
    })();
  };

  it("a stream with no deadline ends normally after the maximum lifetime", async () => {
    const seen = await watchHealth(capped.url)();
    expect(seen.length).toBeGreaterThanOrEqual(1);
  });

  it("a connection holds at most its share of streams; another connection still opens one", async () => {
    const abort = new AbortController();
    const one = watchHealth(capped.url);
    const held = [one(abort.signal), one(abort.signal)];
    try {
      await new Promise((r) => setTimeout(r, 200));
      const third = await one().then(() => undefined, (e: unknown) => ConnectError.from(e));
      expect(third?.code).toBe(Code.ResourceExhausted);
      expect(third?.message).toContain("E1005");
      // A new transport is a new connection.
      expect((await watchHealth(capped.url)()).length).toBeGreaterThanOrEqual(1);
    } finally {
      abort.abort();
      await Promise.allSettled(held);
    }
  });

  it("unauthenticated streams are capped for the whole process, tenants' streams per tenant", async () => {
    const abort = new AbortController();
    const held: Promise<unknown>[] = [];
    try {
      // Four health watches on two connections fill the unauthenticated cap.
      for (const watch of [watchHealth(capped.url), watchHealth(capped.url)]) held.push(watch(abort.signal), watch(abort.signal));
      await new Promise((r) => setTimeout(r, 200));
      const refused = await watchHealth(capped.url)().then(() => undefined, (e: unknown) => ConnectError.from(e));
      expect(refused?.code).toBe(Code.ResourceExhausted);

      // A tenant's checkpoint watches: three (on separate connections) fill its cap.
      const key = (await createTenant(capped.url, ADMIN_TOKEN)).apiKey;
      const watchCheckpoints = () => {
        const client = createClient(AttestationService, createGrpcTransport({ baseUrl: capped.url }));
        return (async () => {
          for await (const _ of client.watchCheckpoints({}, { signal: abort.signal, headers: { authorization: `Bearer ${key}` } })) { /* keep reading */ }
        })();
      };
      for (let i = 0; i < 3; i++) held.push(watchCheckpoints());
      await new Promise((r) => setTimeout(r, 200));
      const over = await watchCheckpoints().then(() => undefined, (e: unknown) => ConnectError.from(e));
      expect(over?.code).toBe(Code.ResourceExhausted);
    } finally {
      abort.abort();
      await Promise.allSettled(held);
    }
  });
});

describe("with TLS", () => {
  let dir: string;
  let secure: TestServer;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "kapsel-slow-tls-"));
    const key = path.join(dir, "k.pem");
    const cert = path.join(dir, "c.pem");
    await promisify(execFile)("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=localhost",
      "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-days", "1", "-keyout", key, "-out", cert,
    ]);
    secure = await startTestServer({ ...TIMEOUTS, KAPSEL_DELIVERY_ENABLED: "false", KAPSEL_TLS_CERT: cert, KAPSEL_TLS_KEY: key });
  });
  afterAll(async () => {
    await secure?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("a connection that never starts its handshake is closed", async () => {
    const r = await untilClosed(secure.port, () => {});
    expect(r.received).toBe("");
  });

  it("partial HTTP/1.1 headers after the handshake are closed", async () => {
    await new Promise<void>((resolve, reject) => {
      const socket = tls.connect({ host: "127.0.0.1", port: secure.port, servername: "localhost", rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] }, () => {
        socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n");
      });
      const timer = setTimeout(() => reject(new Error("still open")), SLACK_MS);
      socket.on("data", () => {});
      socket.on("error", () => {});
      socket.on("close", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  });

  it("an idle HTTP/2 connection is closed", async () => {
    const session = http2.connect(secure.url, { rejectUnauthorized: false });
    session.on("error", () => {});
    const closed = new Promise<void>((resolve) => session.on("close", () => resolve()));
    await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error("session still open")), SLACK_MS))]);
  });
});
