// The OpenTelemetry environment variables Kapsel honours (the SDK's standard names), parsed into
// one value by config.ts, which alone reads the environment. Tracing is off unless an OTLP
// endpoint is given: nothing is exported, no SDK is started, and the API's no-op tracer is used.
// Only OTLP over HTTP/protobuf is built in; another protocol or exporter is refused at start
// rather than silently ignored.

export type SamplerName =
  | "always_on" | "always_off" | "traceidratio"
  | "parentbased_always_on" | "parentbased_always_off" | "parentbased_traceidratio";

const SAMPLERS: readonly SamplerName[] = [
  "always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio",
];

export interface TracingConfig {
  /** Where spans go (OTLP/HTTP protobuf); undefined → tracing off. */
  exporter: { url: string; headers: Record<string, string>; timeoutMs: number } | undefined;
  serviceName: string;
  resourceAttributes: Record<string, string>;
  sampler: { name: SamplerName; ratio: number };
  /** The batch span processor: how long spans wait, how many are kept, how many go per request. */
  batch: { scheduleDelayMs: number; maxQueueSize: number; maxExportBatchSize: number; exportTimeoutMs: number };
}

/** The variables, for `kapsel --help` (config.ts lists them with its own). */
export const TRACING_ENVIRONMENT = [
  { name: "OTEL_EXPORTER_OTLP_ENDPOINT", help: "OTLP/HTTP base URL; traces go to <URL>/v1/traces. Unset (and no traces endpoint) → tracing off" },
  { name: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", help: "OTLP/HTTP URL for traces, used as is (overrides OTEL_EXPORTER_OTLP_ENDPOINT)" },
  { name: "OTEL_EXPORTER_OTLP_PROTOCOL", help: "only http/protobuf is supported", default: "http/protobuf" },
  { name: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", help: "only http/protobuf is supported" },
  { name: "OTEL_EXPORTER_OTLP_HEADERS", help: "headers for the OTLP requests: comma-separated key=value (values URL-encoded)" },
  { name: "OTEL_EXPORTER_OTLP_TRACES_HEADERS", help: "headers for trace exports only (added to OTEL_EXPORTER_OTLP_HEADERS)" },
  { name: "OTEL_EXPORTER_OTLP_TIMEOUT", help: "ms one export may take", default: "10000" },
  { name: "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", help: "ms one trace export may take (overrides OTEL_EXPORTER_OTLP_TIMEOUT)" },
  { name: "OTEL_TRACES_EXPORTER", help: "otlp or none (none → tracing off)", default: "otlp" },
  { name: "OTEL_SDK_DISABLED", help: "true → tracing off whatever else is set", default: "false" },
  { name: "OTEL_SERVICE_NAME", help: "service.name of the spans", default: "kapsel" },
  { name: "OTEL_RESOURCE_ATTRIBUTES", help: "more resource attributes: comma-separated key=value (values URL-encoded)" },
  { name: "OTEL_TRACES_SAMPLER", help: "always_on|always_off|traceidratio|parentbased_always_on|parentbased_always_off|parentbased_traceidratio", default: "parentbased_always_on" },
  { name: "OTEL_TRACES_SAMPLER_ARG", help: "the ratio (0..1) for the traceidratio samplers", default: "1" },
  { name: "OTEL_BSP_SCHEDULE_DELAY", help: "ms between two exports of finished spans", default: "5000" },
  { name: "OTEL_BSP_MAX_QUEUE_SIZE", help: "finished spans kept waiting for export; beyond it spans are dropped", default: "2048" },
  { name: "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", help: "spans per export request", default: "512" },
  { name: "OTEL_BSP_EXPORT_TIMEOUT", help: "ms one batch export may take", default: "30000" },
] as const;

export class TracingConfigError extends Error {}

type Raw = (name: string) => string | undefined;

/** Parses the OTEL_* variables (read through `raw`, defaults applied); throws TracingConfigError
 * naming the first bad variable. */
export function parseTracingConfig(raw: Raw): TracingConfig {
  const int = (name: string, min: number, max: number): number => {
    const value = raw(name) ?? "";
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) throw new TracingConfigError(`${name}=${JSON.stringify(value)}: expected an integer from ${min} to ${max}`);
    return n;
  };
  const disabled = (raw("OTEL_SDK_DISABLED") ?? "false").toLowerCase();
  if (disabled !== "true" && disabled !== "false") throw new TracingConfigError(`OTEL_SDK_DISABLED=${JSON.stringify(disabled)}: expected true or false`);
  const exporterName = (raw("OTEL_TRACES_EXPORTER") ?? "otlp").toLowerCase();
  if (exporterName !== "otlp" && exporterName !== "none") throw new TracingConfigError(`OTEL_TRACES_EXPORTER=${JSON.stringify(exporterName)}: only otlp or none`);
  for (const name of ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"]) {
    const protocol = raw(name);
    if (protocol !== undefined && protocol !== "http/protobuf") throw new TracingConfigError(`${name}=${JSON.stringify(protocol)}: only http/protobuf is supported`);
  }
  const sampler = (raw("OTEL_TRACES_SAMPLER") ?? "parentbased_always_on").toLowerCase() as SamplerName;
  if (!SAMPLERS.includes(sampler)) throw new TracingConfigError(`OTEL_TRACES_SAMPLER=${JSON.stringify(sampler)}: expected one of ${SAMPLERS.join(", ")}`);
  const ratioText = raw("OTEL_TRACES_SAMPLER_ARG") ?? "1";
  const ratio = Number(ratioText);
  if (ratioText === "" || !Number.isFinite(ratio) || ratio < 0 || ratio > 1) throw new TracingConfigError(`OTEL_TRACES_SAMPLER_ARG=${JSON.stringify(ratioText)}: expected a number from 0 to 1`);

  const url = tracesUrl(raw("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), raw("OTEL_EXPORTER_OTLP_ENDPOINT"));
  const timeoutMs = raw("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") !== undefined
    ? int("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", 1, 600_000)
    : int("OTEL_EXPORTER_OTLP_TIMEOUT", 1, 600_000);
  const headers = { ...keyValues("OTEL_EXPORTER_OTLP_HEADERS", raw), ...keyValues("OTEL_EXPORTER_OTLP_TRACES_HEADERS", raw) };
  const on = disabled === "false" && exporterName === "otlp" && url !== undefined;
  return {
    exporter: on ? { url, headers, timeoutMs } : undefined,
    serviceName: raw("OTEL_SERVICE_NAME") ?? "kapsel",
    resourceAttributes: keyValues("OTEL_RESOURCE_ATTRIBUTES", raw),
    sampler: { name: sampler, ratio },
    batch: {
      scheduleDelayMs: int("OTEL_BSP_SCHEDULE_DELAY", 1, 3_600_000),
      maxQueueSize: int("OTEL_BSP_MAX_QUEUE_SIZE", 1, 1_000_000),
      maxExportBatchSize: int("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 1, 1_000_000),
      exportTimeoutMs: int("OTEL_BSP_EXPORT_TIMEOUT", 1, 3_600_000),
    },
  };

  function tracesUrl(traces: string | undefined, base: string | undefined): string | undefined {
    const [name, value] = traces !== undefined ? ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces] : ["OTEL_EXPORTER_OTLP_ENDPOINT", base];
    if (value === undefined) return undefined;
    let parsed: URL;
    try {
      parsed = new URL(value);
    } catch {
      throw new TracingConfigError(`${name}: expected an http:// or https:// URL`);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new TracingConfigError(`${name}: expected an http:// or https:// URL`);
    // The base endpoint names the collector; the signal's path is appended (OTLP exporter spec).
    return traces !== undefined ? value : `${value.replace(/\/+$/, "")}/v1/traces`;
  }
}

/** `key=value,key2=value2` with URL-encoded values (the W3C Baggage-like OTEL list format). */
function keyValues(name: string, raw: Raw): Record<string, string> {
  const value = raw(name);
  const out: Record<string, string> = {};
  if (value === undefined) return out;
  for (const part of value.split(",")) {
    if (part.trim() === "") continue;
    const eq = part.indexOf("=");
    const key = eq > 0 ? part.slice(0, eq).trim() : "";
    if (key === "") throw new TracingConfigError(`${name}: expected comma-separated key=value pairs`);
    try {
      out[key] = decodeURIComponent(part.slice(eq + 1).trim());
    } catch {
      throw new TracingConfigError(`${name}: the value of ${key} is not URL-encoded text`);
    }
  }
  return out;
}
