// What the attestation-log tests share, written without the server's attestation code: an RFC 8785
// serialiser, strict parsers for vkeys, signed notes, checkpoints and tlog-proof bundles, signature
// checks with node:crypto, a loopback webhook sink, real deliveries through a running server, and
// synthetic attempt rows for trees larger than real deliveries can build quickly.
import { createPublicKey, createHash, verify, type KeyObject } from "node:crypto";
import { execFile } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import type pg from "pg";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { AttestationService } from "@kapsel/contracts/attestation";
import { TEST_MASTER_KEY } from "./secrets.ts";
import { refRootFromInclusion, refLeafHash } from "./rfc6962-reference.ts";
import { createTenant, rpc } from "./rpc.ts";
import { ADMIN_TOKEN, ROOT } from "./server.ts";

// ---------------------------------------------------------------------------------------------
// RFC 8785 (JCS) for the JSON values receipts contain: objects, strings, safe integers, null.

function compareUtf16(a: string, b: string): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const d = a.charCodeAt(i) - b.charCodeAt(i);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

function jcsString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += "\\\\";
    else if (c === 0x08) out += "\\b";
    else if (c === 0x09) out += "\\t";
    else if (c === 0x0a) out += "\\n";
    else if (c === 0x0c) out += "\\f";
    else if (c === 0x0d) out += "\\r";
    else if (c < 0x20) out += `\\u${c.toString(16).padStart(4, "0")}`;
    else out += s[i];
  }
  return out + '"';
}

export function jcs(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "string") return jcsString(value);
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new Error(`not an integer: ${value}`);
    return Object.is(value, -0) ? "0" : value.toString(10);
  }
  if (typeof value === "object" && !Array.isArray(value)) {
    const keys = Object.keys(value as object).sort(compareUtf16);
    return `{${keys.map((k) => `${jcsString(k)}:${jcs((value as Record<string, unknown>)[k])}`).join(",")}}`;
  }
  throw new Error(`unsupported JSON value ${String(value)}`);
}

// ---------------------------------------------------------------------------------------------
// Keys, notes, checkpoints, bundles.

export const sha256 = (...parts: (string | Uint8Array)[]): Buffer => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
};

/** ATTESTATION.md §3: first 4 bytes of SHA-256(name || 0x0A || type || public key). */
export function expectedKeyId(name: string, type: number, publicKey: Buffer): Buffer {
  return sha256(name, Buffer.of(0x0a, type), publicKey).subarray(0, 4);
}

export interface ParsedVkey {
  name: string;
  keyId: Buffer;
  publicKey: Buffer;
  key: KeyObject;
}

export function parseVkey(vkey: string): ParsedVkey {
  const m = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/=]+)$/.exec(vkey);
  if (!m) throw new Error(`malformed vkey ${vkey}`);
  const raw = Buffer.from(m[3]!, "base64");
  if (raw.length !== 33 || raw[0] !== 0x01) throw new Error(`vkey ${vkey} is not an Ed25519 key`);
  const publicKey = raw.subarray(1);
  const key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: publicKey.toString("base64url") }, format: "jwk" });
  return { name: m[1]!, keyId: Buffer.from(m[2]!, "hex"), publicKey, key };
}

export interface NoteSignature {
  name: string;
  /** The decoded base64: key id (4 bytes) then the rest. */
  payload: Buffer;
}

/** Splits a C2SP signed note at its last empty line; the text keeps its final newline. */
export function splitNote(note: string): { text: string; signatures: NoteSignature[] } {
  const at = note.lastIndexOf("\n\n");
  if (at < 0 || !note.endsWith("\n")) throw new Error("not a signed note");
  const text = note.slice(0, at + 1);
  const signatures = note
    .slice(at + 2, -1)
    .split("\n")
    .map((line) => {
      const m = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(line);
      if (!m) throw new Error(`malformed signature line ${JSON.stringify(line)}`);
      return { name: m[1]!, payload: Buffer.from(m[2]!, "base64") };
    });
  return { text, signatures };
}

export interface CheckpointFields {
  origin: string;
  size: bigint;
  root: Buffer;
}

/** The three checkpoint lines; throws unless there are exactly three, well formed. */
export function parseCheckpointText(text: string): CheckpointFields {
  const lines = text.split("\n");
  if (lines.length !== 4 || lines[3] !== "") throw new Error(`a checkpoint is three lines; got ${JSON.stringify(text)}`);
  const [origin, size, root] = lines as [string, string, string];
  if (!/^(0|[1-9]\d*)$/.test(size)) throw new Error(`bad tree size ${size}`);
  const hash = Buffer.from(root, "base64");
  if (hash.length !== 32 || hash.toString("base64") !== root) throw new Error(`bad root ${root}`);
  return { origin, size: BigInt(size), root: hash };
}

export interface CheckedCheckpoint extends CheckpointFields {
  text: string;
  /** The key whose 0x01 signature verified. */
  vkey: string;
  /** Seconds from the 0x04 signed-time line of that key. */
  time: bigint;
}

/**
 * Opens a checkpoint with node:crypto: the 0x01 log signature and the 0x04 signed-time line of one
 * of `vkeys` must both be present and verify. Throws naming what failed.
 */
export function checkCheckpoint(note: string, vkeys: readonly string[]): CheckedCheckpoint {
  const { text, signatures } = splitNote(note);
  const fields = parseCheckpointText(text);
  for (const vkey of vkeys) {
    const k = parseVkey(vkey);
    if (k.name !== fields.origin) continue;
    const logId = expectedKeyId(k.name, 0x01, k.publicKey);
    const timeId = expectedKeyId(k.name, 0x04, k.publicKey);
    if (!logId.equals(k.keyId)) throw new Error(`vkey ${vkey} states key id ${k.keyId.toString("hex")}, expected ${logId.toString("hex")}`);
    const logSig = signatures.find((s) => s.name === k.name && s.payload.subarray(0, 4).equals(logId));
    const timeSig = signatures.find((s) => s.name === k.name && s.payload.subarray(0, 4).equals(timeId));
    if (!logSig) continue;
    if (logSig.payload.length !== 4 + 64) throw new Error("log signature is not 64 bytes");
    if (!verify(null, Buffer.from(text), k.key, logSig.payload.subarray(4))) throw new Error("0x01 log signature does not verify");
    if (!timeSig) throw new Error("no 0x04 signed-time line for the log key");
    if (timeSig.payload.length !== 4 + 8 + 64) throw new Error("signed-time payload is not 76 bytes");
    const time = timeSig.payload.readBigUInt64BE(4);
    const message = Buffer.concat([Buffer.from(`cosignature/v1\ntime ${time}\n`), Buffer.from(text)]);
    if (!verify(null, message, k.key, timeSig.payload.subarray(12))) throw new Error("0x04 signed-time signature does not verify");
    return { ...fields, text, vkey, time };
  }
  throw new Error("no trusted key signed this checkpoint");
}

export interface ParsedBundle {
  receipt: Buffer;
  index: bigint;
  proof: Buffer[];
  checkpoint: string;
}

/** Strict tlog-proof@v1 parse (ATTESTATION.md §4). */
export function parseBundle(text: string): ParsedBundle {
  const blank = text.indexOf("\n\n");
  if (blank < 0) throw new Error("bundle has no empty line");
  const head = text.slice(0, blank).split("\n");
  if (head[0] !== "c2sp.org/tlog-proof@v1") throw new Error(`bad header ${head[0]}`);
  const extra = /^extra ([A-Za-z0-9+/=]+)$/.exec(head[1] ?? "");
  const index = /^index (0|[1-9]\d*)$/.exec(head[2] ?? "");
  if (!extra || !index) throw new Error("bad extra or index line");
  const proof = head.slice(3).map((line) => {
    const h = Buffer.from(line, "base64");
    if (h.length !== 32 || h.toString("base64") !== line) throw new Error(`bad proof line ${line}`);
    return h;
  });
  return { receipt: Buffer.from(extra[1]!, "base64"), index: BigInt(index[1]!), proof, checkpoint: text.slice(blank + 2) };
}

/**
 * Verifies a bundle with the test's own code: signatures with node:crypto, the receipt canonical,
 * and the root recomputed from the proof (RFC 9162) equal to the signed root.
 */
export function checkBundle(text: string, vkeys: readonly string[]): { bundle: ParsedBundle; checkpoint: CheckedCheckpoint; receipt: Record<string, unknown> } {
  const bundle = parseBundle(text);
  const receipt = JSON.parse(bundle.receipt.toString("utf8")) as Record<string, unknown>;
  if (jcs(receipt) !== bundle.receipt.toString("utf8")) throw new Error("receipt is not canonical JSON");
  const checkpoint = checkCheckpoint(bundle.checkpoint, vkeys);
  const root = refRootFromInclusion(bundle.index, checkpoint.size, refLeafHash(bundle.receipt), bundle.proof);
  if (!root || !root.equals(checkpoint.root)) throw new Error("inclusion proof does not lead to the signed root");
  return { bundle, checkpoint, receipt };
}

// ---------------------------------------------------------------------------------------------
// Running servers: sink, deliveries, polling, the Connect client, the CLI.

export interface LoopbackSink {
  url: string;
  /** Bodies received, in order. */
  bodies: Buffer[];
  close(): Promise<void>;
}

/** A node:http webhook receiver on 127.0.0.1 answering `status` with body "ok". */
export async function startLoopbackSink(status = 200): Promise<LoopbackSink> {
  const bodies: Buffer[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      bodies.push(Buffer.concat(chunks));
      res.writeHead(status, { "content-type": "text/plain" }).end("ok");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    bodies,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Polls until `check` returns something other than undefined. */
export async function until<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface Destination {
  tenantId: string;
  apiKey: string;
  endpointId: string;
}

export async function createDestination(baseUrl: string, url: string, name = "acme"): Promise<Destination> {
  const t = await createTenant(baseUrl, ADMIN_TOKEN, name);
  const ep = await rpc(baseUrl, "CreateEndpoint", { url, allowHttp: true }, t.apiKey);
  if (ep.status !== 200) throw new Error(`CreateEndpoint: ${ep.status} ${JSON.stringify(ep.body)}`);
  return { tenantId: t.id, apiKey: t.apiKey, endpointId: ep.body.endpoint.id };
}

export async function ingest(baseUrl: string, endpointId: string, body: string): Promise<string> {
  const res = await fetch(`${baseUrl}/ingest/${endpointId}`, { method: "POST", headers: { "content-type": "application/json" }, body });
  const text = await res.text();
  if (res.status !== 202) throw new Error(`ingest answered ${res.status}: ${text}`);
  return (JSON.parse(text) as { event_id: string }).event_id;
}

/** Waits for the event's first attempt to be recorded; returns it (GetEvent's Attempt message). */
export async function firstAttempt(baseUrl: string, apiKey: string, eventId: string): Promise<any> {
  return until(`an attempt for event ${eventId}`, async () => {
    const r = await rpc(baseUrl, "GetEvent", { eventId }, apiKey);
    return r.body?.event?.attempts?.[0];
  });
}

/** Ingests `count` events and returns their first attempts, in order. */
export async function deliver(baseUrl: string, dest: Destination, count: number, tag = "e"): Promise<any[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push(await ingest(baseUrl, dest.endpointId, JSON.stringify({ type: "test", tag, i })));
  const attempts: any[] = [];
  for (const id of ids) attempts.push(await firstAttempt(baseUrl, dest.apiKey, id));
  return attempts;
}

/** Polls GetProofBundle until the attempt is in a signed checkpoint; returns the bundle text. */
export async function bundleFor(baseUrl: string, apiKey: string, attemptId: string): Promise<string> {
  return until(`a bundle for attempt ${attemptId}`, async () => {
    const r = await rpc(baseUrl, "GetProofBundle", { attemptId }, apiKey);
    return r.status === 200 ? (r.body.bundle as string) : undefined;
  });
}

export async function vkeysOf(baseUrl: string, token: string): Promise<string[]> {
  const r = await rpc(baseUrl, "GetPublicKeys", {}, token);
  if (r.status !== 200) throw new Error(`GetPublicKeys: ${r.status}`);
  return r.body.keys.map((k: { vkey: string }) => k.vkey);
}

export function attestationClient(baseUrl: string, token: string): Client<typeof AttestationService> {
  return createClient(
    AttestationService,
    createConnectTransport({
      baseUrl,
      httpVersion: "1.1",
      interceptors: [(next) => (req) => {
        req.header.set("authorization", `Bearer ${token}`);
        return next(req);
      }],
    }),
  );
}

/** Tree size the log has sequenced (log_state), as a number. */
export async function treeSize(db: pg.Client): Promise<number> {
  return Number((await db.query<{ s: string }>("SELECT tree_size AS s FROM log_state")).rows[0]!.s);
}

/**
 * Inserts `count` synthetic delivery attempts in one statement (the trigger queues them for the
 * log). Outcomes cycle through all four kinds, with null status and response hash where a real
 * attempt would have none.
 */
export async function insertSyntheticAttempts(db: pg.Client, count: number, tenantId = "00000000-0000-4000-8000-000000000001"): Promise<void> {
  await db.query(
    `INSERT INTO delivery_attempts (id, event_id, tenant_id, endpoint_id, url, attempt, payload_sha256, started_at,
       duration_ms, outcome, status_code, response_sha256)
     SELECT gen_random_uuid(), gen_random_uuid(), $2::uuid, '00000000-0000-4000-8000-0000000000e1',
       'https://hooks.example.com/in?n=' || g, 1 + g % 5, encode(sha256(g::text::bytea), 'hex'),
       clock_timestamp() - (g % 997) * interval '1.234 ms', g % 3000,
       (ARRAY['delivered','http_error','timeout','network_error'])[1 + g % 4],
       CASE g % 4 WHEN 0 THEN 200 + g % 7 WHEN 1 THEN 500 + g % 4 END,
       CASE WHEN g % 4 < 2 THEN encode(sha256(('response ' || g)::bytea), 'hex') END
     FROM generate_series(1, $1::int) g`,
    [count, tenantId],
  );
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `kapsel <args>` (server/src/cli.ts) as a child process on the given database. */
export function kapselCli(args: string[], env: Record<string, string>): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(ROOT, "server/src/cli.ts"), ...args],
      { cwd: ROOT, env: { PATH: process.env.PATH, HOME: process.env.HOME, KAPSEL_LOG_LEVEL: "warn", KAPSEL_MASTER_KEY: TEST_MASTER_KEY, ...env }, timeout: 120_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
