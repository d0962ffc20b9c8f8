// Spans of ingest: one SERVER span per request (the gateway's `POST /ingest/...` routes and the
// IngestService RPCs), continuing the caller's W3C trace when it sent a valid traceparent (HTTP
// header, or request header / gRPC metadata); and one span per group-commit write — the child of
// its one message's ingest span, or, for a batch of several, a root span linked to each of them.
//
// What a message stores (CarriedContext) is the ingest span's own context, so that every delivery
// attempt of it — one per event when it fans out — is a child of the request that brought it.
// With tracing off nothing is started: a valid incoming traceparent is still kept verbatim, so
// that deliveries carry the sender's trace on to the receiver.
import type { IncomingHttpHeaders } from "node:http";
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, type Attributes, type Link, type Span, type Tracer } from "@opentelemetry/api";
import {
  ATTR_DB_OPERATION_NAME, ATTR_DB_SYSTEM_NAME, ATTR_ERROR_TYPE, ATTR_HTTP_REQUEST_METHOD, ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE, ATTR_NETWORK_PROTOCOL_VERSION, ATTR_URL_SCHEME,
} from "@opentelemetry/semantic-conventions";
import type { KapselError } from "../errors.ts";
import { isUuid } from "../uuid.ts";
import {
  KAPSEL_BATCH_SIZE, KAPSEL_DUPLICATE, KAPSEL_ENDPOINT_ID, KAPSEL_ERROR_CODE, KAPSEL_EVENT_COUNT, KAPSEL_EVENT_ID, KAPSEL_EVENT_TYPE,
  KAPSEL_MESSAGE_ID, KAPSEL_SOURCE_ID, KAPSEL_TENANT_ID, RPC_METHOD, RPC_SERVICE, RPC_SYSTEM,
} from "./attributes.ts";
import { carriedOf, parentContext, remoteSpanContext } from "./span-context.ts";
import { carriedContext, type CarriedContext } from "./trace-context.ts";

/** What a group commit needs of a message to trace it. */
export interface TracedMessage {
  id: string;
  tenantId: string;
  eventType: string;
  events: readonly { id: string }[];
  trace?: CarriedContext | undefined;
}

/** An ingest answer, as far as a span tells it. */
export interface AcceptedIds {
  messageId: string;
  eventIds: readonly string[];
  duplicate: boolean;
}

/** One ingest request: the context its messages carry, and its span when tracing is on. */
export class IngestTrace {
  readonly carried: CarriedContext | undefined;
  readonly #span: Span | undefined;

  constructor(carried: CarriedContext | undefined, span: Span | undefined) {
    this.carried = carried;
    this.#span = span;
  }

  /** The message this request stored (a single-item request). */
  accepted(a: AcceptedIds): void {
    if (!this.#span) return;
    this.#span.setAttribute(KAPSEL_MESSAGE_ID, a.messageId);
    this.#span.setAttribute(KAPSEL_EVENT_COUNT, a.eventIds.length);
    if (a.eventIds.length === 1) this.#span.setAttribute(KAPSEL_EVENT_ID, a.eventIds[0]!);
    this.#span.setAttribute(KAPSEL_DUPLICATE, a.duplicate);
  }

  /** Ends the span; `error` when the request was refused. Server faults (5xx, E9xxx) are errors;
   * a caller's mistake is not (the semantic conventions for server spans). */
  end(error: KapselError | string | undefined, statusCode?: number): void {
    const span = this.#span;
    if (!span) return;
    if (statusCode !== undefined) span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, statusCode);
    if (error !== undefined) {
      const code = typeof error === "string" ? error : error.code;
      span.setAttribute(ATTR_ERROR_TYPE, code);
      span.setAttribute(KAPSEL_ERROR_CODE, code);
      if ((statusCode !== undefined && statusCode >= 500) || code.startsWith("E9") || code === "internal") {
        span.setStatus({ code: SpanStatusCode.ERROR, message: code });
      }
    }
    span.end();
  }
}

export class IngestTracing {
  readonly #tracer: Tracer | undefined;

  constructor(tracer: Tracer | undefined) {
    this.#tracer = tracer;
  }

  /** A sender's request to a gateway route (`route` as in http.route). Undefined when there is
   * nothing to trace or carry: tracing off and no valid traceparent. */
  gateway(route: string, headers: IncomingHttpHeaders, httpVersion: string, target: { endpointId: string } | { sourceId: string }): IngestTrace | undefined {
    const incoming = headers.traceparent === undefined ? undefined : carriedContext(headers.traceparent, headers.tracestate);
    if (!this.#tracer) return incoming && new IngestTrace(incoming, undefined);
    const attributes: Attributes = {
      [ATTR_HTTP_REQUEST_METHOD]: "POST",
      [ATTR_HTTP_ROUTE]: route,
      [ATTR_URL_SCHEME]: "http",
      [ATTR_NETWORK_PROTOCOL_VERSION]: httpVersion,
    };
    // The id in the path is the caller's text: kept only when it is an id at all.
    if ("endpointId" in target) {
      if (isUuid(target.endpointId)) attributes[KAPSEL_ENDPOINT_ID] = target.endpointId.toLowerCase();
    } else if (isUuid(target.sourceId)) attributes[KAPSEL_SOURCE_ID] = target.sourceId.toLowerCase();
    return this.#start(`POST ${route}`, attributes, incoming);
  }

  /** An IngestService call; `headers` are its request headers (gRPC metadata included). */
  rpc(service: string, method: string, headers: Headers, tenantId: string | undefined, items: number): IngestTrace | undefined {
    const traceparent = headers.get("traceparent");
    const incoming = traceparent === null ? undefined : carriedContext(traceparent, headers.get("tracestate") ?? undefined);
    if (!this.#tracer) return incoming && new IngestTrace(incoming, undefined);
    const contentType = headers.get("content-type") ?? "";
    const attributes: Attributes = {
      [RPC_SYSTEM]: contentType.startsWith("application/grpc") ? "grpc" : "connect_rpc",
      [RPC_SERVICE]: service,
      [RPC_METHOD]: method,
      [KAPSEL_BATCH_SIZE]: items,
    };
    if (tenantId !== undefined) attributes[KAPSEL_TENANT_ID] = tenantId;
    return this.#start(`${service}/${method}`, attributes, incoming);
  }

  #start(name: string, attributes: Attributes, incoming: CarriedContext | undefined): IngestTrace {
    const span = this.#tracer!.startSpan(name, { kind: SpanKind.SERVER, attributes }, incoming ? parentContext(incoming) : ROOT_CONTEXT);
    // The sender's tracestate goes on with the trace (we add no member of our own).
    const own = carriedOf(span.spanContext());
    return new IngestTrace({ traceparent: own.traceparent, tracestate: incoming?.tracestate }, span);
  }

  /** Runs one group-commit write inside its span. With tracing off, just runs it. */
  async groupCommit<R>(batch: readonly TracedMessage[], write: () => Promise<R[]>, duplicate: (r: R) => boolean): Promise<R[]> {
    const tracer = this.#tracer;
    if (!tracer) return write();
    const attributes: Attributes = {
      [ATTR_DB_SYSTEM_NAME]: "postgresql",
      [ATTR_DB_OPERATION_NAME]: "INSERT",
      [KAPSEL_BATCH_SIZE]: batch.length,
      [KAPSEL_EVENT_COUNT]: batch.reduce((n, m) => n + m.events.length, 0),
    };
    const only = batch.length === 1 ? batch[0]! : undefined;
    let parent = ROOT_CONTEXT;
    const links: Link[] = [];
    if (only) {
      attributes[KAPSEL_MESSAGE_ID] = only.id;
      attributes[KAPSEL_TENANT_ID] = only.tenantId;
      attributes[KAPSEL_EVENT_TYPE] = only.eventType;
      if (only.trace) parent = parentContext(only.trace);
    } else {
      for (const m of batch) {
        if (m.trace) links.push({ context: remoteSpanContext(m.trace), attributes: { [KAPSEL_MESSAGE_ID]: m.id, [KAPSEL_TENANT_ID]: m.tenantId } });
      }
    }
    const span = tracer.startSpan("kapsel.ingest.group_commit", { kind: SpanKind.INTERNAL, attributes, links }, parent);
    try {
      const results = await write();
      let duplicates = 0;
      for (const r of results) if (duplicate(r)) duplicates++;
      span.setAttribute("kapsel.duplicates", duplicates);
      return results;
    } catch (err) {
      // The name only: a database error's message can quote the values of the row.
      span.setAttribute(ATTR_ERROR_TYPE, (err as Error).name ?? "Error");
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).name });
      throw err;
    } finally {
      span.end();
    }
  }
}

