// The delivery capability, assembled: the queue (which management needs even in a process that
// does not deliver) and, when this process delivers, the dispatcher with its sender.
import type { Registry } from "prom-client";
import type { DeliveryConfig } from "../config.ts";
import type { NotifyChannel } from "../db/notify-channel.ts";
import type { DatabasePool } from "../db/pool.ts";
import type { Logger } from "../logger.ts";
import { DeliveryTracing } from "../tracing/delivery-tracing.ts";
import type { Tracing } from "../tracing/tracing.ts";
import type { BackgroundGauges } from "../background-gauges.ts";
import type { SecretBox } from "../secrets/secret-box.ts";
import { CircuitStore } from "./circuit-store.ts";
import { DeliveryMetrics } from "./delivery-metrics.ts";
import { Dispatcher } from "./dispatcher.ts";
import type { EventChanges } from "./event-changes.ts";
import { HttpSender } from "./http-sender.ts";
import type { JobHandOff } from "./job-handoff.ts";
import { JobQueue, type DisableEndpoints, type DisabledEndpoint } from "./job-queue.ts";
import type { EmitOperationalEvents } from "../ingest/operational-events.ts";

export interface DeliveryDeps {
  pool: DatabasePool;
  /** New jobs are announced here (by ingest and requeues, in any process). */
  jobs: NotifyChannel;
  changes: EventChanges;
  registry: Registry;
  /** How often the queue and circuit gauges are read from the database. */
  metricsRefreshMs: number;
  log: Logger;
  /** Opens the endpoints' sealed signing secrets at claim time. */
  secrets: SecretBox;
  tracing: Tracing;
  /** The endpoints table's own writer, for 410 Gone. */
  disableEndpoints: DisableEndpoints;
  /** Kapsel's own events about what delivery changed (ingest/operational-events.ts). */
  emitOperationalEvents: EmitOperationalEvents;
  /** After this process disabled endpoints (so ingest forgets them at once). */
  onEndpointsDisabled: (endpoints: DisabledEndpoint[]) => void;
  /** After attempts were recorded (so the sequencer can start early on a big backlog). */
  onRecorded: (count: number) => void;
}

export interface DeliveryCapability {
  queue: JobQueue;
  /** The queue and circuit gauges' refresher (every process reports them, delivering or not). */
  gauges: BackgroundGauges;
  /** The dispatcher, for ingest to hand new jobs to (job-handoff.ts); undefined when this process
   * does not deliver. */
  handOff: JobHandOff | undefined;
  start(): void;
  /** Stops claiming, lets in-flight deliveries finish within `timeoutMs`, writes every outcome. */
  stop(timeoutMs: number): Promise<void>;
}

export function assembleDelivery(config: DeliveryConfig, deps: DeliveryDeps): DeliveryCapability {
  const circuits = new CircuitStore(deps.pool, { ...config.circuit, maxProbes: 2 });
  const queue = new JobQueue(deps.pool, circuits, {
    leaseMs: config.leaseMs, secrets: deps.secrets, log: deps.log, disableEndpoints: deps.disableEndpoints, emitOperationalEvents: deps.emitOperationalEvents,
  });
  const metrics = new DeliveryMetrics(deps.registry, deps, deps.metricsRefreshMs);
  if (!config.enabled) return { queue, gauges: metrics.gauges, handOff: undefined, start: () => {}, stop: async () => {} };
  const policy = { allowPrivate: config.destinations.allowPrivate, allowList: config.destinations.allowList };
  const dispatcher = new Dispatcher(
    {
      jobs: deps.jobs,
      queue,
      sender: new HttpSender({ policy, connectTimeoutMs: config.timeoutMs, connectionsPerOrigin: config.perEndpointConcurrency }),
      metrics,
      changes: deps.changes,
      log: deps.log,
      tracing: new DeliveryTracing(deps.tracing.tracer),
      onEndpointsDisabled: deps.onEndpointsDisabled,
      onRecorded: deps.onRecorded,
    },
    { concurrency: config.concurrency, perEndpoint: config.perEndpointConcurrency, retryPolicy: config.retry },
  );
  return { queue, gauges: metrics.gauges, handOff: dispatcher, start: () => dispatcher.start(), stop: (timeoutMs) => dispatcher.stop(timeoutMs) };
}
