// POST /ingest/{endpoint_id}: the HTTP gateway for plain webhook senders (Stripe, GitHub, anything
// that can only POST). Authenticated by the unguessable endpoint id plus the endpoint's source
// signature scheme. The body is read with the cap enforced while reading and stored byte for byte.
import type { Logger } from "pino";
import { sendError, sendJson, type PlainRoute, type Req, type RequestContext, type Res } from "../http/app.ts";
import { KapselError, toKapselError } from "../errors.ts";
import { isReservedHeader } from "../http/header-names.ts";
import type { IngestMetrics } from "./ingest-metrics.ts";
import type { Ingestor } from "./ingestor.ts";
import { senderDeliveryId, verifySource } from "./source-verification.ts";

/** Inbound headers kept with every event (and forwarded on delivery): ones that say what the event
 * is, from the common senders. Endpoints and KAPSEL_KEPT_HEADERS add more. Signature headers are
 * not kept: they were for us, and deliveries carry our own signature. */
export const DEFAULT_KEPT_HEADERS = [
  "x-github-event", "x-github-delivery", "x-github-hook-id", "x-gitlab-event", "x-gitlab-event-uuid",
  "x-shopify-topic", "x-shopify-shop-domain", "x-shopify-webhook-id", "x-shopify-event-id",
  "x-event-type", "x-event-id", "x-request-id",
];

const ID_PATH = /^\/ingest\/([^/]+)\/?$/;

/** A path segment with its percent-escapes decoded; broken escapes give "" (E1006), not a throw,
 * because match() runs outside any error handler. */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return "";
  }
}

class BodyTooLarge extends Error {}

/** The sender went away before its body was complete. Its own failure: nothing is stored, nothing
 * can be answered, and it must not read as a database outage (a reset's ECONNRESET would). */
class SenderGone extends Error {}

/** Reads the body up to `cap` bytes; rejects with BodyTooLarge as soon as it would pass the cap,
 * and with SenderGone when the request ends without being complete. HTTP/2 ends the request
 * stream even when the sender reset it mid-body, so 'end' alone does not mean complete. */
function readBody(req: Req, cap: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    // 'close' comes for every request, after the body too; an Error (and its stack trace) is made
    // only when it still means something.
    let settled = false;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > cap) {
        req.off("data", onData);
        req.off("end", onEnd);
        chunks.length = 0;
        settled = true;
        reject(new BodyTooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      settled = true;
      if (req.aborted) reject(new SenderGone());
      else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const gone = () => {
      if (settled) return;
      settled = true;
      reject(new SenderGone());
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", gone);
    req.on("aborted", gone);
    req.on("close", gone);
  });
}

/** After answering early, discard (never buffer) what the sender still sends, so it can read our
 * answer; give up on senders that keep going far past the cap. */
function drain(req: Req, res: Res, cap: number): void {
  if (req.readableEnded) return;
  let discarded = 0;
  req.removeAllListeners("data");
  req.on("data", (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > 4 * cap + 1024 * 1024) req.destroy();
  });
  req.on("error", () => {});
  req.resume();
  res.on("close", () => req.destroy());
}

export function gatewayRoute(ingestor: Ingestor, metrics: IngestMetrics, options: { keptHeaders: string[]; log: Logger }): PlainRoute {
  const globalKept = [...DEFAULT_KEPT_HEADERS, ...options.keptHeaders];
  // During an outage thousands of requests a second fail alike: one warning a second says it.
  let lastWarnMs = 0;
  let suppressed = 0;
  const outageLog = (err: unknown, requestId: string): void => {
    const now = Date.now();
    if (now - lastWarnMs < 1000) {
      suppressed++;
      return;
    }
    options.log.warn({ err, request_id: requestId, suppressed }, "ingest failed: database unavailable");
    lastWarnMs = now;
    suppressed = 0;
  };
  return {
    name: "/ingest/{endpoint_id}",
    quiet: true,
    match: (method, pathname) => {
      if (method !== "POST" || !pathname.startsWith("/ingest/")) return undefined;
      const m = ID_PATH.exec(pathname);
      return [m ? decodeSegment(m[1]!) : ""];
    },
    async handle(req, res, [rawId], ctx: RequestContext) {
      const started = performance.now();
      const cap = ingestor.maxPayloadBytes;
      try {
        const endpoint = await ingestor.endpoint(rawId!);
        const declared = req.headers["content-length"];
        if (declared !== undefined && Number(declared) > cap) throw new KapselError("E1001", `payload is ${declared} bytes; the limit is ${cap}`);
        await ingestor.rateLimit(endpoint.tenantId, 1);
        let body: Buffer;
        try {
          body = await readBody(req, cap);
        } catch (err) {
          if (err instanceof BodyTooLarge) throw new KapselError("E1001", `payload exceeds the limit of ${cap} bytes`);
          throw err;
        }
        const failure = verifySource(endpoint.source, req.headers, body);
        if (failure !== undefined) throw new KapselError("E1002", failure);

        const explicit = req.headers["idempotency-key"] ?? req.headers["x-idempotency-key"];
        const key = (Array.isArray(explicit) ? explicit[0] : explicit) ?? senderDeliveryId(endpoint.source.scheme, req.headers);
        const headers: Record<string, string> = {};
        for (const name of [...globalKept, ...endpoint.keptHeaders]) {
          const v = req.headers[name];
          if (v !== undefined && !isReservedHeader(name) && name !== "authorization" && name !== "cookie") headers[name] = Array.isArray(v) ? v.join(", ") : v;
        }
        const event = ingestor.prepare(endpoint, {
          payload: body,
          contentType: req.headers["content-type"] ?? "application/octet-stream",
          idempotencyKey: key,
          headers,
          requestId: ctx.requestId,
        });
        const accepted = await ingestor.commit([event])[0]!;
        if (accepted.duplicate) {
          metrics.duplicates.inc({ path: "gateway" });
          metrics.requests.inc({ path: "gateway", code: "duplicate" });
          sendJson(res, 200, { event_id: accepted.eventId, duplicate: true });
        } else {
          metrics.requests.inc({ path: "gateway", code: "ok" });
          sendJson(res, 202, { event_id: accepted.eventId });
        }
        metrics.latency.observe({ path: "gateway" }, (performance.now() - started) / 1000);
      } catch (err) {
        if (err instanceof SenderGone) {
          metrics.requests.inc({ path: "gateway", code: "aborted" });
          ctx.code = "aborted";
          res.destroy();
          return;
        }
        const known = toKapselError(err);
        if (!known) throw err;
        if (known.code === "E9001") outageLog(err, ctx.requestId);
        metrics.requests.inc({ path: "gateway", code: known.code });
        if (known.code === "E1001" && req.httpVersionMajor === 1) res.setHeader("connection", "close");
        sendError(res, known, ctx);
        drain(req, res, cap);
      }
    },
  };
}
