// The ingest capability, assembled: endpoint cache, rate limiter, group commit and the ingestor,
// exposed as the gateway route and IngestService.
import type { ServiceImpl } from "@connectrpc/connect";
import type { IngestService } from "@kapsel/contracts/ingest";
import type { Registry } from "prom-client";
import type { IngestConfig } from "../config.ts";
import type { NotifyChannel } from "../db/notify-channel.ts";
import type { DatabasePool } from "../db/pool.ts";
import type { PlainRoute } from "../http/plain-route.ts";
import type { Logger } from "../logger.ts";
import { EndpointCache } from "./endpoint-cache.ts";
import { idempotencyKeyOf, insertEvents, type Accepted, type NewEvent } from "./event-insert.ts";
import { DEFAULT_KEPT_HEADERS, gatewayRoute } from "./gateway.ts";
import { GroupCommit } from "./group-commit.ts";
import { IngestMetrics } from "./ingest-metrics.ts";
import { ingestService } from "./ingest-service.ts";
import { Ingestor } from "./ingestor.ts";
import { RateLimiter } from "./rate-limiter.ts";
import { tenantRateLimit } from "./tenant-limits.ts";

export interface IngestDeps {
  pool: DatabasePool;
  /** Announces new delivery jobs after each commit that stored events. */
  jobs: NotifyChannel;
  registry: Registry;
  log: Logger;
}

export interface IngestCapability {
  routes: PlainRoute[];
  service: ServiceImpl<typeof IngestService>;
  /** An endpoint changed in this process: forget it at once (other processes: within the TTL). */
  endpointChanged(endpointId: string): void;
  /** A tenant's rate limit changed in this process: read it again on the next request. */
  rateLimitChanged(tenantId: string): void;
}

export function assembleIngest(config: IngestConfig, deps: IngestDeps): IngestCapability {
  const metrics = new IngestMetrics(deps.registry);
  const endpoints = new EndpointCache(deps.pool);
  const limiter = new RateLimiter((tenantId) => tenantRateLimit(deps.pool, tenantId, config.rateLimit));
  const groupCommit = new GroupCommit<NewEvent, Accepted>({
    keyOf: idempotencyKeyOf,
    sizeOf: (e) => e.payload.length,
    write: async (batch) => {
      metrics.batchSize.observe(batch.length);
      const accepted = await insertEvents(deps.pool, batch, config.idempotencyWindowMs);
      if (accepted.some((a) => !a.duplicate)) deps.jobs.notify();
      return accepted;
    },
  });
  const ingestor = new Ingestor(endpoints, limiter, groupCommit, {
    maxPayloadBytes: config.maxPayloadBytes,
    keptHeaders: [...DEFAULT_KEPT_HEADERS, ...config.keptHeaders],
  });
  return {
    routes: [gatewayRoute(ingestor, metrics, { log: deps.log })],
    service: ingestService(ingestor, metrics),
    endpointChanged: (id) => endpoints.invalidate(id),
    rateLimitChanged: (id) => limiter.invalidate(id),
  };
}
