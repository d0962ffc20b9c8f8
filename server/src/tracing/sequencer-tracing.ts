// The sequencer's span: one per batch that appends attempts to the log, a root span (a batch
// mixes attempts of many traces) linked to the span of each attempt it sequences — read from the
// attempt rows, so the links hold whichever process made the attempts. Batches that append
// nothing are not traced.
import { SpanKind, SpanStatusCode, type Link, type Tracer } from "@opentelemetry/api";
import { ATTR_ERROR_TYPE } from "@opentelemetry/semantic-conventions";
import { KAPSEL_ATTEMPT_ID, KAPSEL_BATCH_SIZE, KAPSEL_TREE_SIZE } from "./attributes.ts";
import { remoteSpanContext } from "./span-context.ts";
import { validTraceparent } from "./trace-context.ts";
import { MAX_LINKS } from "./tracing.ts";

export interface SequencedAttempt {
  id: string;
  traceparent: string | null;
}

export class SequencerTracing {
  readonly #tracer: Tracer | undefined;

  constructor(tracer: Tracer | undefined) {
    this.#tracer = tracer;
  }

  get enabled(): boolean {
    return this.#tracer !== undefined;
  }

  /** Records a batch that ran from `startedMs` until now: the tree size it published, or the
   * error that rolled it back. */
  batch(startedMs: number, attempts: readonly SequencedAttempt[], outcome: { treeSize: number } | { error: unknown }): void {
    const tracer = this.#tracer;
    if (!tracer || attempts.length === 0) return;
    const links: Link[] = [];
    for (const a of attempts) {
      if (links.length >= MAX_LINKS) break;
      if (a.traceparent !== null && validTraceparent(a.traceparent) !== undefined) {
        links.push({ context: remoteSpanContext({ traceparent: a.traceparent, tracestate: undefined }), attributes: { [KAPSEL_ATTEMPT_ID]: a.id } });
      }
    }
    const span = tracer.startSpan("kapsel.log.sequence", { kind: SpanKind.INTERNAL, startTime: startedMs, links, attributes: { [KAPSEL_BATCH_SIZE]: attempts.length } });
    if ("treeSize" in outcome) span.setAttribute(KAPSEL_TREE_SIZE, outcome.treeSize);
    else {
      const name = outcome.error instanceof Error ? outcome.error.name : "Error";
      span.setAttribute(ATTR_ERROR_TYPE, name);
      span.setStatus({ code: SpanStatusCode.ERROR, message: name });
    }
    span.end();
  }
}
