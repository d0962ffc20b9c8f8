// IngestService: Ingest and IngestBatch for backend services (API key with scope `ingest`). Each
// translates its protocol to the ingestor's accept() and back.
import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { tenantOf } from "../auth/auth-context.ts";
import { KapselError, toKapselError } from "../errors.ts";
import {
  IngestBatchResultSchema, IngestResultStatus,
  type IngestBatchRequest, type IngestRequest, type IngestService,
} from "@kapsel/contracts/ingest";
import { requestContextKey } from "../http/request-context.ts";
import type { IngestTrace, IngestTracing } from "../tracing/ingest-tracing.ts";
import type { IngestMetrics } from "./ingest-metrics.ts";
import type { IngestItem, Ingestor } from "./ingestor.ts";
import type { Accepted } from "./message-insert.ts";

export const MAX_BATCH = 1000;

function itemOf(req: IngestRequest): IngestItem {
  return {
    // No endpoint: the message fans out by its type within the caller's tenant.
    target: req.endpointId === "" ? { fanOut: true } : { endpointId: req.endpointId },
    body: Buffer.from(req.payload.buffer, req.payload.byteOffset, req.payload.byteLength),
    contentType: req.contentType,
    idempotencyKey: req.idempotencyKey === "" ? undefined : req.idempotencyKey,
    headers: req.headers,
    eventType: req.eventType,
    channels: req.channels,
  };
}

/** The answer's ids: endpoint-targeted ingest also names its one event in event_id. */
function idsOf(req: IngestRequest, a: Accepted) {
  return { eventId: req.endpointId === "" ? "" : a.eventIds[0] ?? "", messageId: a.messageId, eventIds: a.eventIds };
}

export function ingestService(ingestor: Ingestor, metrics: IngestMetrics, tracing: IngestTracing): ServiceImpl<typeof IngestService> {
  /** Times (and traces) an acknowledged call; a call refused as a whole counts each of its
   * `messages`. */
  const observe = async <T>(path: "ingest" | "ingest_batch", ctx: HandlerContext, messages: number, run: (trace: IngestTrace | undefined) => Promise<T>): Promise<T> => {
    const started = performance.now();
    const trace = tracing.rpc(ctx.service.typeName, ctx.method.name, ctx.requestHeader, tenantOf(ctx), messages);
    try {
      const result = await run(trace);
      metrics.duration.observe({ path }, (performance.now() - started) / 1000);
      trace?.end(undefined);
      return result;
    } catch (err) {
      const code = toKapselError(err)?.code ?? "internal";
      metrics.refused(path, code, messages);
      trace?.end(code);
      throw err;
    }
  };
  const callOf = (ctx: HandlerContext, items: IngestItem[], trace: IngestTrace | undefined) => ({
    tenantId: tenantOf(ctx),
    requestId: ctx.values.get(requestContextKey)?.requestId ?? "",
    items,
    trace: trace?.carried,
  });

  return {
    ingest: (req: IngestRequest, ctx: HandlerContext) => observe("ingest", ctx, 1, async (trace) => {
      const [result] = await ingestor.accept(callOf(ctx, [itemOf(req)], trace));
      if (result instanceof KapselError) throw result;
      metrics.accepted("ingest", result!);
      trace?.accepted(result!);
      return { ...idsOf(req, result!), duplicate: result!.duplicate };
    }),

    ingestBatch: (req: IngestBatchRequest, ctx: HandlerContext) => observe("ingest_batch", ctx, req.events.length, async (trace) => {
      const call = callOf(ctx, req.events.map(itemOf), trace);
      if (req.events.length > MAX_BATCH) throw new KapselError("E1006", `a batch holds at most ${MAX_BATCH} events`);
      const results = (await ingestor.accept(call)).map((r, i) => {
        if (r instanceof KapselError) {
          metrics.refused("ingest_batch", r.code);
          return create(IngestBatchResultSchema, { status: IngestResultStatus.ERROR, errorCode: r.code, errorMessage: r.message });
        }
        metrics.accepted("ingest_batch", r);
        return create(IngestBatchResultSchema, { status: r.duplicate ? IngestResultStatus.DUPLICATE : IngestResultStatus.ACCEPTED, ...idsOf(req.events[i]!, r) });
      });
      return { results };
    }),
  };
}
