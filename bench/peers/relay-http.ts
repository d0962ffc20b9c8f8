// The HTTP ends both peer relays share, written the way a Node team would: a node:http server whose
// `POST /ingest…` hands the body (bounded) to the relay's enqueue and answers 202 only once that
// has resolved, i.e. once the job is committed; and delivery to the destination with undici,
// signed the Standard Webhooks way (as Kapsel signs its deliveries, so both sides pay for an
// HMAC), failing on anything but a 2xx so the queue library retries it.
import { createHmac, randomBytes } from "node:crypto";
import http, { type IncomingMessage } from "node:http";
import { Agent, request } from "undici";

/** Keep-alive connections per destination: Kapsel's default per-endpoint concurrency (64). */
const agent = new Agent({ connections: 64, keepAliveTimeout: 60_000, headersTimeout: 15_000, bodyTimeout: 15_000 });
const secret = randomBytes(32);

export async function deliver(url: string, id: string, body: string): Promise<void> {
  const timestamp = String(Math.floor(Date.now() / 1000));
  const signature = createHmac("sha256", secret).update(`${id}.${timestamp}.${body}`).digest("base64");
  const res = await request(url, {
    method: "POST",
    dispatcher: agent,
    headers: { "content-type": "application/json", "webhook-id": id, "webhook-timestamp": timestamp, "webhook-signature": `v1,${signature}` },
    body,
  });
  await res.body.dump();
  if (res.statusCode < 200 || res.statusCode >= 300) throw new Error(`destination answered ${res.statusCode}`);
}

class BodyTooLarge extends Error {}

/** The request body as text, refused past `cap` bytes. */
function readBody(req: IncomingMessage, cap: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > cap) {
        req.destroy();
        reject(new BodyTooLarge());
      } else chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks, size).toString("utf8")));
    req.on("error", reject);
  });
}

const MAX_BODY_BYTES = 1024 * 1024;

/** Serves `GET /readyz` and `POST /ingest…` on 127.0.0.1:`port`; `enqueue` returns the job id. */
export function serveIngest(port: number, enqueue: (body: string) => Promise<string>): Promise<http.Server> {
  const server = http.createServer(async (req, res) => {
    const answer = (status: number, body: object) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (req.method === "GET" && req.url === "/readyz") return answer(200, { ready: true });
    if (req.method !== "POST" || !req.url?.startsWith("/ingest")) return answer(404, { error: "not found" });
    let body: string;
    try {
      body = await readBody(req, MAX_BODY_BYTES);
    } catch (err) {
      return answer(err instanceof BodyTooLarge ? 413 : 400, { error: "bad body" });
    }
    try {
      answer(202, { id: await enqueue(body) });
    } catch {
      answer(503, { error: "could not enqueue" });
    }
  });
  server.keepAliveTimeout = 120_000;
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve(server)));
}
