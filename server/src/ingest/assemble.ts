// The ingest capability, assembled: endpoint cache, rate limiter, group commit and the ingestor,
// exposed as the gateway route and IngestService.
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { IngestService as IngestServiceDesc, type IngestService } from "@kapsel/contracts/ingest";
import type { Registry } from "prom-client";
import type { IngestConfig } from "../config.ts";
import type { NotifyChannel } from "../db/notify-channel.ts";
import type { DatabasePool } from "../db/pool.ts";
import type { PlainRoute } from "../http/plain-route.ts";
import type { JobHandOff } from "../delivery/job-handoff.ts";
import type { Logger } from "../logger.ts";
import type { SecretBox } from "../secrets/secret-box.ts";
import { IngestTracing } from "../tracing/ingest-tracing.ts";
import type { Tracing } from "../tracing/tracing.ts";
import { EndpointCache } from "./endpoint-cache.ts";
import { FailureLimiter } from "./failure-limiter.ts";
import { DEFAULT_KEPT_HEADERS, gatewayRoutes } from "./gateway.ts";
import { GroupCommit } from "./group-commit.ts";
import { IngestMetrics } from "./ingest-metrics.ts";
import { ingestService } from "./ingest-service.ts";
import { Ingestor } from "./ingestor.ts";
import { insertSettled } from "./ambiguous-commit.ts";
import { idempotencyKeyOf, type Accepted, type NewMessage } from "./message-insert.ts";
import { RateLimiter } from "./rate-limiter.ts";
import { SourceCache } from "./source-cache.ts";
import { SubscriberCache } from "./subscriber-cache.ts";
import { tenantRateLimit } from "./tenant-limits.ts";

export interface IngestDeps {
  pool: DatabasePool;
  /** Announces new delivery jobs after each commit that stored events. */
  jobs: NotifyChannel;
  registry: Registry;
  log: Logger;
  /** This process's dispatcher, when it delivers: new jobs go to it leased, without a claim. */
  handOff: JobHandOff | undefined;
  /** Opens the endpoints' and sources' sealed verification secrets. */
  secrets: SecretBox;
  tracing: Tracing;
}

export interface IngestCapability {
  routes: PlainRoute[];
  service: ServiceImpl<typeof IngestService>;
  /** Part of the request gate (headers only, before the body is read): under overload an
   * IngestService call is refused with E9002 there, its body never read or decoded. */
  gate(ctx: HandlerContext): void;
  /** An endpoint changed in this process: forget it, and its tenant's subscribers, at once
   * (other processes: within the TTL). */
  endpointChanged(endpointId: string, tenantId: string): void;
  /** A source changed in this process: forget it at once. */
  sourceChanged(sourceId: string): void;
  /** A tenant's rate limit changed in this process: read it again on the next request. */
  rateLimitChanged(tenantId: string): void;
}

export function assembleIngest(config: IngestConfig, deps: IngestDeps): IngestCapability {
  const metrics = new IngestMetrics(deps.registry);
  const endpoints = new EndpointCache(deps.pool, deps.secrets);
  const sources = new SourceCache(deps.pool, deps.secrets);
  const subscribers = new SubscriberCache(deps.pool);
  const tracing = new IngestTracing(deps.tracing.tracer);
  const limiter = new RateLimiter((tenantId) => tenantRateLimit(deps.pool, tenantId, config.rateLimit));
  const commit = new GroupCommit<NewMessage, Accepted>({
    keyOf: idempotencyKeyOf,
    sizeOf: (m) => m.payload.length,
    rowsOf: (m) => 1 + m.events.length,
    maxQueuedRows: config.queue.maxRows,
    maxQueuedBytes: config.queue.maxBytes,
    write: (batch) => tracing.groupCommit(batch, async () => {
      metrics.groupCommitMessages.observe(batch.length);
      const reservation = deps.handOff?.reserve(batch.flatMap((m) => m.events));
      let inserted;
      try {
        inserted = await insertSettled(deps.pool, batch, config.idempotencyWindowMs, deps.log, reservation);
      } catch (err) {
        if (reservation) deps.handOff!.cancel(reservation);
        throw err;
      }
      const { accepted, handed } = inserted;
      if (reservation) deps.handOff!.handOver(reservation, handed);
      // Only jobs left for a claim are announced (to every process's dispatcher).
      const queued = accepted.reduce((n, a) => n + (a.duplicate ? 0 : a.eventIds.length), 0);
      if (queued > handed.length) deps.jobs.notify();
      return accepted;
    }, (a) => a.duplicate),
  });
  const failures = new FailureLimiter({ limit: config.failedSignatureLimit, addressLimit: config.failedSignatureAddressLimit });
  const ingestor = new Ingestor({ endpoints, sources, subscribers, limiter, failures, commit }, {
    maxPayloadBytes: config.maxPayloadBytes,
    maxInFlight: config.queue.maxInFlight,
    maxInFlightBytes: config.queue.maxInFlightBytes,
    keptHeaders: [...DEFAULT_KEPT_HEADERS, ...config.keptHeaders],
  });
  return {
    routes: gatewayRoutes(ingestor, metrics, { log: deps.log, tracing }),
    service: ingestService(ingestor, metrics, tracing),
    gate: (ctx) => {
      if (ctx.service.typeName !== IngestServiceDesc.typeName) return;
      const refused = ingestor.overloaded();
      if (!refused) return;
      // An Ingest call is one message; a batch's size is in the body it was refused without.
      if (ctx.method.name === IngestServiceDesc.method.ingest.name) metrics.refused("ingest", refused.code);
      throw refused;
    },
    endpointChanged: (id, tenantId) => {
      endpoints.invalidate(id);
      subscribers.invalidate(tenantId);
    },
    sourceChanged: (id) => sources.invalidate(id),
    rateLimitChanged: (id) => limiter.invalidate(id),
  };
}
