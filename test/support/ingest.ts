// What a webhook sender does to the gateway (raw bytes over HTTP/1.1 or h2c, with or without a
// Content-Length), plus the endpoint set-up and row reads the ingest tests share.
import http from "node:http";
import http2 from "node:http2";
import type pg from "pg";
import { rpc } from "./rpc.ts";

/** Server settings for ingest tests: no delivery workers, so stored rows and jobs stay as ingest
 * left them (and nothing tries to reach the endpoints' URLs). */
export const INGEST_ONLY = { KAPSEL_DELIVERY_ENABLED: "false" };

export interface HttpAnswer {
  status: number;
  body: any;
  headers: Record<string, string | string[] | undefined>;
}

function parse(text: string): any {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return text;
  }
}

/** POSTs a body to the gateway with fetch (HTTP/1.1, Content-Length set). */
export async function postIngest(baseUrl: string, endpointId: string, body: Uint8Array | string, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  const res = await fetch(`${baseUrl}/ingest/${endpointId}`, { method: "POST", headers, body: typeof body === "string" ? body : new Uint8Array(body) });
  const headersOut: HttpAnswer["headers"] = {};
  res.headers.forEach((value, name) => (headersOut[name] = value));
  return { status: res.status, body: parse(await res.text()), headers: headersOut };
}

/**
 * POSTs a body in chunks over HTTP/1.1 with node:http: chunked transfer encoding unless a
 * content-length header is given. Stops sending once the server answers (as a sender that reads
 * an early 413 does) and resolves with that answer.
 */
export function postStreamed(baseUrl: string, endpointId: string, chunks: Iterable<Buffer>, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${baseUrl}/ingest/${endpointId}`, { method: "POST", headers, agent: false });
    let answered = false;
    req.on("response", (res) => {
      answered = true;
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode!, body: parse(text), headers: res.headers }));
      res.on("error", reject);
    });
    // Writing after an early answer may fail with EPIPE/ECONNRESET; the answer is what counts.
    req.on("error", (err) => {
      if (!answered) reject(err);
    });
    const it = chunks[Symbol.iterator]();
    const pump = (): void => {
      for (;;) {
        if (answered || req.destroyed) return;
        const next = it.next();
        if (next.done) {
          req.end();
          return;
        }
        if (!req.write(next.value)) {
          req.once("drain", pump);
          return;
        }
      }
    };
    pump();
  });
}

/** POSTs a body to the gateway over HTTP/2 with prior knowledge (h2c). */
export function postIngestH2(baseUrl: string, endpointId: string, body: Buffer, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(baseUrl);
    session.on("error", reject);
    const stream = session.request({ ":method": "POST", ":path": `/ingest/${endpointId}`, ...headers });
    let status = 0;
    let responseHeaders: HttpAnswer["headers"] = {};
    let text = "";
    stream.setEncoding("utf8");
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      responseHeaders = h as HttpAnswer["headers"];
    });
    stream.on("data", (d: string) => (text += d));
    stream.on("end", () => {
      session.close();
      resolve({ status, body: parse(text), headers: responseHeaders });
    });
    stream.on("error", reject);
    stream.end(body);
  });
}

/** Creates an endpoint for the tenant of `apiKey`; returns its id. */
export async function createEndpoint(baseUrl: string, apiKey: string, fields: Record<string, unknown> = {}): Promise<string> {
  const r = await rpc(baseUrl, "CreateEndpoint", { url: "https://93.184.216.34/hook", ...fields }, apiKey);
  if (r.status !== 200) throw new Error(`CreateEndpoint failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.endpoint.id;
}

export interface EventRow {
  id: string;
  tenant_id: string;
  endpoint_id: string;
  payload: Buffer;
  content_type: string;
  headers: Record<string, string>;
  idempotency_key: string | null;
  request_id: string;
}

/** The stored event, or undefined. */
export async function eventRow(db: pg.Client, id: string): Promise<EventRow | undefined> {
  const r = await db.query<EventRow>(
    `SELECT e.id, e.tenant_id, e.endpoint_id, m.payload, m.content_type, m.headers, m.idempotency_key, m.request_id
     FROM events e JOIN messages m ON m.id = e.message_id WHERE e.id = $1`,
    [id],
  );
  return r.rows[0];
}

/** How many events an endpoint has. */
export async function countEvents(db: pg.Client, endpointId: string): Promise<number> {
  const r = await db.query<{ n: string }>("SELECT count(*) AS n FROM events WHERE endpoint_id = $1", [endpointId]);
  return Number(r.rows[0]!.n);
}

/** Every byte value 0..255, twice, so a lossy text round trip would show. */
export function allBytes(): Buffer {
  const b = Buffer.alloc(512);
  for (let i = 0; i < 512; i++) b[i] = i % 256;
  return b;
}
