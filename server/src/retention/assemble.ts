// The retention capability, assembled: tenants' retention policies, erasure on request and the
// background purger. Its RPCs are part of ManagementService (the management assembler mounts
// them); the purger runs in every process and purges in one at a time (purger.ts).
import type { ServiceImpl } from "@connectrpc/connect";
import type { ManagementService } from "@kapsel/contracts/management";
import type { Registry } from "prom-client";
import type { RetentionConfig } from "../config.ts";
import type { DatabasePool } from "../db/pool.ts";
import type { Logger } from "../logger.ts";
import { Erasures } from "./erasures.ts";
import { Purger } from "./purger.ts";
import { RetentionMetrics } from "./retention-metrics.ts";
import { RetentionPolicies } from "./retention-policies.ts";

export type RetentionRpcs = Pick<ServiceImpl<typeof ManagementService>, "getRetentionPolicy" | "updateRetentionPolicy" | "eraseEvents" | "listErasures">;

export interface RetentionDeps {
  pool: DatabasePool;
  registry: Registry;
  log: Logger;
}

export interface RetentionCapability {
  rpcs: RetentionRpcs;
  purger: Purger;
  start(): void;
  /** Lets the batch in progress finish, then stops purging. */
  stop(): Promise<void>;
}

export function assembleRetention(config: RetentionConfig, deps: RetentionDeps): RetentionCapability {
  const metrics = new RetentionMetrics(deps.registry);
  const policies = new RetentionPolicies(deps.pool, { defaults: config.defaults, maxSeconds: config.maxSeconds });
  const erasures = new Erasures(deps.pool, metrics);
  const purger = new Purger(
    { pool: deps.pool, tenants: () => policies.all(), metrics, log: deps.log.child({ component: "purger" }) },
    { intervalMs: config.purgeIntervalMs, batchSize: config.purgeBatchSize, idempotencyWindowMs: config.idempotencyWindowMs },
  );
  return {
    rpcs: {
      getRetentionPolicy: policies.getRetentionPolicy,
      updateRetentionPolicy: policies.updateRetentionPolicy,
      eraseEvents: erasures.eraseEvents,
      listErasures: erasures.listErasures,
    },
    purger,
    start: () => purger.start(),
    stop: () => purger.stop(),
  };
}
