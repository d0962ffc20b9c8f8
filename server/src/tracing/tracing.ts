// The tracer of one server process. With an OTLP endpoint configured, an SDK tracer provider
// (not registered globally: nothing else in the process is traced behind our back) with a batch
// processor and the OTLP/HTTP protobuf exporter; without one, no SDK at all — `tracer` is
// undefined and every instrumented place does one test of it and nothing else.
//
// The SDK core used (@opentelemetry/sdk-trace) reads no environment variables: config.ts reads the
// OTEL_* variables (tracing-config.ts) and everything is passed here explicitly. The SDK and the
// exporter are imported only when tracing is on: a process that does not trace never loads them.
import { readFileSync } from "node:fs";
import { diag, DiagLogLevel, type Tracer } from "@opentelemetry/api";
import type { Sampler } from "@opentelemetry/sdk-trace";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";
import type { Logger } from "../logger.ts";
import type { SamplerName, TracingConfig } from "./tracing-config.ts";

const VERSION = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;

/** Links per span: a group commit carries up to 1 000 messages, a sequencer batch up to 10 000
 * attempts (links beyond this are dropped; the span's count attribute still says how many). */
export const MAX_LINKS = 1024;

export interface Tracing {
  /** Undefined when tracing is off. */
  readonly tracer: Tracer | undefined;
  /** Exports what is left (bounded by the export timeout) and stops. */
  shutdown(): Promise<void>;
}

export const TRACING_OFF: Tracing = { tracer: undefined, shutdown: async () => {} };

export async function startTracing(config: TracingConfig, log: Logger): Promise<Tracing> {
  const exporterConfig = config.exporter;
  if (exporterConfig === undefined) return TRACING_OFF;
  const [{ OTLPTraceExporter }, { resourceFromAttributes }, sdk] = await Promise.all([
    import("@opentelemetry/exporter-trace-otlp-proto"), import("@opentelemetry/resources"), import("@opentelemetry/sdk-trace"),
  ]);
  const { BatchSpanProcessor, TracerProvider } = sdk;
  // The SDK reports export failures through its diagnostic logger: into ours, at warn.
  const tracingLog = log.child({ component: "tracing" });
  diag.setLogger({
    error: (message, ...args) => tracingLog.warn({ args: args.map(String) }, message),
    warn: (message, ...args) => tracingLog.warn({ args: args.map(String) }, message),
    info: () => {},
    debug: () => {},
    verbose: () => {},
  }, { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
  const exporter = new OTLPTraceExporter({ url: exporterConfig.url, headers: exporterConfig.headers, timeoutMillis: exporterConfig.timeoutMs });
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ ...config.resourceAttributes, [ATTR_SERVICE_NAME]: config.serviceName, [ATTR_SERVICE_VERSION]: VERSION }),
    sampler: sampler(sdk, config.sampler.name, config.sampler.ratio),
    spanLimits: { linkCountLimit: MAX_LINKS, attributeValueLengthLimit: 4096 },
    spanProcessors: [new BatchSpanProcessor({
      exporter,
      scheduledDelayMillis: config.batch.scheduleDelayMs,
      maxQueueSize: config.batch.maxQueueSize,
      maxExportBatchSize: Math.min(config.batch.maxExportBatchSize, config.batch.maxQueueSize),
      exportTimeoutMillis: config.batch.exportTimeoutMs,
    })],
  });
  tracingLog.info({ endpoint: redactedEndpoint(exporterConfig.url), sampler: config.sampler.name }, "exporting traces");
  return {
    tracer: provider.getTracer("kapsel", VERSION),
    shutdown: () => provider.shutdown().catch((err: unknown) => tracingLog.warn({ err }, "flushing traces failed")),
  };
}

function sampler(sdk: typeof import("@opentelemetry/sdk-trace"), name: SamplerName, ratio: number): Sampler {
  const { AlwaysOffSampler, AlwaysOnSampler, ParentBasedSampler, TraceIdRatioBasedSampler } = sdk;
  switch (name) {
    case "always_on": return new AlwaysOnSampler();
    case "always_off": return new AlwaysOffSampler();
    case "traceidratio": return new TraceIdRatioBasedSampler(ratio);
    case "parentbased_always_on": return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case "parentbased_always_off": return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "parentbased_traceidratio": return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
  }
}

/** The collector's URL for the log, without credentials or query. */
function redactedEndpoint(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname}`;
}
