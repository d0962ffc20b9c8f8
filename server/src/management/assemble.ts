// The management capability, assembled: tenants and keys, endpoints, events, as one complete
// ManagementService (the compiler refuses an RPC without a handler).
import type { ServiceImpl } from "@connectrpc/connect";
import type { ManagementService } from "@kapsel/contracts/management";
import type { ApiKeyStore } from "../auth/api-keys.ts";
import type { NotifyChannel } from "../db/notify-channel.ts";
import type { DatabasePool } from "../db/pool.ts";
import type { DestinationPolicy } from "../delivery/destination-policy.ts";
import type { EventChanges } from "../delivery/event-changes.ts";
import type { JobQueue } from "../delivery/job-queue.ts";
import type { RetentionRpcs } from "../retention/assemble.ts";
import type { SecretBox } from "../secrets/secret-box.ts";
import { EndpointStats } from "./endpoint-stats.ts";
import { Endpoints } from "./endpoints.ts";
import { Events } from "./events.ts";
import { EventWatch } from "./watch-events.ts";
import { Messages } from "./messages.ts";
import { Sources } from "./sources.ts";
import { Tenants, type RateLimitDefaults } from "./tenants.ts";

export interface ManagementDeps {
  pool: DatabasePool;
  /** Seals endpoints' and sources' secrets before they are stored. */
  secrets: SecretBox;
  keys: ApiKeyStore;
  queue: JobQueue;
  jobs: NotifyChannel;
  changes: EventChanges;
  destinations: DestinationPolicy;
  defaultTimeoutMs: number;
  rateLimitDefaults: RateLimitDefaults;
  /** Lets ingest forget a changed endpoint (and its tenant's subscribers) at once. */
  onEndpointChanged: (endpointId: string, tenantId: string) => void;
  /** Lets ingest forget a changed source at once. */
  onSourceChanged: (sourceId: string) => void;
  /** Lets ingest read a tenant's new rate limit at once. */
  onRateLimitChanged: (tenantId: string) => void;
  /** Retention policies and erasure (the retention capability's RPCs). */
  retention: RetentionRpcs;
}

export function assembleManagement(deps: ManagementDeps): ServiceImpl<typeof ManagementService> {
  const tenants = new Tenants(deps.pool, deps.keys, deps.rateLimitDefaults, deps.onRateLimitChanged);
  const endpoints = new Endpoints(deps.pool, deps.secrets, deps.destinations, deps.defaultTimeoutMs, deps.onEndpointChanged);
  const events = new Events(deps.pool, deps.queue, deps.changes, deps.jobs);
  const stats = new EndpointStats(deps.pool);
  const watch = new EventWatch(deps.pool);
  const messages = new Messages(deps.pool);
  const sources = new Sources(deps.pool, deps.secrets, deps.onSourceChanged);
  return {
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
    getEndpointStats: stats.getEndpointStats,
    watchEvents: watch.watchEvents.bind(watch),
    listMessages: messages.listMessages,
    getMessage: messages.getMessage,
    createSource: sources.createSource,
    getSource: sources.getSource,
    listSources: sources.listSources,
    updateSource: sources.updateSource,
    deleteSource: sources.deleteSource,
    rotateSourceSecret: sources.rotateSourceSecret,
    ...deps.retention,
  };
}
