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

export function ingestService(ingestor: Ingestor, metrics: IngestMetrics): ServiceImpl<typeof IngestService> {
  /** Times an acknowledged call; a call refused as a whole counts each of its `messages`. */
  const observe = async <T>(path: "ingest" | "ingest_batch", messages: number, run: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    try {
      const result = await run();
      metrics.duration.observe({ path }, (performance.now() - started) / 1000);
      return result;
    } catch (err) {
      metrics.refused(path, toKapselError(err)?.code ?? "internal", messages);
      throw err;
    }
  };
  const callOf = (ctx: HandlerContext, items: IngestItem[]) => ({
    tenantId: tenantOf(ctx),
    requestId: ctx.values.get(requestContextKey)?.requestId ?? "",
    items,
  });

  return {
    ingest: (req: IngestRequest, ctx: HandlerContext) => observe("ingest", 1, async () => {
      const [result] = await ingestor.accept(callOf(ctx, [itemOf(req)]));
      if (result instanceof KapselError) throw result;
      metrics.accepted("ingest", result!);
      return { ...idsOf(req, result!), duplicate: result!.duplicate };
    }),

    ingestBatch: (req: IngestBatchRequest, ctx: HandlerContext) => observe("ingest_batch", req.events.length, async () => {
      const call = callOf(ctx, req.events.map(itemOf));
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
