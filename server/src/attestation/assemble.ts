// The attestation capability, assembled: the sequencer (which leads in one process at a time)
// behind its fork guard, witnessing (which the leader runs), proofs, the log's read routes and
// AttestationService.
import type { ServiceImpl } from "@connectrpc/connect";
import type { AttestationService } from "@kapsel/contracts/attestation";
import type { Registry } from "prom-client";
import type { Authenticator } from "../auth/authenticator.ts";
import type { AttestationConfig } from "../config.ts";
import type { Database } from "../db/database.ts";
import type { ReadinessComponent } from "../http/health.ts";
import type { PlainRoute } from "../http/plain-route.ts";
import type { Logger } from "../logger.ts";
import { SequencerTracing } from "../tracing/sequencer-tracing.ts";
import type { Tracing } from "../tracing/tracing.ts";
import type { BackgroundGauges } from "../background-gauges.ts";
import type { SecretBox } from "../secrets/secret-box.ts";
import { AttestationMetrics } from "./attestation-metrics.ts";
import { attestationService, type WitnessedSource } from "./attestation-service.ts";
import { CheckpointFeed } from "./checkpoints.ts";
import { ForkGuard } from "./fork-guard.ts";
import { logRoutes } from "./log-routes.ts";
import { Proofs } from "./proofs.ts";
import { Sequencer } from "./sequencer.ts";
import { currentKey, seedFromEnv } from "./signing-keys.ts";
import { Witnessing } from "./witnessing/witnessing.ts";

export interface AttestationDeps {
  db: Database;
  registry: Registry;
  /** How often the log's gauges are read from the database. */
  metricsRefreshMs: number;
  log: Logger;
  authenticator: Authenticator;
  /** Opens and seals the stored log key seed. */
  secrets: SecretBox;
  tracing: Tracing;
}

export interface AttestationCapability {
  routes: PlainRoute[];
  service: ServiceImpl<typeof AttestationService>;
  /** The log gauges' refresher. */
  gauges: BackgroundGauges;
  /** The log's part of /readyz: not ready while the fork guard refuses to sign. */
  readiness: ReadinessComponent;
  /** Attempts were recorded in this process (a big backlog starts a batch early). */
  recorded(count: number): void;
  /** Makes sure the log's current key exists (generated and stored on the very first start), so
   * GetPublicKeys lists it from the first request on, whichever process leads. Best effort: a
   * failure is logged and left to the sequencer, which needs the key to sign. */
  prepare(): Promise<void>;
  start(): void;
  /** Stops witnessing, signs a last checkpoint if this process leads, then gives up leadership. */
  stop(): Promise<void>;
}

/** The longest retry hint for "not witnessed yet": a client polls at least this often. */
const WITNESSED_RETRY_CAP_MS = 5_000;

export function assembleAttestation(config: AttestationConfig, deps: AttestationDeps): AttestationCapability {
  const { pool } = deps.db;
  const feed = new CheckpointFeed();
  const metrics = new AttestationMetrics(deps.registry, { pool, log: deps.log }, deps.metricsRefreshMs);
  const guard = new ForkGuard(config.stateDir, config.origin, deps.log, {
    refusals: metrics.signingRefusals,
    refused: metrics.signingRefused,
  });
  const keyOptions = { origin: config.origin, envSeed: config.signingKey ? seedFromEnv(config.signingKey) : undefined, secrets: deps.secrets };
  const sequencer = new Sequencer(
    { pool, databaseUrl: deps.db.url, log: deps.log, metrics, feed, guard, tracing: new SequencerTracing(deps.tracing.tracer) },
    { ...keyOptions, intervalMs: config.checkpointIntervalMs },
  );
  const proofs = new Proofs(pool, config.checkpointIntervalMs);
  const witnessing = new Witnessing(
    // Witnesses see checkpoints only from a leader whose tree the fork guard has vetted: a restored
    // database is refused on its own high-water mark before any witness is asked.
    { pool, log: deps.log, registry: deps.registry, refreshing: (r) => metrics.alsoRefresh(r), feed, proofs, guard, leading: () => sequencer.leader && guard.vetted },
    { ...config.witnessing, origin: config.origin },
  );
  const witnessed: WitnessedSource = {
    configured: witnessing.configured,
    latest: () => witnessing.witnessed.latest(),
    retryAfterMs: Math.min(config.witnessing.intervalMs, WITNESSED_RETRY_CAP_MS),
  };
  return {
    routes: logRoutes(pool, proofs, witnessed, deps.authenticator),
    gauges: metrics.gauges,
    service: attestationService(pool, proofs, feed, witnessed, config.origin, config.checkpointIntervalMs),
    async readiness() {
      const refusal = guard.refusal;
      const log = refusal
        ? { signing: "refused", reason: refusal.kind, message: refusal.reason, since: refusal.since.toISOString() }
        : { signing: "ok" };
      // Witnesses being down never makes the server unready: ingest and delivery do not depend
      // on them (only the witnessed checkpoint lags), and a load balancer taking every replica
      // out because a third party is unreachable would turn their outage into ours.
      const detail: Record<string, unknown> = { log };
      if (witnessing.configured) detail.witnesses = await witnessing.report().catch(() => ({ unavailable: true }));
      return { ready: refusal === undefined, detail };
    },
    recorded: (count) => sequencer.recorded(count),
    prepare: async () => {
      await currentKey(pool, keyOptions.origin, keyOptions.envSeed, keyOptions.secrets)
        .catch((err: unknown) => deps.log.warn({ err }, "the log key could not be made ready at start; the sequencer will try again"));
    },
    start: () => {
      sequencer.start();
      witnessing.start();
    },
    stop: async () => {
      await witnessing.stop();
      await sequencer.stop();
    },
  };
}
