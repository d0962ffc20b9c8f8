// IngestService: Ingest and IngestBatch for backend services (API key with scope `ingest`).
import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { tenantOf } from "../auth/auth-context.ts";
import { KapselError, toKapselError } from "../errors.ts";
import {
  IngestBatchResultSchema, IngestResultStatus,
  type IngestBatchRequest, type IngestBatchResult, type IngestRequest,
} from "@kapsel/contracts/ingest";
import { requestContextKey } from "../http/app.ts";
import type { NewEvent } from "./group-commit.ts";
import type { IngestMetrics } from "./ingest-metrics.ts";
import type { Ingestor } from "./ingestor.ts";

export const MAX_BATCH = 1000;

export function ingestService(ingestor: Ingestor, metrics: IngestMetrics) {
  const prepare = async (req: IngestRequest, tenantId: string, requestId: string): Promise<NewEvent> => {
    const endpoint = await ingestor.endpoint(req.endpointId, tenantId);
    return ingestor.prepare(endpoint, {
      payload: Buffer.from(req.payload.buffer, req.payload.byteOffset, req.payload.byteLength),
      contentType: req.contentType,
      idempotencyKey: req.idempotencyKey === "" ? undefined : req.idempotencyKey,
      headers: req.headers,
      requestId,
    });
  };
  const observe = async <T>(path: "ingest" | "ingest_batch", run: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    try {
      const result = await run();
      metrics.latency.observe({ path }, (performance.now() - started) / 1000);
      return result;
    } catch (err) {
      metrics.requests.inc({ path, code: toKapselError(err)?.code ?? "internal" });
      throw err;
    }
  };

  return {
    ingest: (req: IngestRequest, ctx: HandlerContext) => observe("ingest", async () => {
      const tenantId = tenantOf(ctx);
      const requestId = ctx.values.get(requestContextKey)?.requestId ?? "";
      const event = await prepare(req, tenantId, requestId);
      await ingestor.rateLimit(tenantId, 1);
      const accepted = await ingestor.commit([event])[0]!;
      metrics.requests.inc({ path: "ingest", code: accepted.duplicate ? "duplicate" : "ok" });
      if (accepted.duplicate) metrics.duplicates.inc({ path: "ingest" });
      return { eventId: accepted.eventId, duplicate: accepted.duplicate };
    }),

    ingestBatch: (req: IngestBatchRequest, ctx: HandlerContext) => observe("ingest_batch", async () => {
      const tenantId = tenantOf(ctx);
      const requestId = ctx.values.get(requestContextKey)?.requestId ?? "";
      if (req.events.length > MAX_BATCH) throw new KapselError("E1006", `a batch holds at most ${MAX_BATCH} events`);
      await ingestor.rateLimit(tenantId, Math.max(1, req.events.length));
      const results: IngestBatchResult[] = new Array(req.events.length);
      // Prepared in parallel, committed in request order, so the first of two equal keys wins.
      const prepared = await Promise.all(req.events.map(async (item, i) => {
        try {
          return await prepare(item, tenantId, requestId);
        } catch (err) {
          const known = toKapselError(err);
          // A database outage sinks the whole call: nothing in it was accepted.
          if (!known || known.code === "E9001") throw err;
          results[i] = create(IngestBatchResultSchema, { status: IngestResultStatus.ERROR, errorCode: known.code, errorMessage: known.message });
          return undefined;
        }
      }));
      const positions = prepared.flatMap((e, i) => (e ? [i] : []));
      const events = prepared.filter((e): e is NewEvent => e !== undefined);
      const accepted = await Promise.all(ingestor.commit(events));
      accepted.forEach((a, j) => {
        results[positions[j]!] = create(IngestBatchResultSchema, {
          status: a.duplicate ? IngestResultStatus.DUPLICATE : IngestResultStatus.ACCEPTED,
          eventId: a.eventId,
        });
        if (a.duplicate) metrics.duplicates.inc({ path: "ingest_batch" });
      });
      metrics.requests.inc({ path: "ingest_batch", code: "ok" });
      return { results };
    }),
  };
}
