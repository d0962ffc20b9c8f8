// The attestation capability, assembled: the sequencer (which leads in one process at a time),
// proofs, the log's read routes and AttestationService.
import type { ServiceImpl } from "@connectrpc/connect";
import type { AttestationService } from "@kapsel/contracts/attestation";
import type { Registry } from "prom-client";
import type { Authenticator } from "../auth/authenticator.ts";
import type { AttestationConfig } from "../config.ts";
import type { Database } from "../db/database.ts";
import type { PlainRoute } from "../http/plain-route.ts";
import type { Logger } from "../logger.ts";
import type { BackgroundGauges } from "../background-gauges.ts";
import { AttestationMetrics } from "./attestation-metrics.ts";
import { attestationService } from "./attestation-service.ts";
import { CheckpointFeed } from "./checkpoints.ts";
import { logRoutes } from "./log-routes.ts";
import { Proofs } from "./proofs.ts";
import { Sequencer } from "./sequencer.ts";
import { seedFromEnv } from "./signing-keys.ts";

export interface AttestationDeps {
  db: Database;
  registry: Registry;
  /** How often the log's gauges are read from the database. */
  metricsRefreshMs: number;
  log: Logger;
  authenticator: Authenticator;
}

export interface AttestationCapability {
  routes: PlainRoute[];
  service: ServiceImpl<typeof AttestationService>;
  /** The log gauges' refresher. */
  gauges: BackgroundGauges;
  /** Attempts were recorded in this process (a big backlog starts a batch early). */
  recorded(count: number): void;
  start(): void;
  /** Signs a last checkpoint if this process leads, then gives up leadership. */
  stop(): Promise<void>;
}

export function assembleAttestation(config: AttestationConfig, deps: AttestationDeps): AttestationCapability {
  const { pool } = deps.db;
  const feed = new CheckpointFeed();
  const metrics = new AttestationMetrics(deps.registry, { pool, log: deps.log }, deps.metricsRefreshMs);
  const sequencer = new Sequencer(
    { pool, databaseUrl: deps.db.url, log: deps.log, metrics, feed },
    { origin: config.origin, intervalMs: config.checkpointIntervalMs, envSeed: config.signingKey ? seedFromEnv(config.signingKey) : undefined },
  );
  const proofs = new Proofs(pool, config.checkpointIntervalMs);
  return {
    routes: logRoutes(pool, proofs, deps.authenticator),
    gauges: metrics.gauges,
    service: attestationService(pool, proofs, feed, config.origin, config.checkpointIntervalMs),
    recorded: (count) => sequencer.recorded(count),
    start: () => sequencer.start(),
    stop: () => sequencer.stop(),
  };
}
