// The operator's commands act on the database directly (no running server needed), through the
// same ManagementService implementation the API serves: acting for a tenant, as the tenant's own
// all-scope key would. Each call is built like an RPC, so validation and errors are the API's.
import { create, toJson, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { createContextValues, createHandlerContext } from "@connectrpc/connect";
import { ManagementService } from "@kapsel/contracts/management";
import { ApiKeyStore } from "../auth/api-keys.ts";
import { ALL_SCOPES } from "../auth/api-keys.ts";
import { callerKey, type Caller } from "../auth/auth-context.ts";
import type { Config } from "../config.ts";
import type { Database } from "../db/database.ts";
import { NotifyChannel } from "../db/notify-channel.ts";
import { assembleDelivery } from "../delivery/assemble.ts";
import { EventChanges } from "../delivery/event-changes.ts";
import { emitOperationalEvents } from "../ingest/operational-events.ts";
import type { Logger } from "../logger.ts";
import { assembleManagement } from "../management/assemble.ts";
import { disableEndpoints } from "../management/endpoints.ts";
import { assembleRetention } from "../retention/assemble.ts";
import type { SecretBox } from "../secrets/secret-box.ts";
import { Registry } from "prom-client";
import { TRACING_OFF } from "../tracing/tracing.ts";

type Service = typeof ManagementService;
type MethodName = keyof Service["method"];

export interface Operator {
  /** Calls a ManagementService method as the admin (tenantId undefined) or for a tenant. */
  call<M extends MethodName>(method: M, request: MessageInitShape<Service["method"][M]["input"]>, tenantId?: string): Promise<unknown>;
  /** The same call, its answer as the API's JSON. */
  json<M extends MethodName>(method: M, request: MessageInitShape<Service["method"][M]["input"]>, tenantId?: string): Promise<unknown>;
  close(): Promise<void>;
}

export function operator(config: Config, db: Database, log: Logger, secrets: SecretBox): Operator {
  const jobs = new NotifyChannel(db.pool, db.url, "kapsel_jobs");
  const delivery = assembleDelivery({ ...config.delivery, enabled: false }, {
    pool: db.pool, jobs, changes: new EventChanges(), registry: new Registry(), metricsRefreshMs: config.metrics.refreshMs, log, secrets,
    tracing: TRACING_OFF, disableEndpoints, emitOperationalEvents, onEndpointsDisabled: () => {}, onRecorded: () => {},
  });
  const management = assembleManagement({
    pool: db.pool,
    secrets,
    keys: new ApiKeyStore(db.pool),
    queue: delivery.queue,
    // Requeued events wake the dispatchers of running servers (NOTIFY).
    jobs,
    changes: new EventChanges(),
    destinations: config.delivery.destinations,
    defaultTimeoutMs: config.delivery.timeoutMs,
    rateLimitDefaults: config.ingest.rateLimit,
    onEndpointChanged: () => {},
    onSourceChanged: () => {},
    onRateLimitChanged: () => {},
    retention: assembleRetention(config.retention, { pool: db.pool, registry: new Registry(), log }).rpcs,
  }) as unknown as Record<string, (req: unknown, ctx: unknown) => Promise<unknown>>;

  const call = async (method: MethodName, request: unknown, tenantId?: string) => {
    const desc = ManagementService.method[method];
    const caller: Caller = tenantId === undefined ? { kind: "admin" } : { kind: "tenant", tenantId, keyId: "operator", scopes: ALL_SCOPES };
    const ctx = createHandlerContext({
      service: ManagementService,
      method: desc,
      protocolName: "cli",
      requestMethod: "POST",
      url: `cli:${ManagementService.typeName}/${desc.name}`,
      contextValues: createContextValues().set(callerKey, caller),
    });
    const input = create(desc.input as DescMessage, request as never);
    return { desc, answer: await management[desc.localName]!(input, ctx) };
  };
  return {
    call: async (method, request, tenantId) => (await call(method, request, tenantId)).answer,
    json: async (method, request, tenantId) => {
      const { desc, answer } = await call(method, request, tenantId);
      return toJson(desc.output as DescMessage, create(desc.output as DescMessage, answer as never));
    },
    // A requeue's NOTIFY must reach running servers before the pool closes.
    close: () => jobs.flush(),
  };
}
