// The HTTP gateway for plain webhook senders (Stripe, GitHub, anything that can only POST):
// `POST /ingest/{endpoint_id}` for one endpoint, `POST /ingest/sources/{source_id}` to fan out to
// the tenant's subscribed endpoints. Authenticated by the unguessable id plus the endpoint's or
// source's signature scheme. The body is read with the cap enforced while reading and stored byte
// for byte.
import type { Logger } from "pino";
import { readBody, refuseBody, SenderGone } from "../http/body-reader.ts";
import { decodePathSegment, sendError, sendJson, type PlainRoute, type Req, type Res } from "../http/plain-route.ts";
import type { RequestContext } from "../http/request-context.ts";
import { KapselError, toKapselError } from "../errors.ts";
import type { IngestTracing } from "../tracing/ingest-tracing.ts";
import type { IngestMetrics, IngestPath } from "./ingest-metrics.ts";
import type { Ingestor } from "./ingestor.ts";
import type { Accepted } from "./message-insert.ts";

/** Inbound headers kept with every event (and forwarded on delivery): ones that say what the event
 * is, from the common senders. Endpoints and KAPSEL_KEPT_HEADERS add more (the ingestor applies
 * the lists). Signature headers are not kept: they were for us, and deliveries carry our own. */
export const DEFAULT_KEPT_HEADERS = [
  "x-github-event", "x-github-delivery", "x-github-hook-id", "x-gitlab-event", "x-gitlab-event-uuid",
  "x-shopify-topic", "x-shopify-shop-domain", "x-shopify-webhook-id", "x-shopify-event-id",
  "x-event-type", "x-event-id", "x-request-id",
];

const ENDPOINT_PATH = /^\/ingest\/([^/]+)\/?$/;
const SOURCE_PATH = /^\/ingest\/sources\/([^/]+)\/?$/;

export function gatewayRoutes(ingestor: Ingestor, metrics: IngestMetrics, options: { log: Logger; tracing: IngestTracing }): PlainRoute[] {
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

  /** Reads one sender's request into the ingestor and answers it; `answer` shapes the JSON. Under
   * overload the refusal is answered before anything else is looked at. */
  const handle = (req: Req, res: Res, path: IngestPath, route: string, target: { endpointId: string } | { sourceId: string }, ctx: RequestContext, answer: (a: Accepted) => object): Promise<void> | undefined => {
    const refused = ingestor.overloaded();
    if (refused) {
      metrics.refused(path, refused.code);
      refuseBody(req, res, () => sendError(res, refused, ctx));
      return undefined;
    }
    return accept(req, res, path, route, target, ctx, answer);
  };

  const accept = async (req: Req, res: Res, path: IngestPath, route: string, target: { endpointId: string } | { sourceId: string }, ctx: RequestContext, answer: (a: Accepted) => object) => {
    const started = performance.now();
    const trace = options.tracing.gateway(route, req.headers, req.httpVersion, target);
    let failure: string | undefined;
    try {
      const declared = req.headers["content-length"];
      const explicitKey = req.headers["idempotency-key"] ?? req.headers["x-idempotency-key"];
      const [result] = await ingestor.accept({
        tenantId: undefined,
        requestId: ctx.requestId,
        items: [{
          target,
          body: {
            declaredBytes: declared === undefined ? undefined : Number(declared),
            read: (cap) => readBody(req, cap),
            headers: req.headers,
            clientAddress: req.socket?.remoteAddress,
          },
          contentType: req.headers["content-type"] ?? "application/octet-stream",
          idempotencyKey: Array.isArray(explicitKey) ? explicitKey[0] : explicitKey,
          headers: {},
          eventType: "",
          channels: [],
        }],
        trace: trace?.carried,
      });
      if (result instanceof KapselError) throw result;
      const accepted = result!;
      trace?.accepted(accepted);
      metrics.accepted(path, accepted);
      if (accepted.duplicate) sendJson(res, 200, { ...answer(accepted), duplicate: true });
      else sendJson(res, 202, answer(accepted));
      metrics.duration.observe({ path }, (performance.now() - started) / 1000);
    } catch (err) {
      if (err instanceof SenderGone) {
        metrics.refused(path, "aborted");
        ctx.code = "aborted";
        failure = "aborted";
        res.destroy();
        return;
      }
      const known = toKapselError(err);
      failure = known?.code ?? "internal";
      if (!known) throw err;
      if (known.code === "E9001") outageLog(err, ctx.requestId);
      metrics.refused(path, known.code);
      refuseBody(req, res, () => sendError(res, known, ctx));
    } finally {
      trace?.end(failure, res.statusCode);
    }
  };

  return [
    {
      name: "/ingest/sources/{source_id}",
      quiet: true,
      match: (method, pathname) => {
        if (method !== "POST") return undefined;
        const m = SOURCE_PATH.exec(pathname);
        return m ? [decodePathSegment(m[1]!)] : undefined;
      },
      handle: (req, res, [sourceId], ctx) => handle(req, res, "source_gateway", "/ingest/sources/{source_id}", { sourceId: sourceId! }, ctx, (a) => ({ message_id: a.messageId, event_ids: a.eventIds })),
    },
    {
      name: "/ingest/{endpoint_id}",
      quiet: true,
      match: (method, pathname) => {
        if (method !== "POST" || !pathname.startsWith("/ingest/")) return undefined;
        const m = ENDPOINT_PATH.exec(pathname);
        return [m ? decodePathSegment(m[1]!) : ""];
      },
      handle: (req, res, [endpointId], ctx) => handle(req, res, "gateway", "/ingest/{endpoint_id}", { endpointId: endpointId! }, ctx, (a) => ({ event_id: a.eventIds[0], message_id: a.messageId })),
    },
  ];
}
