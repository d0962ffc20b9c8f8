// No work for strangers before their credential is checked. RPC bodies used to be read,
// decompressed (up to 64 MiB) and parsed before authentication: a 60 KB gzip bomb without any
// token held the event loop for seconds. Now every RPC is refused from its headers alone — in the
// caller's own protocol — before a byte of its body is read, and each method reads at most its
// own limit, decompressed or not, so a bomb with a valid key stops at that limit too.
import http2 from "node:http2";
import net from "node:net";
import { randomBytes } from "node:crypto";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../src/free-port.ts";
import { createTestDatabase } from "../../test/support/database.ts";
import { createTenant } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, spawnServer, startTestServer, type ServerProcess, type TestServer } from "../../test/support/server.ts";

let server: TestServer;
let apiKey: string;
beforeAll(async () => {
  server = await startTestServer({ KAPSEL_DELIVERY_ENABLED: "false" });
  apiKey = (await createTenant(server.url, ADMIN_TOKEN)).apiKey;
});
afterAll(async () => {
  await server?.stop();
});

const LIST_ENDPOINTS = "/kapsel.v1.ManagementService/ListEndpoints";
const WATCH_EVENTS = "/kapsel.v1.ManagementService/WatchEvents";

/** ListEndpoints JSON whose page token is 60 MB of one letter, gzipped to about 60 KB: under the
 * old 64 MiB limit, so the old server inflated and parsed all of it. */
const BOMB = gzipSync(Buffer.from(`{"pageToken":"${"a".repeat(60 * 1024 * 1024)}"}`), { level: 9 });

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** An HTTP/1.1 request whose body declares `declared` bytes but only `sent` of them are written;
 * resolves with the answer (read up to its Content-Length or the end of a chunked body). */
function h1Partial(path: string, headers: Record<string, string>, declared: number, sent: Buffer): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(server.port, "127.0.0.1");
    let raw = Buffer.alloc(0);
    const done = (answer: RawAnswer) => {
      socket.destroy();
      resolve(answer);
    };
    socket.on("data", (d: Buffer) => {
      raw = Buffer.concat([raw, d]);
      const end = raw.indexOf("\r\n\r\n");
      if (end === -1) return;
      const [statusLine, ...lines] = raw.subarray(0, end).toString("latin1").split("\r\n");
      const h = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]));
      const body = raw.subarray(end + 4);
      const status = Number(statusLine!.split(" ")[1]);
      if (h["content-length"] !== undefined && body.length >= Number(h["content-length"])) done({ status, headers: h, body: body.subarray(0, Number(h["content-length"])) });
      else if (h["transfer-encoding"] === "chunked" && body.includes("\r\n0\r\n\r\n")) done({ status, headers: h, body: dechunk(body) });
    });
    socket.on("error", reject);
    socket.on("close", () => reject(new Error(`connection closed without a complete answer: ${raw.toString("latin1").slice(0, 200)}`)));
    const head = Object.entries({ host: "x", ...headers, "content-length": String(declared) }).map(([k, v]) => `${k}: ${v}\r\n`).join("");
    socket.write(`POST ${path} HTTP/1.1\r\n${head}\r\n`);
    socket.write(sent);
  });
}

function dechunk(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = body.indexOf("\r\n", at);
    const size = parseInt(body.subarray(at, eol).toString("latin1"), 16);
    if (!size) return Buffer.concat(parts);
    parts.push(body.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}

/** A gRPC call over h2c whose body is `sent` and never ends; resolves with the response headers
 * (a trailers-only answer carries grpc-status there) or the trailers. */
function grpcPartial(path: string, headers: Record<string, string>, sent: Buffer): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(server.url);
    session.on("error", reject);
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...headers }, { endStream: false });
    const finish = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] === undefined) return;
      session.destroy();
      resolve(Object.fromEntries(Object.entries(h).map(([k, v]) => [k, String(v)])));
    };
    stream.on("response", finish);
    stream.on("trailers", finish);
    stream.on("data", () => {});
    stream.on("error", reject);
    stream.write(sent);
  });
}

/** A gRPC (and gRPC-Web) message envelope: flags, length, data. */
function envelope(data: Buffer, compressed: boolean): Buffer {
  const head = Buffer.alloc(5);
  head[0] = compressed ? 1 : 0;
  head.writeUInt32BE(data.length, 1);
  return Buffer.concat([head, data]);
}

describe("an RPC without a valid credential is refused from its headers, before its body arrives", () => {
  it("Connect unary (JSON, gzip): 401 unauthenticated with E1004, with 1 KB of a declared 60 KB sent", async () => {
    const r = await h1Partial(LIST_ENDPOINTS, { "content-type": "application/json", "content-encoding": "gzip" }, BOMB.length, BOMB.subarray(0, 1024));
    expect(r.status).toBe(401);
    const body = JSON.parse(r.body.toString());
    expect(body.code).toBe("unauthenticated");
    expect(body.details[0].debug.reason).toBe("E1004");
  });

  it("Connect unary with a wrong key, and with a key lacking the scope (403), the same way", async () => {
    const wrong = await h1Partial(LIST_ENDPOINTS, { "content-type": "application/json", authorization: "Bearer ksk_not-a-key" }, 100_000, Buffer.from("{"));
    expect(wrong.status).toBe(401);
    const admin = await h1Partial(LIST_ENDPOINTS, { "content-type": "application/json", authorization: `Bearer ${ADMIN_TOKEN}` }, 100_000, Buffer.from("{"));
    expect(admin.status).toBe(403);
    expect(JSON.parse(admin.body.toString()).code).toBe("permission_denied");
  });

  it("Connect server stream: an end-of-stream message with unauthenticated", async () => {
    const r = await h1Partial(WATCH_EVENTS, { "content-type": "application/connect+json" }, 100_000, envelope(Buffer.from("{"), false).subarray(0, 3));
    expect(r.status).toBe(200);
    // The last envelope (flag 0x02) carries the error.
    const flags = r.body[0]!;
    const json = JSON.parse(r.body.subarray(5, 5 + r.body.readUInt32BE(1)).toString());
    expect(flags & 0x02).toBe(0x02);
    expect(json.error.code).toBe("unauthenticated");
  });

  it("gRPC-Web over HTTP/1.1: grpc-status 16", async () => {
    const r = await h1Partial(LIST_ENDPOINTS, { "content-type": "application/grpc-web+proto" }, 100_000, envelope(Buffer.alloc(10), false));
    expect(r.status).toBe(200);
    // In the headers of a trailers-only answer, or in the trailer frame (flag 0x80) of the body.
    const trailer = r.body.length > 5 && r.body[0] === 0x80 ? r.body.subarray(5).toString() : "";
    expect(r.headers["grpc-status"] ?? /grpc-status: ?(\d+)/.exec(trailer)?.[1]).toBe("16");
  });

  it("gRPC over HTTP/2 with a compressed bomb envelope: grpc-status 16, trailers-only, body never finished", async () => {
    const h = await grpcPartial(LIST_ENDPOINTS, { "grpc-encoding": "gzip" }, envelope(BOMB, true).subarray(0, 2048));
    expect(h["grpc-status"]).toBe("16");
  });
});

describe("gzip bombs, against a server in its own process", () => {
  // Its own process, so that the health checks time the server's event loop, not the test's.
  let proc: ServerProcess;
  let metricsPort: number;
  beforeAll(async () => {
    metricsPort = await freePort();
    proc = await spawnServer({
      DATABASE_URL: await createTestDatabase(),
      KAPSEL_DELIVERY_ENABLED: "false",
      KAPSEL_LOG_LEVEL: "warn",
      KAPSEL_METRICS_LISTEN: `127.0.0.1:${metricsPort}`,
    });
  });
  afterAll(async () => {
    await proc?.stop();
  });

  const rss = async () => {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    return Number(/^process_resident_memory_bytes (\d+)/m.exec(text)![1]);
  };

  /** `count` sequential /healthz latencies in ms, sorted. */
  async function healthLatencies(count: number): Promise<number[]> {
    const out: number[] = [];
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      const res = await fetch(`${proc.url}/healthz`);
      await res.arrayBuffer();
      out.push(performance.now() - t0);
    }
    return out.sort((a, b) => a - b);
  }

  /** /healthz latencies (sorted) while four clients keep posting `body` as gzip without a token. */
  async function healthUnderAttack(body: Buffer): Promise<{ latencies: number[]; statuses: number[]; answered: number }> {
    let stop = false;
    let answered = 0;
    const statuses = new Set<number>();
    const attackers = Array.from({ length: 4 }, async () => {
      while (!stop) {
        const res = await fetch(`${proc.url}${LIST_ENDPOINTS}`, {
          method: "POST",
          headers: { "content-type": "application/json", "content-encoding": "gzip" },
          body: new Uint8Array(body),
        });
        statuses.add(res.status);
        await res.arrayBuffer();
        answered++;
      }
    });
    const latencies = await healthLatencies(40);
    stop = true;
    await Promise.all(attackers);
    return { latencies, statuses: [...statuses], answered };
  }

  it("without a token: each is answered 401, and /healthz stays as fast as under the same flood of harmless bodies", async () => {
    await healthLatencies(10); // warm-up
    // The baseline: the same number of clients posting bodies of the same size that inflate to no
    // more than themselves (random bytes), measured the same way in the same minute.
    const control = await healthUnderAttack(gzipSync(randomBytes(BOMB.length), { level: 0 }).subarray(0, BOMB.length));
    const attack = await healthUnderAttack(BOMB);
    expect(control.statuses).toEqual([401]);
    expect(attack.statuses).toEqual([401]);
    expect(attack.answered).toBeGreaterThan(4);
    // Inflating and parsing one bomb used to hold the event loop for about a second.
    const at = (xs: number[], q: number) => xs[Math.floor(q * (xs.length - 1))]!;
    expect(at(attack.latencies, 0.5)).toBeLessThanOrEqual(3 * at(control.latencies, 0.5) + 10);
    expect(at(attack.latencies, 0.9)).toBeLessThanOrEqual(3 * at(control.latencies, 0.9) + 50);
  });

  it("with a valid key, to a method with a small limit: ResourceExhausted as soon as the expansion passes 64 KiB, memory stays flat", async () => {
    const apiKey = (await createTenant(proc.url, ADMIN_TOKEN)).apiKey;
    const rssBefore = await rss();
    const answers = await Promise.all(Array.from({ length: 8 }, async () => {
      const res = await fetch(`${proc.url}${LIST_ENDPOINTS}`, {
        method: "POST",
        headers: { "content-type": "application/json", "content-encoding": "gzip", authorization: `Bearer ${apiKey}` },
        body: BOMB,
      });
      return { status: res.status, body: await res.json() };
    }));
    for (const a of answers) {
      expect(a.status).toBe(429);
      expect(a.body.code).toBe("resource_exhausted");
      expect(a.body.message).toContain("65536");
    }
    // Eight bombs inflated in full would have held 8 × 60 MB at once.
    expect((await rss()) - rssBefore).toBeLessThan(100 * 1024 * 1024);
  });
});

describe("read limits with a valid key", () => {
  it("a compressed gRPC message that inflates past the method's limit: grpc-status 8 (ResourceExhausted)", async () => {
    const h = await grpcPartial(LIST_ENDPOINTS, { "grpc-encoding": "gzip", authorization: `Bearer ${apiKey}` }, envelope(BOMB, true));
    expect(h["grpc-status"]).toBe("8");
  });

  it("over HTTP/2, a body still coming after the answer is declined (RST_STREAM NO_ERROR): the client gets its status and the stream closes", async () => {
    const session = http2.connect(server.url);
    session.on("error", () => {});
    try {
      const message = Buffer.alloc(2_500_000, 0x41);
      const result = await new Promise<{ status?: string; rst?: number }>((resolve, reject) => {
        const stream = session.request({ ":method": "POST", ":path": LIST_ENDPOINTS, "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${apiKey}` });
        let status: string | undefined;
        stream.on("trailers", (t) => (status = String(t["grpc-status"])));
        stream.on("data", () => {});
        stream.on("error", () => {});
        stream.on("close", () => resolve({ status, rst: stream.rstCode }));
        setTimeout(() => reject(new Error(`the stream stayed open (status ${status})`)), 15_000);
        stream.end(envelope(message, false));
      });
      expect(result).toEqual({ status: "8", rst: http2.constants.NGHTTP2_NO_ERROR });
    } finally {
      session.destroy();
    }
  });

  it("a body that is not gzip at all is InvalidArgument, not Internal", async () => {
    const res = await fetch(`${server.url}${LIST_ENDPOINTS}`, {
      method: "POST",
      headers: { "content-type": "application/json", "content-encoding": "gzip", authorization: `Bearer ${apiKey}` },
      body: BOMB.subarray(0, 100),
    });
    expect(res.status).toBe(400);
    expect((await res.json()).code).toBe("invalid_argument");
  });

  it("an uncompressed body over the method's limit is refused the same way; Ingest takes a payload's worth", async () => {
    const big = JSON.stringify({ pageToken: "a".repeat(100 * 1024) });
    const res = await fetch(`${server.url}${LIST_ENDPOINTS}`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${apiKey}` },
      body: big,
    });
    expect(res.status).toBe(429);
    expect((await res.json()).code).toBe("resource_exhausted");
    // 1 MiB of payload (1.3 MiB of base64 JSON) is within Ingest's limit: the call reaches the
    // handler, which refuses the unknown endpoint.
    const ingest = await fetch(`${server.url}/kapsel.v1.IngestService/Ingest`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${apiKey}` },
      body: JSON.stringify({ endpointId: "00000000-0000-4000-8000-000000000000", payload: Buffer.alloc(1024 * 1024).toString("base64") }),
    });
    expect(ingest.status).toBe(404);
  });
});
