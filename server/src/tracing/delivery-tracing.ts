// Spans of delivery: one span per attempt with, inside it, the CLIENT span of its HTTP request,
// whose context goes out as the webhook's `traceparent` (with the message's `tracestate`) so that
// the receiver can join the trace.
//
// The attempt continues the message's stored context (its ingest span): a child of it while the
// message is younger than MAX_PARENT_AGE_MS; past that (late retries, a manual retry or recovery
// days later) it starts a new trace linked to the stored context, since a trace that spans days is
// one no trace view shows well. With tracing off, the stored context (the sender's own) is sent
// unchanged, and nothing else is done.
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Link, type Span, type Tracer } from "@opentelemetry/api";
import {
  ATTR_ERROR_TYPE, ATTR_HTTP_REQUEST_METHOD, ATTR_HTTP_RESPONSE_STATUS_CODE, ATTR_SERVER_ADDRESS, ATTR_SERVER_PORT, ATTR_URL_FULL,
  ATTR_URL_SCHEME,
} from "@opentelemetry/semantic-conventions";
import {
  KAPSEL_ATTEMPT, KAPSEL_DECISION, KAPSEL_ENDPOINT_ID, KAPSEL_EVENT_ID, KAPSEL_EVENT_TYPE, KAPSEL_MESSAGE_ID, KAPSEL_OUTCOME,
  KAPSEL_PROBE, KAPSEL_TENANT_ID,
} from "./attributes.ts";
import { redactedUrl } from "./redacted-url.ts";
import { carriedOf, parentContext, remoteSpanContext } from "./span-context.ts";
import { validTraceparent, type CarriedContext } from "./trace-context.ts";

/** Older than this, a message's deliveries start their own traces (linked to it). */
export const MAX_PARENT_AGE_MS = 60 * 60 * 1000;

/** What an attempt's spans are made of (a claimed job's columns). */
export interface TracedJob {
  event_id: string;
  endpoint_id: string;
  tenant_id: string;
  message_id: string;
  event_type: string;
  attempt: number;
  probe: boolean;
  url: string;
  received_at: Date;
  traceparent: string | null;
  tracestate: string | null;
}

/** How an attempt ended, as far as its spans tell it. */
export interface TracedResult {
  outcome: string;
  statusCode: number | undefined;
  error: string;
  refusedLocally: string | undefined;
}

export interface AttemptTrace {
  /** Headers for the webhook request: traceparent (and tracestate), or none. */
  readonly headers: Readonly<Record<string, string>>;
  /** The attempt span's traceparent, stored with the attempt (the sequencer links to it). */
  readonly traceparent: string | undefined;
  end(result: TracedResult, decision: string): void;
}

const NOTHING: AttemptTrace = Object.freeze({ headers: Object.freeze({}), traceparent: undefined, end: () => {} });

class AttemptSpans implements AttemptTrace {
  readonly headers: Readonly<Record<string, string>>;
  readonly traceparent: string | undefined;
  readonly #attempt: Span;
  readonly #request: Span;

  constructor(attempt: Span, request: Span, tracestate: string | undefined) {
    this.#attempt = attempt;
    this.#request = request;
    const sent = carriedOf(request.spanContext());
    this.headers = tracestate === undefined ? { traceparent: sent.traceparent } : { traceparent: sent.traceparent, tracestate };
    this.traceparent = carriedOf(attempt.spanContext()).traceparent;
  }

  end(result: TracedResult, decision: string): void {
    const request = this.#request;
    const failed = result.outcome !== "delivered";
    if (result.statusCode !== undefined) request.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, result.statusCode);
    if (failed) {
      // error.type: the status code when there was an answer, else what went wrong (low
      // cardinality: the outcome, never the error text, which can quote the destination).
      const errorType = result.statusCode !== undefined ? String(result.statusCode) : result.refusedLocally !== undefined ? `refused_${result.refusedLocally}` : result.outcome;
      request.setAttribute(ATTR_ERROR_TYPE, errorType);
      request.setStatus({ code: SpanStatusCode.ERROR, message: errorType });
      this.#attempt.setAttribute(ATTR_ERROR_TYPE, errorType);
      this.#attempt.setStatus({ code: SpanStatusCode.ERROR, message: result.outcome });
    }
    request.end();
    this.#attempt.setAttribute(KAPSEL_OUTCOME, result.outcome);
    this.#attempt.setAttribute(KAPSEL_DECISION, decision);
    if (result.statusCode !== undefined) this.#attempt.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, result.statusCode);
    this.#attempt.end();
  }
}

export class DeliveryTracing {
  readonly #tracer: Tracer | undefined;

  constructor(tracer: Tracer | undefined) {
    this.#tracer = tracer;
  }

  /** Starts an attempt's spans (tracing on), or only carries the stored context (off). */
  attempt(job: TracedJob, nowMs: number): AttemptTrace {
    const tracer = this.#tracer;
    if (!tracer) {
      if (job.traceparent === null) return NOTHING;
      return job.tracestate === null
        ? { headers: { traceparent: job.traceparent }, traceparent: undefined, end: NOTHING.end }
        : { headers: { traceparent: job.traceparent, tracestate: job.tracestate }, traceparent: undefined, end: NOTHING.end };
    }
    // The column's constraint guarantees the length; the rest is checked here once more.
    const stored: CarriedContext | undefined = validTraceparent(job.traceparent) === undefined
      ? undefined
      : { traceparent: job.traceparent!, tracestate: job.tracestate ?? undefined };
    const recent = nowMs - job.received_at.getTime() <= MAX_PARENT_AGE_MS;
    const parent = stored && recent ? parentContext(stored) : ROOT_CONTEXT;
    const links: Link[] = stored && !recent ? [{ context: remoteSpanContext(stored) }] : [];
    const attributes: Attributes = {
      [KAPSEL_TENANT_ID]: job.tenant_id,
      [KAPSEL_ENDPOINT_ID]: job.endpoint_id,
      [KAPSEL_EVENT_ID]: job.event_id,
      [KAPSEL_MESSAGE_ID]: job.message_id,
      [KAPSEL_EVENT_TYPE]: job.event_type,
      [KAPSEL_ATTEMPT]: job.attempt,
      [KAPSEL_PROBE]: job.probe,
    };
    const attempt = tracer.startSpan("kapsel.delivery.attempt", { kind: SpanKind.INTERNAL, attributes, links }, parent);
    const request = tracer.startSpan("POST", { kind: SpanKind.CLIENT, attributes: clientAttributes(job.url) }, trace.setSpan(ROOT_CONTEXT, attempt));
    return new AttemptSpans(attempt, request, stored?.tracestate);
  }
}

/** The HTTP client span's attributes: method, the redacted URL, where it goes. */
function clientAttributes(url: string): Attributes {
  const attributes: Attributes = { [ATTR_HTTP_REQUEST_METHOD]: "POST" };
  const full = redactedUrl(url);
  if (full === undefined) return attributes;
  attributes[ATTR_URL_FULL] = full;
  const u = new URL(url);
  attributes[ATTR_URL_SCHEME] = u.protocol.slice(0, -1);
  attributes[ATTR_SERVER_ADDRESS] = u.hostname.replace(/^\[|\]$/g, "");
  attributes[ATTR_SERVER_PORT] = u.port !== "" ? Number(u.port) : u.protocol === "https:" ? 443 : 80;
  return attributes;
}
