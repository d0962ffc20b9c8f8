// Composition root: config → database → capabilities → one listener. Each capability assembles
// itself from its slice of the config; this file only connects them, in dependency order
// (attestation, then delivery, which tells it and ingest about its work, then ingest, which hands
// new jobs to delivery, then management, which tells ingest about its changes). A test starts a complete server on its own database and port.
import type { ConnectRouter } from "@connectrpc/connect";
import { AttestationService } from "@kapsel/contracts/attestation";
import { Health } from "@kapsel/contracts/health";
import { IngestService } from "@kapsel/contracts/ingest";
import { ManagementService } from "@kapsel/contracts/management";
import { Registry } from "prom-client";
import { assembleAttestation } from "./attestation/assemble.ts";
import { adminToken } from "./auth/admin-token.ts";
import { ApiKeyStore } from "./auth/api-keys.ts";
import { authGate } from "./auth/auth-gate.ts";
import { createAuthenticator } from "./auth/authenticator.ts";
import type { Config } from "./config.ts";
import { openDatabase } from "./db/database.ts";
import { fillPool } from "./db/pool.ts";
import { NotifyChannel } from "./db/notify-channel.ts";
import { assembleDelivery } from "./delivery/assemble.ts";
import { EventChanges } from "./delivery/event-changes.ts";
import { createApp } from "./http/app.ts";
import { errorInterceptor } from "./http/error-interceptor.ts";
import { consoleRoutes, loadConsole } from "./http/console-route.ts";
import { healthRoutes, healthService, Readiness } from "./http/health.ts";
import { listen } from "./http/listener.ts";
import { streamLimits } from "./http/stream-limits.ts";
import { HttpMetrics, listenForMetrics, metricsRoutes, type MetricsListener } from "./http/metrics.ts";
import { assembleIngest } from "./ingest/assemble.ts";
import { emitOperationalEvents } from "./ingest/operational-events.ts";
import type { Logger } from "./logger.ts";
import { assembleManagement } from "./management/assemble.ts";
import { disableEndpoints } from "./management/endpoints.ts";
import { assembleRetention } from "./retention/assemble.ts";
import { registerReflection } from "./reflection/server-reflection.ts";
import { openSecrets } from "./secrets/open-secrets.ts";
import { startTracing } from "./tracing/tracing.ts";

export interface Server {
  port: number;
  url: string;
  /** The separate metrics listener's base URL (its one path is /metrics); undefined when off. */
  metricsUrl: string | undefined;
  adminToken: string;
  /** Graceful stop: not ready → stop accepting → finish in-flight work (bounded) → close the database. */
  stop(): Promise<void>;
}

export async function startServer(config: Config, log: Logger): Promise<Server> {
  const token = await adminToken(config.adminToken, config.dataDir, log);
  const db = await openDatabase(config.database, config.dataDir, log);
  const { pool } = db;
  // Every connection open before the port is: a burst must not wait for handshakes (db/pool.ts).
  // A database that allows fewer is not a reason not to start: the pool works with what it gets.
  await fillPool(pool, config.database.poolSize).catch((err: unknown) => {
    log.warn({ err, pool_size: config.database.poolSize }, "could not open every database connection at start; going on with fewer");
  });
  // Before anything is served: a wrong master key stops here.
  const secrets = await openSecrets(config.secrets, config.dataDir, pool, log).catch(async (err: unknown) => {
    await db.close();
    throw err;
  });
  const registry = new Registry();
  const keys = new ApiKeyStore(pool);
  const authenticator = createAuthenticator(token, keys);
  // New delivery jobs: ingest and requeues notify, dispatchers (here and in other processes) listen.
  const jobs = new NotifyChannel(pool, db.url, "kapsel_jobs");
  const changes = new EventChanges();

  // Off (no SDK, no-op everywhere) unless an OTLP endpoint is configured.
  const tracing = await startTracing(config.tracing, log);

  const metricsRefreshMs = config.metrics.refreshMs;
  const attestation = assembleAttestation(config.attestation, { db, registry, metricsRefreshMs, log, authenticator, tracing, secrets });
  const readiness = new Readiness(db, [attestation.readiness]);
  const delivery = assembleDelivery(config.delivery, {
    pool, jobs, changes, registry, metricsRefreshMs, log, tracing, secrets, disableEndpoints, emitOperationalEvents,
    // Called only once delivering, long after ingest below is assembled.
    onEndpointsDisabled: (gone) => gone.forEach((e) => ingest.endpointChanged(e.endpointId, e.tenantId)),
    onRecorded: attestation.recorded,
  });
  const ingest = assembleIngest(config.ingest, { pool, jobs, registry, log, tracing, secrets, handOff: delivery.handOff });
  const retention = assembleRetention(config.retention, { pool, registry, log });
  const management = assembleManagement({
    pool, secrets, keys, jobs, changes, queue: delivery.queue,
    destinations: config.delivery.destinations,
    defaultTimeoutMs: config.delivery.timeoutMs,
    rateLimitDefaults: config.ingest.rateLimit,
    onEndpointChanged: ingest.endpointChanged,
    onSourceChanged: ingest.sourceChanged,
    onRateLimitChanged: ingest.rateLimitChanged,
    retention: retention.rpcs,
  });

  const shutdown = new AbortController();
  const authenticate = authGate(authenticator);
  const app = createApp({
    log,
    metrics: new HttpMetrics(registry),
    routes: [...healthRoutes(readiness), ...metricsRoutes(registry, config.metrics.token), ...ingest.routes, ...attestation.routes, ...consoleRoutes(await loadConsole())],
    rpc: (router: ConnectRouter) => {
      router.service(Health, healthService(readiness));
      router.service(IngestService, ingest.service);
      router.service(ManagementService, management);
      router.service(AttestationService, attestation.service);
      // Last: it describes the services registered above.
      registerReflection(router);
    },
    gate: async (ctx) => {
      await authenticate(ctx);
      ingest.gate(ctx);
    },
    interceptors: [errorInterceptor(log), streamLimits(config.http.streams)],
    readLimits: { batchBytes: config.http.maxRpcBytes, payloadBytes: config.ingest.maxPayloadBytes },
    shutdownSignal: shutdown.signal,
  });
  await attestation.prepare();
  let metricsListener: MetricsListener | undefined;
  const listener = await (async () => {
    if (config.metrics.listen) metricsListener = await listenForMetrics(config.metrics.listen, registry, config.metrics.token);
    return listen(config.http, app.handle);
  })().catch(async (err: unknown) => {
    await metricsListener?.close();
    await tracing.shutdown();
    await db.close();
    throw err;
  });
  // Database-derived gauges are read only when someone can scrape them.
  const gauges = metricsListener || config.metrics.token ? [delivery.gauges, attestation.gauges] : [];
  for (const g of gauges) g.start();
  delivery.start();
  attestation.start();
  retention.start();
  log.info({ port: listener.port, metrics_port: metricsListener?.port, tls: config.http.tls !== undefined, delivery: config.delivery.enabled }, "kapsel listening");

  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= (async () => {
    log.info("shutting down: not ready, no new connections, finishing in-flight requests");
    readiness.startDraining();
    listener.stopAccepting();
    // Streams (watches) never finish by themselves: give health watchers a moment to send
    // NOT_SERVING, then end every stream so clients reconnect elsewhere.
    await new Promise((r) => setTimeout(r, 100));
    shutdown.abort();
    const deadline = Date.now() + config.http.shutdownTimeoutMs;
    while (app.active() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (app.active() > 0) log.warn({ active: app.active() }, "shutdown timeout: dropping unfinished requests");
    listener.destroyAll();
    // Each remaining step is best effort: the database may be gone (that is often why we stop),
    // and one failing step must not keep the others from releasing what they hold.
    const step = async (name: string, run: () => Promise<void>) => {
      await run().catch((err: unknown) => log.warn({ err, step: name }, "shutdown step failed"));
    };
    await step("purger", () => retention.stop());
    await step("metrics", async () => {
      for (const g of gauges) g.stop();
      await metricsListener?.close();
    });
    await step("delivery", () => delivery.stop(Math.max(0, deadline - Date.now())));
    // After the last deliveries are recorded: the leader signs a final checkpoint covering them.
    await step("sequencer", () => attestation.stop());
    // After the last spans (deliveries, the final batch) have ended: export what is left.
    await step("tracing", () => tracing.shutdown());
    await step("database", () => db.close());
    app.flush();
    log.info("stopped");
  })());

  const scheme = config.http.tls ? "https" : "http";
  const host = config.http.host === "0.0.0.0" || config.http.host === "::" ? "127.0.0.1" : config.http.host;
  const metricsHost = (h: string) => (h === "0.0.0.0" ? "127.0.0.1" : h === "::" ? "[::1]" : h.includes(":") ? `[${h}]` : h);
  const metricsUrl = metricsListener && config.metrics.listen ? `http://${metricsHost(config.metrics.listen.host)}:${metricsListener.port}` : undefined;
  return { port: listener.port, url: `${scheme}://${host}:${listener.port}`, metricsUrl, adminToken: token, stop };
}
