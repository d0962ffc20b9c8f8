// No input a caller can send may produce Internal (or Unknown, DataLoss) or a 5xx other than 503
// E9001/E9002, and none may bring the process down. A bounded, seeded fuzz against a real server
// process on a real database: every RPC of every service it serves (the list comes from the
// service descriptors, and the server's own reflection must list no other service) over Connect
// JSON, Connect binary and gRPC, with random, malformed and byte-mutated messages; and mutated
// requests to every plain HTTP route (gateway, source gateway, log tiles, checkpoint, proof
// download, console, health, metrics), some as raw bytes no HTTP client would send. The server's
// log must hold no error line afterwards (an unexpected error is logged even when masked), and the
// process must still answer /healthz. Reproduce a failure with KAPSEL_FUZZ_SEED (and narrow it to
// one RPC with KAPSEL_FUZZ_METHOD).
import http2 from "node:http2";
import net from "node:net";
import { create, fromBinary, fromJson, toBinary, type DescMessage, type DescMethod, type DescService } from "@bufbuild/protobuf";
import fc from "fast-check";
import { AttestationService } from "@kapsel/contracts/attestation";
import { Health } from "@kapsel/contracts/health";
import { IngestService } from "@kapsel/contracts/ingest";
import { ManagementService } from "@kapsel/contracts/management";
import { ServerReflection as ReflectionV1, ServerReflectionRequestSchema, ServerReflectionResponseSchema } from "@kapsel/contracts/reflection/v1";
import { ServerReflection as ReflectionV1alpha } from "@kapsel/contracts/reflection/v1alpha";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { accessOf } from "../src/auth/access.ts";
import { freePort } from "../src/free-port.ts";
import { createTestDatabase } from "../../test/support/database.ts";
import { createDestination, eventReaching, ingest } from "../../test/support/delivery.ts";
import { edgeCases, fuzzMessage, malformedJson, mutatedBinary, type FuzzPools } from "../../test/support/fuzz-messages.ts";
import { rpc } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, spawnServer, type ServerProcess } from "../../test/support/server.ts";
import { startSink, type Sink } from "../../test/support/sink.ts";

const SEED = Number(process.env.KAPSEL_FUZZ_SEED ?? 20261201);
const SERVICES: DescService[] = [IngestService, ManagementService, AttestationService, Health, ReflectionV1, ReflectionV1alpha];
/** Messages generated per RPC (each sent over all three protocols), plus malformed and mutated ones. */
const PER_METHOD = { messages: 3, malformed: 2, mutated: 3 };
const PARALLEL = 8;
const STREAM_DEADLINE_MS = 400;
const ANSWER_WITHIN_MS = 20_000;

let proc: ServerProcess;
let sink: Sink;
let metricsUrl: string;
let apiKey: string;
const pools: FuzzPools = { ids: [], strings: [] };
/** Real ids by the JSON name of the fields that carry them. */
const byField: Record<string, string> = {};
const problems: string[] = [];
let sent = 0;

beforeAll(async () => {
  const metricsPort = await freePort();
  metricsUrl = `http://127.0.0.1:${metricsPort}`;
  sink = await startSink();
  proc = await spawnServer({
    DATABASE_URL: await createTestDatabase(),
    KAPSEL_LOG_LEVEL: "warn",
    KAPSEL_METRICS_LISTEN: `127.0.0.1:${metricsPort}`,
    KAPSEL_CHECKPOINT_INTERVAL_MS: "200",
    KAPSEL_RATE_LIMIT_PER_SECOND: "1000000",
    KAPSEL_RATE_LIMIT_BURST: "1000000",
  });
  // Real objects, so that fuzzed ids often name something and requests reach deep into handlers.
  const d = await createDestination(proc.url, sink.url);
  apiKey = d.apiKey;
  const eventId = await ingest(proc.url, d.endpointId, '{"type":"fuzz"}', { "idempotency-key": "fuzz-1" });
  await ingest(proc.url, d.endpointId, '{"n":2}');
  const event = await eventReaching(proc.url, apiKey, eventId, "EVENT_STATUS_DELIVERED");
  const source = await rpc(proc.url, "CreateSource", { name: "fuzz", scheme: "SOURCE_SCHEME_HMAC_SHA256" }, apiKey);
  const keys = await rpc(proc.url, "ListApiKeys", {}, apiKey);
  const page = await rpc(proc.url, "ListEvents", { pageSize: 1 }, apiKey);
  pools.ids.push(d.tenantId, d.endpointId, eventId, event.messageId, event.attempts[0].id, source.body.source.id, keys.body.apiKeys[0].id);
  Object.assign(byField, {
    tenantId: d.tenantId, endpointId: d.endpointId, eventId, messageId: event.messageId, attemptId: event.attempts[0].id,
    sourceId: source.body.source.id, keyId: keys.body.apiKeys[0].id, apiKeyId: keys.body.apiKeys[0].id,
  });
  const token = page.body.nextPageToken as string;
  pools.strings.push(token, token.slice(0, -2), `${token}x`, Buffer.from(Buffer.from(token, "base64url").toString("latin1").replace(/\d/g, "9")).toString("base64url"), d.signingSecret, sink.url);
}, 120_000);

afterAll(async () => {
  await proc?.stop();
  await sink?.close();
});

// ---------------------------------------------------------------------------------------------
// Talking to the server

interface H2Answer {
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
}

let session: http2.ClientHttp2Session | undefined;
function h2(): http2.ClientHttp2Session {
  if (!session || session.destroyed || session.closed) {
    session = http2.connect(proc.url);
    session.on("error", () => {});
  }
  return session;
}

function h2Request(headers: http2.OutgoingHttpHeaders, body: Uint8Array): Promise<H2Answer> {
  return new Promise((resolve, reject) => {
    const stream = h2().request({ ":method": "POST", ...headers });
    const chunks: Buffer[] = [];
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const timer = setTimeout(() => {
      stream.close();
      reject(new Error(`no answer within ${ANSWER_WITHIN_MS} ms (headers ${JSON.stringify(responseHeaders)}, ${chunks.length} chunks)`));
    }, ANSWER_WITHIN_MS);
    stream.on("response", (h) => (responseHeaders = h));
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (d: Buffer) => chunks.push(d));
    stream.on("close", () => {
      clearTimeout(timer);
      resolve({ headers: responseHeaders, trailers, body: Buffer.concat(chunks) });
    });
    stream.on("error", () => {});
    stream.end(body);
  });
}

function envelope(data: Uint8Array, flags = 0): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(data.length, 1);
  return Buffer.concat([head, data]);
}

function envelopes(body: Buffer): { flags: number; data: Buffer }[] {
  const out: { flags: number; data: Buffer }[] = [];
  for (let at = 0; at + 5 <= body.length;) {
    const length = body.readUInt32BE(at + 1);
    out.push({ flags: body[at]!, data: body.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return out;
}

const BAD_CODES = new Set(["internal", "unknown", "data_loss"]);
const overloadOrOutage = (text: string) => /E900[12]/.test(text);

/** Any problem with a Connect-protocol answer, or undefined. */
function judgeConnect(status: number, body: Buffer, streaming: boolean): string | undefined {
  const text = body.toString();
  if (status >= 500 && !(status === 503 && overloadOrOutage(text))) return `HTTP ${status} ${text.slice(0, 300)}`;
  let errorCode: string | undefined;
  if (streaming && status === 200) {
    const end = envelopes(body).find((e) => (e.flags & 0x02) !== 0);
    if (!end) return `stream ended without an end-of-stream message (${body.length} bytes)`;
    const json = JSON.parse(end.data.toString() || "{}");
    errorCode = json.error?.code;
    if (errorCode === "unavailable" && !overloadOrOutage(end.data.toString())) return `unavailable without E9001/E9002: ${end.data.toString().slice(0, 300)}`;
  } else if (status !== 200 && text.startsWith("{")) {
    errorCode = JSON.parse(text).code;
  }
  if (errorCode !== undefined && BAD_CODES.has(errorCode)) return `${errorCode}: ${text.slice(0, 300)}`;
  return undefined;
}

function judgeGrpc(a: H2Answer): string | undefined {
  if (Number(a.headers[":status"]) !== 200) return `HTTP ${a.headers[":status"]}`;
  const status = String(a.trailers["grpc-status"] ?? a.headers["grpc-status"]);
  const message = decodeURIComponent(String(a.trailers["grpc-message"] ?? a.headers["grpc-message"] ?? ""));
  if (["2", "13", "15"].includes(status)) return `grpc-status ${status}: ${message.slice(0, 300)}`;
  if (status === "14" && !overloadOrOutage(message)) return `grpc-status 14 without E9001/E9002: ${message}`;
  if (status === "undefined") return "no grpc-status";
  return undefined;
}

function credentialFor(method: DescMethod, pick: number): string | undefined {
  // Mostly the credential the RPC needs, so the handler runs; sometimes none or a wrong one.
  if (pick % 8 === 6) return undefined;
  if (pick % 8 === 7) return ["ksk_fuzz", ADMIN_TOKEN, apiKey][pick % 3];
  const access = accessOf(method.parent.typeName, method.name);
  return access === "admin" ? ADMIN_TOKEN : access === "public" ? undefined : access === "admin-or-read" || access === "admin-or-manage" ? (pick % 2 ? ADMIN_TOKEN : apiKey) : apiKey;
}

type Protocol = "connect-json" | "connect-proto" | "grpc";

async function send(method: DescMethod, protocol: Protocol, body: Uint8Array, token: string | undefined, note: string): Promise<void> {
  sent++;
  const path = `/${method.parent.typeName}/${method.name}`;
  const streaming = method.methodKind !== "unary";
  const auth: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  let problem: string | undefined;
  try {
    if (protocol === "grpc") {
      const answer = await h2Request({
        ":path": path, "content-type": "application/grpc", te: "trailers", ...auth,
        ...(streaming ? { "grpc-timeout": `${STREAM_DEADLINE_MS}m` } : {}),
      }, envelope(body));
      problem = judgeGrpc(answer);
    } else {
      const json = protocol === "connect-json";
      const contentType = streaming ? (json ? "application/connect+json" : "application/connect+proto") : json ? "application/json" : "application/proto";
      const headers = { "content-type": contentType, ...auth, ...(streaming ? { "connect-timeout-ms": String(STREAM_DEADLINE_MS) } : {}) };
      if (method.methodKind === "bidi_streaming") {
        // Bidirectional streams need HTTP/2.
        const answer = await h2Request({ ":path": path, ...headers }, envelope(body));
        problem = judgeConnect(Number(answer.headers[":status"]), answer.body, true);
      } else {
        const res = await fetch(`${proc.url}${path}`, { method: "POST", headers, body: new Uint8Array(streaming ? envelope(body) : body), signal: AbortSignal.timeout(ANSWER_WITHIN_MS) });
        problem = judgeConnect(res.status, Buffer.from(await res.arrayBuffer()), streaming);
      }
    }
  } catch (err) {
    problem = `request failed: ${(err as Error).message}`;
  }
  if (problem) problems.push(`${path} over ${protocol} (${note}, ${token ? "with a credential" : "anonymous"}): ${problem}\n    request: ${Buffer.from(body).toString(protocol === "connect-json" ? "utf8" : "base64").slice(0, process.env.KAPSEL_FUZZ_METHOD ? undefined : 400)}`);
}

/** Runs `jobs` with at most PARALLEL in flight. */
async function runAll(jobs: (() => Promise<void>)[]): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: PARALLEL }, async () => {
    while (next < jobs.length) await jobs[next++]!();
  }));
}

function binaryOf(desc: DescMessage, json: unknown): Uint8Array | undefined {
  try {
    return toBinary(desc, fromJson(desc, json as never, { ignoreUnknownFields: true }));
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------

describe("fuzzing every RPC", () => {
  it("the server serves exactly the services this test fuzzes", async () => {
    const request = toBinary(ServerReflectionRequestSchema, create(ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } }));
    const answer = await h2Request({ ":path": "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "content-type": "application/grpc", te: "trailers" }, envelope(request));
    const [first] = envelopes(answer.body);
    const listed = fromBinary(ServerReflectionResponseSchema, first!.data);
    const names = listed.messageResponse.case === "listServicesResponse" ? listed.messageResponse.value.service.map((s) => s.name) : [];
    expect(names.sort()).toEqual(SERVICES.map((s) => s.typeName).sort());
  });

  it("no message, malformed or not, gets Internal or a 5xx other than E9001/E9002, over Connect JSON, Connect binary and gRPC", { timeout: 120_000 }, async () => {
    problems.length = 0;
    const all = SERVICES.flatMap((s) => s.methods);
    expect(all.length).toBeGreaterThanOrEqual(40);
    // KAPSEL_FUZZ_METHOD=Name narrows a reproduction to one RPC (same seeds as in the full run).
    const only = process.env.KAPSEL_FUZZ_METHOD;
    const methods = all.map((method, m) => ({ method, m })).filter(({ method }) => only === undefined || method.name === only);
    const jobs: (() => Promise<void>)[] = [];
    methods.forEach(({ method, m }) => {
      const seed = SEED + m;
      const messages = fc.sample(fuzzMessage(method.input, pools), { seed, numRuns: PER_METHOD.messages });
      messages.forEach((json, i) => {
        const token = credentialFor(method, seed + i);
        const binary = binaryOf(method.input, json) ?? toBinary(method.input, create(method.input));
        jobs.push(() => send(method, "connect-json", Buffer.from(JSON.stringify(json)), token, "generated"));
        jobs.push(() => send(method, "connect-proto", binary, token, "generated"));
        jobs.push(() => send(method, "grpc", binary, token, "generated"));
      });
      for (const text of fc.sample(malformedJson(method.input), { seed, numRuns: PER_METHOD.malformed })) {
        jobs.push(() => send(method, "connect-json", Buffer.from(text), credentialFor(method, seed), "malformed JSON"));
      }
      // Each field at each of its edges, alternately over Connect JSON and gRPC.
      edgeCases(method.input, byField).forEach((json, i) => {
        const binary = i % 2 ? binaryOf(method.input, json) : undefined;
        const token = credentialFor(method, i % 2);
        jobs.push(() => (binary ? send(method, "grpc", binary, token, "edge case") : send(method, "connect-json", Buffer.from(JSON.stringify(json)), token, "edge case")));
      });
      const valid = binaryOf(method.input, messages[0]) ?? new Uint8Array();
      fc.sample(mutatedBinary(valid), { seed, numRuns: PER_METHOD.mutated }).forEach((bytes, i) => {
        jobs.push(() => send(method, i % 2 ? "grpc" : "connect-proto", bytes, credentialFor(method, seed), "mutated binary"));
      });
    });
    await runAll(jobs);
    session?.close();
    expect(sent).toBe(jobs.length);
    expect(problems, problems.join("\n")).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------

const HTTP_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"];

function pathArbitrary(): fc.Arbitrary<string> {
  const id = fc.oneof(fc.constantFrom(...pools.ids), fc.uuid(), fc.constantFrom("", "x", "%00", "%ZZ", "%2e%2e", "..", "a%2Fb", "%F0%9F%98%80", "0".repeat(300)), fc.webSegment());
  const tile = fc.oneof(fc.constantFrom("0/000", "0/000.p/1", "1/000", "0/x001/000", "63/000", "64/000", "0/x000/000", "0/000.p/0", "0/000.p/256", "0/999", "0/-01"), fc.webPath());
  return fc.oneof(
    id.map((i) => `/ingest/${i}`),
    id.map((i) => `/ingest/sources/${i}`),
    fc.constant("/log/checkpoint"),
    tile.map((t) => `/log/tile/${t}`),
    id.map((i) => `/v1/attempts/${i}/proof`),
    fc.oneof(fc.webPath(), fc.constantFrom("index.html", "assets/x.js", "../package.json", "%2e%2e/x", "events", "events/x", "a".repeat(2000))).map((p) => `/console/${p.replace(/^\//, "")}`),
    fc.constantFrom("/", "/console", "/healthz", "/readyz", "/metrics", "/healthz/", "//healthz", "/kapsel.v1.ManagementService/", "/kapsel.v1.Nope/Nope", "*"),
    fc.webPath(),
  ).chain((p) => fc.oneof({ weight: 4, arbitrary: fc.constant(p) }, { weight: 1, arbitrary: fc.webQueryParameters().map((q) => `${p}?${q}`) }));
}

function headersArbitrary(): fc.Arbitrary<Record<string, string>> {
  const token = fc.oneof(fc.constantFrom(apiKey, ADMIN_TOKEN, "ksk_x", "garbage"), fc.string({ maxLength: 30 }).map((s) => s.replace(/[^\x21-\x7e]/g, "")));
  const printable = fc.string({ maxLength: 60 }).map((s) => s.replace(/[^\x20-\x7e]/g, "")).filter((s) => s === s.trim());
  return fc.record({
    "content-type": fc.constantFrom("application/json", "text/plain", "application/proto", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset=utf-16", "x/y; a=\"b\""),
    "content-encoding": fc.constantFrom("gzip", "br", "deflate", "identity", "x"),
    authorization: token.map((t) => `Bearer ${t}`),
    "idempotency-key": printable,
    "webhook-id": printable,
    "webhook-timestamp": fc.oneof(fc.constantFrom("0", "-1", "99999999999999999999", "1e3", ""), fc.integer().map(String)),
    "webhook-signature": fc.oneof(printable, fc.constantFrom("v1,", "v1,AAAA", "v1,=", "v2,x v1,y")),
    "x-hub-signature-256": fc.oneof(printable, fc.constantFrom("sha256=", "sha256=zz", "sha256=" + "0".repeat(64))),
    "stripe-signature": fc.oneof(printable, fc.constantFrom("t=1,v1=", "t=,v1=00", "v1=00,t=99999999999999999")),
    "x-signature": printable,
    "x-github-delivery": printable,
    "if-none-match": printable,
    "accept-encoding": fc.constantFrom("gzip", "br", "*", "identity;q=0", "x"),
    "x-request-id": printable,
    "x-event-type": printable,
  }, { requiredKeys: [] });
}

function bodyArbitrary(): fc.Arbitrary<Uint8Array | undefined> {
  return fc.oneof(
    fc.constant(undefined),
    fc.uint8Array({ maxLength: 200 }),
    fc.json().map((j) => new TextEncoder().encode(j)),
    fc.constantFrom("{}", '{"type":"a.b"}', "\u0000", "[]", "null").map((s) => new TextEncoder().encode(s)),
    fc.integer({ min: 1000, max: 70_000 }).map((n) => new Uint8Array(n).fill(0x61)),
  );
}

async function sendHttp(method: string, path: string, headers: Record<string, string>, body: Uint8Array | undefined): Promise<void> {
  sent++;
  const withBody = body !== undefined && method !== "GET" && method !== "HEAD";
  try {
    const res = await fetch(`${proc.url}${path}`, { method, headers, body: withBody ? Buffer.from(body) : undefined, redirect: "manual", signal: AbortSignal.timeout(ANSWER_WITHIN_MS) });
    const text = await res.text();
    if (res.status >= 500 && !(res.status === 503 && overloadOrOutage(text)) && !(res.status === 503 && path.startsWith("/console"))) {
      problems.push(`${method} ${path}: HTTP ${res.status} ${text.slice(0, 300)}\n    headers: ${JSON.stringify(headers)}`);
    }
  } catch (err) {
    // fetch refuses some URLs and headers itself; only an answer that never came counts.
    if ((err as Error).name === "TimeoutError") problems.push(`${method} ${path}: no answer within ${ANSWER_WITHIN_MS} ms`);
  }
}

/** A request as raw bytes (what no HTTP client would send); the status line of the answer. */
function sendRaw(bytes: Buffer): Promise<void> {
  sent++;
  return new Promise((resolve) => {
    const socket = net.connect(proc.port, "127.0.0.1", () => socket.end(bytes));
    let text = "";
    const timer = setTimeout(() => socket.destroy(), ANSWER_WITHIN_MS);
    socket.on("data", (d: Buffer) => (text += d.toString("latin1")));
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      for (const m of text.matchAll(/^HTTP\/1\.[01] (\d{3})/gm)) {
        const status = Number(m[1]);
        if (status >= 500 && !(status === 503 && overloadOrOutage(text))) problems.push(`raw request answered ${status}: ${JSON.stringify(bytes.toString("latin1").slice(0, 300))} → ${text.slice(0, 300)}`);
      }
      resolve();
    });
  });
}

function rawArbitrary(): fc.Arbitrary<Buffer> {
  const line = fc.tuple(fc.constantFrom(...HTTP_METHODS, "PRI", "GET\u0000", "BREW"), pathArbitrary(), fc.constantFrom("HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 ", "HTTP/9.9"));
  const value = fc.oneof(fc.string({ maxLength: 40 }), fc.uint8Array({ maxLength: 20 }).map((b) => Buffer.from(b).toString("latin1")));
  const header = fc.tuple(fc.constantFrom("host", "content-length", "transfer-encoding", "content-type", "content-encoding", "authorization", "expect", "webhook-id", "idempotency-key", "x-request-id", "x-github-event", "connection", "te"), value);
  return fc.tuple(line, fc.array(header, { maxLength: 6 }), fc.uint8Array({ maxLength: 100 }), fc.boolean()).map(([[m, p, v], hs, body, rpcPath]) => {
    const path = rpcPath ? "/kapsel.v1.ManagementService/ListEndpoints" : p;
    const head = hs.map(([k, val]) => `${k}: ${val}\r\n`).join("");
    return Buffer.concat([Buffer.from(`${m} ${path} ${v}\r\n${head}\r\n`, "latin1"), Buffer.from(body)]);
  });
}

describe("fuzzing every HTTP route", () => {
  it("no mutated request gets a 5xx other than 503 E9001/E9002, not even as raw bytes; metrics listener too", { timeout: 120_000 }, async () => {
    problems.length = 0;
    const requests = fc.sample(fc.tuple(fc.constantFrom(...HTTP_METHODS), pathArbitrary(), headersArbitrary(), bodyArbitrary()), { seed: SEED, numRuns: 300 });
    const raw = fc.sample(rawArbitrary(), { seed: SEED, numRuns: 80 });
    const jobs: (() => Promise<void>)[] = [
      ...requests.map(([m, p, h, b]) => () => sendHttp(m, p, h, b)),
      ...raw.map((bytes) => () => sendRaw(bytes)),
      // Requests that broke servers before: an HTTP/1.0 RPC with no Host header ended the process.
      () => sendRaw(Buffer.from("POST /kapsel.v1.ManagementService/ListEndpoints HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")),
      () => sendRaw(Buffer.from("GET /healthz HTTP/1.0\r\n\r\n")),
    ];
    for (const [m, p] of fc.sample(fc.tuple(fc.constantFrom(...HTTP_METHODS), pathArbitrary()), { seed: SEED, numRuns: 30 })) {
      jobs.push(async () => {
        sent++;
        const res = await fetch(`${metricsUrl}${p}`, { method: m }).catch(() => undefined);
        if (res && res.status >= 500) problems.push(`metrics listener ${m} ${p}: HTTP ${res.status}`);
        await res?.arrayBuffer();
      });
    }
    await runAll(jobs);
    expect(problems, problems.join("\n")).toEqual([]);
  });
});

describe("after the fuzz", () => {
  it("the process is still up, answers /healthz, and logged no unexpected error", async () => {
    expect(proc.child.exitCode).toBeNull();
    expect((await fetch(`${proc.url}/healthz`)).status).toBe(200);
    const errors = proc.output().split("\n").filter((l) => l.startsWith("{") && JSON.parse(l).level >= 50);
    expect(errors, errors.join("\n").slice(0, 4000)).toEqual([]);
  });
});
