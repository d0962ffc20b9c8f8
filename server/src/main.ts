// Composition root: config → database → services → listener. Everything is passed in explicitly,
// so a test can start a complete server on its own database and port.
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { ConnectRouter } from "@connectrpc/connect";
import { ApiKeyStore } from "./auth/api-keys.ts";
import { authInterceptor, createAuthenticator } from "./auth/auth-interceptor.ts";
import type { Config } from "./config.ts";
import { openDatabase, type Database } from "./db/database.ts";
import { readOrCreateSecret } from "./db/embedded.ts";
import { Health } from "@kapsel/contracts/health";
import { AttestationService } from "@kapsel/contracts/attestation";
import { IngestService } from "@kapsel/contracts/ingest";
import { ManagementService } from "@kapsel/contracts/management";
import { createApp } from "./http/app.ts";
import { errorInterceptor } from "./http/error-interceptor.ts";
import { exact, sendJson, type PlainRoute } from "./http/plain-route.ts";
import { healthService, Readiness } from "./http/health.ts";
import { listen, type Listener } from "./http/listener.ts";
import { HttpMetrics } from "./http/metrics.ts";
import type { Logger } from "./logger.ts";
import { disableEndpoints, Endpoints } from "./management/endpoints.ts";
import { Tenants } from "./management/tenants.ts";
import { EndpointCache } from "./ingest/endpoint-cache.ts";
import { DEFAULT_KEPT_HEADERS, gatewayRoute } from "./ingest/gateway.ts";
import { idempotencyKeyOf, insertEvents, type Accepted, type NewEvent } from "./ingest/event-insert.ts";
import { GroupCommit } from "./ingest/group-commit.ts";
import { IngestMetrics } from "./ingest/ingest-metrics.ts";
import { ingestService } from "./ingest/ingest-service.ts";
import { Ingestor } from "./ingest/ingestor.ts";
import { RateLimiter } from "./ingest/rate-limiter.ts";
import { DeliveryMetrics } from "./delivery/delivery-metrics.ts";
import { Dispatcher } from "./delivery/dispatcher.ts";
import { NotifyChannel } from "./db/notify-channel.ts";
import { EventChanges } from "./delivery/event-changes.ts";
import { HttpSender } from "./delivery/http-sender.ts";
import { CircuitStore } from "./delivery/circuit-store.ts";
import { JobQueue } from "./delivery/job-queue.ts";
import { Events } from "./management/events.ts";
import { AttestationMetrics } from "./attestation/attestation-metrics.ts";
import { attestationService } from "./attestation/attestation-service.ts";
import { CheckpointFeed } from "./attestation/checkpoints.ts";
import { logRoutes } from "./attestation/log-routes.ts";
import { Proofs } from "./attestation/proofs.ts";
import { Sequencer } from "./attestation/sequencer.ts";
import { seedFromEnv } from "./attestation/signing-keys.ts";

export interface Server {
  port: number;
  url: string;
  adminToken: string;
  db: Database;
  tenants: Tenants;
  /** Graceful stop: not ready → stop accepting → finish in-flight work (bounded) → close the database. */
  stop(): Promise<void>;
}

/** Finds or makes the admin token; a newly made one is printed once with a quick-start hint. */
async function adminToken(config: Config, log: Logger): Promise<string> {
  if (config.adminToken !== undefined) return config.adminToken;
  await mkdir(config.dataDir, { recursive: true });
  const file = path.resolve(config.dataDir, "admin-token");
  const isNew = !existsSync(file);
  const token = await readOrCreateSecret(file, () => `kadm_${randomBytes(32).toString("base64url")}`);
  if (isNew) {
    log.info({ file }, "generated an admin token (printed once below; kept in this 0600 file)");
    process.stderr.write(
      `\nKapsel admin token: ${token}\n` +
      `Create a tenant:   npx kapsel tenant create my-team   (or ManagementService.CreateTenant with\n` +
      `                   Authorization: Bearer <admin token>)\n\n`,
    );
  }
  return token;
}

export async function startServer(config: Config, log: Logger): Promise<Server> {
  const token = await adminToken(config, log);
  const db = await openDatabase(config, log);
  const metrics = new HttpMetrics();
  const readiness = new Readiness(db);
  const shutdown = new AbortController();

  const keys = new ApiKeyStore(db.pool);
  const tenants = new Tenants(db.pool, keys, { perSecond: config.defaultRateLimitPerSecond, burst: config.defaultRateLimitBurst });
  const policy = { allowPrivate: config.allowPrivateDestinations, allowList: config.destinationAllowList };
  const endpoints = new Endpoints(db.pool, policy, config.deliveryTimeoutMs);

  const ingestMetrics = new IngestMetrics(metrics.registry);
  const endpointCache = new EndpointCache(db.pool);
  const limiter = new RateLimiter((tenantId) => tenants.rateLimit(tenantId));
  endpoints.onChanged = (id) => endpointCache.invalidate(id);
  tenants.onRateLimitChanged = (id) => limiter.invalidate(id);
  const changes = new EventChanges();
  // New delivery jobs: ingest and requeues notify, dispatchers (here and in other processes) listen.
  const jobs = new NotifyChannel(db.pool, db.url, "kapsel_jobs");
  const circuits = new CircuitStore(db.pool, {
    consecutiveFailures: config.circuitFailureThreshold,
    failureRate: config.circuitFailureRate,
    minAttempts: config.circuitMinAttempts,
    windowMs: config.circuitWindowMs,
    openMs: config.circuitOpenMs,
    maxProbes: 2,
  });
  const queue = new JobQueue(db.pool, circuits, { leaseMs: config.deliveryLeaseMs, disableEndpoints });
  const dispatcher = config.deliveryEnabled
    ? new Dispatcher(
        {
          jobs,
          queue,
          sender: new HttpSender({ policy, connectTimeoutMs: config.deliveryTimeoutMs, connectionsPerOrigin: config.deliveryPerEndpointConcurrency }),
          metrics: new DeliveryMetrics(metrics.registry, db.pool),
          changes,
          log,
        },
        {
          concurrency: config.deliveryConcurrency,
          perEndpoint: config.deliveryPerEndpointConcurrency,
          retryPolicy: { baseMs: config.retryBaseMs, capMs: config.retryCapMs },
        },
      )
    : undefined;
  const feed = new CheckpointFeed();
  const sequencer = new Sequencer(
    { pool: db.pool, databaseUrl: db.url, log, metrics: new AttestationMetrics(metrics.registry, db.pool), feed },
    { origin: config.logOrigin, intervalMs: config.checkpointIntervalMs, envSeed: config.signingKey ? seedFromEnv(config.signingKey) : undefined },
  );
  if (dispatcher) dispatcher.onRecorded = (n) => sequencer.recorded(n);
  const proofs = new Proofs(db.pool, config.checkpointIntervalMs);
  const authenticator = createAuthenticator(token, keys);
  if (dispatcher) dispatcher.onEndpointsDisabled = (ids) => ids.forEach((id) => endpointCache.invalidate(id));
  const events = new Events(db.pool, queue, changes, jobs);
  const groupCommit = new GroupCommit<NewEvent, Accepted>({
    keyOf: idempotencyKeyOf,
    sizeOf: (e) => e.payload.length,
    write: async (batch) => {
      ingestMetrics.batchSize.observe(batch.length);
      const accepted = await insertEvents(db.pool, batch, config.idempotencyWindowMs);
      if (accepted.some((a) => !a.duplicate)) jobs.notify();
      return accepted;
    },
  });
  const ingestor = new Ingestor(endpointCache, limiter, groupCommit, {
    maxPayloadBytes: config.maxPayloadBytes,
    keptHeaders: [...DEFAULT_KEPT_HEADERS, ...config.keptHeaders],
  });

  const routes: PlainRoute[] = [
    exact("GET", "/healthz", (_req, res) => sendJson(res, 200, { status: "ok" })),
    exact("GET", "/readyz", async (_req, res) => {
      const report = await readiness.check();
      sendJson(res, report.ready ? 200 : 503, report);
    }),
    exact("GET", "/metrics", async (_req, res) => {
      const text = await metrics.registry.metrics();
      res.writeHead(200, { "content-type": metrics.registry.contentType });
      res.end(text);
    }),
    gatewayRoute(ingestor, ingestMetrics, { log }),
    ...logRoutes(db.pool, proofs, authenticator),
  ];

  const rpc = (router: ConnectRouter) => {
    router.service(Health, healthService(readiness));
    router.service(IngestService, ingestService(ingestor, ingestMetrics));
    router.service(ManagementService, {
      createTenant: tenants.createTenant,
      getTenant: tenants.getTenant,
      listTenants: tenants.listTenants,
      updateTenant: tenants.updateTenant,
      createApiKey: tenants.createApiKey,
      listApiKeys: tenants.listApiKeys,
      revokeApiKey: tenants.revokeApiKey,
      createEndpoint: endpoints.createEndpoint,
      getEndpoint: endpoints.getEndpoint,
      listEndpoints: endpoints.listEndpoints,
      updateEndpoint: endpoints.updateEndpoint,
      deleteEndpoint: endpoints.deleteEndpoint,
      rotateEndpointSecret: endpoints.rotateEndpointSecret,
      listEvents: events.listEvents,
      getEvent: events.getEvent,
      retryEvent: events.retryEvent,
      recoverEvents: events.recoverEvents,
      watchEvent: events.watchEvent.bind(events),
      getEndpointHealth: events.getEndpointHealth,
    });
    router.service(AttestationService, attestationService(db.pool, proofs, feed, config.logOrigin, config.checkpointIntervalMs));
  };

  const app = createApp({
    log,
    metrics,
    routes,
    rpc,
    interceptors: [errorInterceptor(log), authInterceptor(authenticator)],
    readMaxBytes: config.maxRpcBytes,
    shutdownSignal: shutdown.signal,
  });

  let listener: Listener;
  try {
    listener = await listen(
      { host: config.host, port: config.port, tls: config.tlsCert ? { certFile: config.tlsCert, keyFile: config.tlsKey! } : undefined },
      app.handle,
    );
  } catch (err) {
    await db.close();
    throw err;
  }
  const scheme = config.tlsCert ? "https" : "http";
  const host = config.host === "0.0.0.0" || config.host === "::" ? "127.0.0.1" : config.host;
  dispatcher?.start();
  sequencer.start();
  log.info({ port: listener.port, tls: config.tlsCert !== undefined, delivery: dispatcher !== undefined }, "kapsel listening");

  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= (async () => {
    log.info("shutting down: not ready, no new connections, finishing in-flight requests");
    readiness.startDraining();
    listener.stopAccepting();
    // Streams (watches) never finish by themselves: give health watchers a moment to send
    // NOT_SERVING, then end every stream so clients reconnect elsewhere.
    await new Promise((r) => setTimeout(r, 100));
    shutdown.abort();
    const deadline = Date.now() + config.shutdownTimeoutMs;
    while (app.active() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (app.active() > 0) log.warn({ active: app.active() }, "shutdown timeout: dropping unfinished requests");
    listener.destroyAll();
    // Each remaining step is best effort: the database may be gone (that is often why we stop),
    // and one failing step must not keep the others from releasing what they hold.
    const step = async (name: string, run: () => Promise<void>) => {
      await run().catch((err: unknown) => log.warn({ err, step: name }, "shutdown step failed"));
    };
    await step("delivery", async () => dispatcher?.stop(Math.max(0, deadline - Date.now())));
    // After the last deliveries are recorded: the leader signs a final checkpoint covering them.
    await step("sequencer", () => sequencer.stop());
    await step("database", () => db.close());
    log.info("stopped");
  })());

  return { port: listener.port, url: `${scheme}://${host}:${listener.port}`, adminToken: token, db, tenants, stop };
}
