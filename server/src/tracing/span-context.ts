// Between the API's span contexts and the traceparent strings that Kapsel stores and sends.
import { createTraceState, ROOT_CONTEXT, trace, type Context, type SpanContext } from "@opentelemetry/api";
import { formatTraceparent, traceparentParts, type CarriedContext } from "./trace-context.ts";

/** A stored or received context as the remote parent of a span. */
export function remoteSpanContext(carried: CarriedContext): SpanContext {
  const { traceId, spanId, flags } = traceparentParts(carried.traceparent);
  return { traceId, spanId, traceFlags: flags, isRemote: true, traceState: carried.tracestate === undefined ? undefined : createTraceState(carried.tracestate) };
}

/** A context whose active span is the carried one (for starting a child of it). */
export function parentContext(carried: CarriedContext): Context {
  return trace.setSpanContext(ROOT_CONTEXT, remoteSpanContext(carried));
}

/** What a span's children elsewhere continue from: its traceparent, and its tracestate. */
export function carriedOf(span: SpanContext): CarriedContext {
  const tracestate = span.traceState?.serialize();
  return { traceparent: formatTraceparent(span.traceId, span.spanId, span.traceFlags), tracestate: tracestate === "" ? undefined : tracestate };
}
