// What Kapsel keeps of a caller's W3C trace context, how it shows delivery URLs in spans, and how
// it reads the OTEL_* variables: pure functions, no server.
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/config.ts";
import { redactedUrl } from "../src/tracing/redacted-url.ts";
import { carriedContext, validTraceparent, validTracestate } from "../src/tracing/trace-context.ts";

const VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

describe("an incoming traceparent", () => {
  it("is kept when it is one well-formed version-00 value", () => {
    expect(validTraceparent(VALID)).toBe(VALID);
    expect(validTraceparent(VALID.replace(/-01$/, "-00"))).toBe(VALID.replace(/-01$/, "-00"));
  });

  it.each([
    ["upper-case hex", VALID.toUpperCase()],
    ["an all-zero trace id", `00-${"0".repeat(32)}-00f067aa0ba902b7-01`],
    ["an all-zero parent id", `00-4bf92f3577b34da6a3ce929d0e0e4736-${"0".repeat(16)}-01`],
    ["another version", VALID.replace(/^00/, "01")],
    ["version ff", VALID.replace(/^00/, "ff")],
    ["extra fields", `${VALID}-00`],
    ["two values joined (two header lines)", `${VALID}, ${VALID}`],
    ["a huge value", "0".repeat(100_000)],
    ["no value", undefined],
    ["an array", [VALID, VALID]],
  ])("is ignored with %s", (_name, value) => {
    expect(validTraceparent(value)).toBeUndefined();
    expect(carriedContext(value, "a=b")).toBeUndefined();
  });
});

describe("an incoming tracestate", () => {
  it("is kept, without empty members, when well formed and at most 512 bytes", () => {
    expect(validTracestate("congo=t61rcWkgMzE, rojo=00f067aa0ba902b7")).toBe("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
    expect(validTracestate("tenant@vendor=x,,")).toBe("tenant@vendor=x");
    expect(carriedContext(VALID, "a=b")).toEqual({ traceparent: VALID, tracestate: "a=b" });
  });

  it.each([
    ["past 512 bytes", `k=${"v".repeat(511)}`],
    ["more than 32 members", Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(",")],
    ["a member without a value", "a=b,c"],
    ["an upper-case key", "A=b"],
    ["a repeated key", "a=1,a=2"],
    ["a control character", "a=b\u0001"],
    ["nothing but commas", ",,,"],
  ])("is dropped whole with %s, the traceparent kept", (_name, value) => {
    expect(validTracestate(value)).toBeUndefined();
    expect(carriedContext(VALID, value)).toEqual({ traceparent: VALID, tracestate: undefined });
  });
});

describe("a delivery URL in a span", () => {
  it("shows no credentials and no query values", () => {
    expect(redactedUrl("https://user:pw@hooks.example.com:8443/in?token=abc&sig=def#frag")).toBe("https://REDACTED:REDACTED@hooks.example.com:8443/in?token=REDACTED&sig=REDACTED");
    expect(redactedUrl("https://hooks.example.com/in")).toBe("https://hooks.example.com/in");
  });

  it("hides a query parameter name that could be a token itself", () => {
    expect(redactedUrl("https://h.example/in?abc123secret&mode=x")).toBe("https://h.example/in?REDACTED&mode=REDACTED");
  });
});

describe("the OTEL_* configuration", () => {
  const tracing = (env: Record<string, string>) => loadConfig(env).tracing;

  it("is off without an endpoint, and when disabled or with exporter none", () => {
    expect(tracing({}).exporter).toBeUndefined();
    expect(tracing({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_SDK_DISABLED: "true" }).exporter).toBeUndefined();
    expect(tracing({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_TRACES_EXPORTER: "none" }).exporter).toBeUndefined();
  });

  it("sends traces to <endpoint>/v1/traces, or to the traces endpoint as given", () => {
    expect(tracing({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318/" }).exporter?.url).toBe("http://c:4318/v1/traces");
    expect(tracing({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "https://t.example/otlp" }).exporter?.url).toBe("https://t.example/otlp");
  });

  it("reads headers, service name, sampler and batch settings", () => {
    const t = tracing({
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318",
      OTEL_EXPORTER_OTLP_HEADERS: "api-key=a%20b,x=1",
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: "x=2",
      OTEL_SERVICE_NAME: "kapsel-eu",
      OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=prod",
      OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
      OTEL_TRACES_SAMPLER_ARG: "0.25",
      OTEL_BSP_SCHEDULE_DELAY: "200",
    });
    expect(t.exporter?.headers).toEqual({ "api-key": "a b", x: "2" });
    expect(t).toMatchObject({ serviceName: "kapsel-eu", resourceAttributes: { "deployment.environment.name": "prod" }, sampler: { name: "parentbased_traceidratio", ratio: 0.25 } });
    expect(t.batch.scheduleDelayMs).toBe(200);
    expect(tracing({}).serviceName).toBe("kapsel");
  });

  it.each([
    ["OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"],
    ["OTEL_TRACES_EXPORTER", "zipkin"],
    ["OTEL_TRACES_SAMPLER", "sometimes"],
    ["OTEL_TRACES_SAMPLER_ARG", "2"],
    ["OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://c"],
    ["OTEL_EXPORTER_OTLP_HEADERS", "novalue"],
    ["OTEL_SDK_DISABLED", "maybe"],
    ["OTEL_BSP_SCHEDULE_DELAY", "soon"],
  ])("%s=%j stops the process, naming the variable", (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`^${name}\\b`));
  });
});
