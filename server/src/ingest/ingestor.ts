// The one way in for messages, shared by the HTTP gateway and the RPCs: accept() owns the order of
// the steps, and the protocol handlers only translate to and from it.
//
//   resolve each target: an endpoint (E1006 malformed id, E1003 unknown or another tenant's,
//   E1007 disabled), a source (E1006, E2005), or fan-out within the caller's tenant
//   → a sender's declared size (E1001) → its recent failed signatures (E1005, before its body is
//   read) → its body, read under the cap (E1001) → its signature (E1002, counted against the
//   sender's address, never against the tenant)
//   → the tenant's rate (E1005, for the whole call)
//   → each item's fields and event type (E1001, E1006) → its events: the one endpoint, or every
//   enabled endpoint of the tenant subscribed to the type and channels
//   → group commit (E9002 at once when its queue is full: nothing accepted) → answered once durable.
//
// Item errors answer that item only (a batch goes on); call errors (rate limit, database outage)
// are thrown. Nothing is acknowledged before it is durable.
import type { IncomingHttpHeaders } from "node:http";
import { KapselError, toKapselError } from "../errors.ts";
import { BodyTooLarge } from "../http/body-reader.ts";
import { headerProblem, isReservedHeader } from "../http/header-names.ts";
import type { CarriedContext } from "../tracing/trace-context.ts";
import { isUuid, uuidv7 } from "../uuid.ts";
import type { EndpointCache, IngestEndpoint } from "./endpoint-cache.ts";
import type { FailureLimiter } from "./failure-limiter.ts";
import { eventTypeFrom, wellKnownEventType } from "./event-type-origin.ts";
import { QueueFull, type GroupCommit } from "./group-commit.ts";
import { TENANT_SCOPE, type Accepted, type NewMessage } from "./message-insert.ts";
import type { RateLimiter } from "./rate-limiter.ts";
import type { IngestSource, SourceCache } from "./source-cache.ts";
import { cannotCheck, senderDeliveryId, verifySource, type SourceConfig } from "./source-verification.ts";
import type { SubscriberCache } from "./subscriber-cache.ts";
import { checkEventType, checkMessageChannels } from "./subscriptions.ts";

/** A webhook sender's request body, read only once the target is known and the rate allows. */
export interface InboundBody {
  /** Content-Length as the sender declared it, if any. */
  declaredBytes: number | undefined;
  /** Reads the body, rejecting with BodyTooLarge past `cap` bytes. */
  read(cap: number): Promise<Buffer>;
  /** The request headers: the signature, the sender's delivery id, its event type, kept headers. */
  headers: IncomingHttpHeaders;
  /** The sender's network address, for limiting its failed signatures. */
  clientAddress: string | undefined;
}

/** Where a message goes: one endpoint (its id exactly as the caller gave it), the caller's
 * subscribed endpoints, or a source's tenant's subscribed endpoints (a sender's request only). */
export type IngestTarget =
  | { endpointId: string }
  | { fanOut: true }
  | { sourceId: string };

export interface IngestItem {
  target: IngestTarget;
  /** The payload (RPCs), or a sender's request to read it from (gateway). */
  body: Buffer | InboundBody;
  contentType: string;
  idempotencyKey: string | undefined;
  /** Headers the caller asks to forward (RPCs); a sender's are taken from its request. */
  headers: Record<string, string>;
  /** The caller's event type (RPCs); a sender's is found in its request. */
  eventType: string;
  /** The caller's channels (RPCs); a source's are its own. */
  channels: readonly string[];
}

export interface IngestCall {
  /** The API key's tenant; its endpoints only. Undefined for a webhook sender, whom the endpoint
   * or source id and its signature authenticate. */
  tenantId: string | undefined;
  requestId: string;
  items: readonly IngestItem[];
  /** The trace context its messages carry on to their deliveries (tracing/ingest-tracing.ts). */
  trace?: CarriedContext | undefined;
}

export type ItemResult = Accepted | KapselError;

export interface IngestorDeps {
  endpoints: EndpointCache;
  sources: SourceCache;
  subscribers: SubscriberCache;
  limiter: RateLimiter;
  /** Failed source verifications, per target and per sender address. */
  failures: FailureLimiter;
  commit: GroupCommit<NewMessage, Accepted>;
}

export interface IngestorOptions {
  maxPayloadBytes: number;
  /** Calls (requests) being accepted at once, from their first byte to their answer; past it
   * E9002 at once. Bounds the wait of what is accepted, and the memory of bodies held. A batch is
   * one call: its size is bounded on its own, and the group commit's queue bounds its rows. */
  maxInFlight: number;
  /** Payload bytes that calls in flight may hold at once: a sender's declared Content-Length is
   * reserved when its call is admitted (so the refusal comes before the body is read), an
   * undeclared body counts once read, an RPC's payloads count as they came. Past it E9002 at once;
   * a call alone in flight is always admitted, so no payload the size limit allows is refused for
   * good. Bounds the memory of bodies held, which the count alone does not. */
  maxInFlightBytes: number;
  /** Header names kept from every sender (besides each endpoint's own list). */
  keptHeaders: readonly string[];
}

/** A target once resolved: whose it is, how its sender proves itself, and how its events are made. */
interface Resolved {
  tenantId: string;
  endpoint?: IngestEndpoint;
  source?: IngestSource;
}

/** An item's content once received (and, from a sender, verified). */
interface Received {
  payload: Buffer;
  contentType: string;
  headers: Record<string, string>;
  idempotencyKey: string | undefined;
  eventType: string;
  channels: readonly string[];
}

const KEY = /^[\x20-\x7e]{1,255}$/;
export const MAX_HEADER_BYTES = 16 * 1024;
/** Never kept from a sender, whatever the lists say: they were for us. */
const NEVER_KEPT = new Set(["authorization", "cookie"]);

/** E9002: the queue is full; nothing of the call was accepted. */
function overloaded(retryAfterMs: number): KapselError {
  return new KapselError("E9002", "overloaded: the ingest queue is full; nothing was accepted, retry after the hint", { retryAfterMs });
}
/** The refusal answered at the door, made once: under overload it is the most frequent answer, and
 * an Error's stack trace cost more than the rest of the refusal. */
const OVERLOADED = overloaded(1000);

function isInbound(body: Buffer | InboundBody): body is InboundBody {
  return !Buffer.isBuffer(body);
}

export class Ingestor {
  readonly #deps: IngestorDeps;
  readonly #keptHeaders: readonly string[];
  readonly #maxInFlight: number;
  readonly #maxInFlightBytes: number;
  #inFlight = 0;
  #inFlightBytes = 0;
  readonly maxPayloadBytes: number;

  constructor(deps: IngestorDeps, options: IngestorOptions) {
    this.#deps = deps;
    this.#keptHeaders = options.keptHeaders;
    this.#maxInFlight = options.maxInFlight;
    this.#maxInFlightBytes = options.maxInFlightBytes;
    this.maxPayloadBytes = options.maxPayloadBytes;
  }

  /** E9002 when a call arriving now, holding `bytes`, would be refused (too much being accepted,
   * or the database write falling behind), else undefined. Entry points ask before any work of
   * their own, so a refusal under overload costs as little as answering can. */
  overloaded(bytes = 0): KapselError | undefined {
    const full = this.#deps.commit.full || this.#inFlight >= this.#maxInFlight;
    // One call alone in flight always fits: no payload the size limit allows is refused for good.
    const tooMuch = this.#inFlight > 0 && this.#inFlightBytes + bytes > this.#maxInFlightBytes;
    return full || tooMuch ? OVERLOADED : undefined;
  }

  /** Accepts a call's items; resolves once every accepted item is durable, with one result per
   * item in order. Throws for what fails the whole call (E1005, E9001, E9002, a sender gone
   * mid-body). */
  async accept(call: IngestCall): Promise<ItemResult[]> {
    // Overloaded: say so before any work, a sender's body unread.
    let held = this.#reservedBytes(call);
    const refused = this.overloaded(held);
    if (refused) throw refused;
    this.#inFlight++;
    this.#inFlightBytes += held;
    const hold = (bytes: number) => {
      held += bytes;
      this.#inFlightBytes += bytes;
    };
    try {
      return await this.#accept(call, hold);
    } finally {
      this.#inFlight--;
      this.#inFlightBytes -= held;
    }
  }

  /** What a call holds from its admission: its RPC payloads, and its senders' declared bodies (a
   * declaration past the size limit reserves only the limit: it is refused E1001 unread). */
  #reservedBytes(call: IngestCall): number {
    let bytes = 0;
    for (const { body } of call.items) {
      if (!isInbound(body)) bytes += body.length;
      else if (body.declaredBytes !== undefined && Number.isFinite(body.declaredBytes)) bytes += Math.min(Math.max(0, body.declaredBytes), this.maxPayloadBytes);
    }
    return bytes;
  }

  /** `hold`: adds to what the call holds against the in-flight byte bound (an undeclared body,
   * once read). */
  async #accept(call: IngestCall, hold: (bytes: number) => void): Promise<ItemResult[]> {
    const results: (ItemResult | undefined)[] = new Array(call.items.length);
    // Item errors are answers; anything else (an outage) fails the call.
    const itemError = (i: number, err: unknown): void => {
      const known = toKapselError(err);
      if (!known || known.code === "E9001") throw err;
      results[i] = known;
    };

    const targets = await Promise.all(call.items.map(async (item, i) => {
      try {
        const resolved = await this.#resolve(item.target, call.tenantId);
        const declared = isInbound(item.body) ? item.body.declaredBytes : undefined;
        if (declared !== undefined && declared > this.maxPayloadBytes) {
          throw new KapselError("E1001", `payload is ${declared} bytes; the limit is ${this.maxPayloadBytes}`);
        }
        return resolved;
      } catch (err) {
        itemError(i, err);
        return undefined;
      }
    }));
    const tenantId = call.tenantId ?? targets.find((t) => t !== undefined)?.tenantId;
    if (tenantId === undefined) return results as ItemResult[];

    const received: (Received | undefined)[] = [];
    for (const [i, item] of call.items.entries()) {
      const target = targets[i];
      try {
        received.push(target ? await this.#receive(target, item, hold) : undefined);
      } catch (err) {
        itemError(i, err);
        received.push(undefined);
      }
    }
    // Only verified senders reach the tenant's budget. A batch takes one token per item, valid or
    // not: a caller cannot send unlimited bad items.
    if (received.every((r) => r === undefined) && call.tenantId === undefined) return results as ItemResult[];
    await this.#rateLimit(tenantId, call.items.length);

    const prepared: (NewMessage | undefined)[] = [];
    for (const [i, r] of received.entries()) {
      try {
        prepared.push(r ? await this.#prepare(targets[i]!, r, call) : undefined);
      } catch (err) {
        itemError(i, err);
        prepared.push(undefined);
      }
    }

    const messages = prepared.filter((m): m is NewMessage => m !== undefined);
    let submitted: Promise<Accepted>[];
    try {
      submitted = this.#deps.commit.submit(messages);
    } catch (err) {
      if (err instanceof QueueFull) throw overloaded(err.retryAfterMs);
      throw err;
    }
    const accepted = await Promise.all(submitted);
    let next = 0;
    for (const [i, m] of prepared.entries()) if (m) results[i] = accepted[next++];
    return results as ItemResult[];
  }

  async #resolve(target: IngestTarget, tenantId: string | undefined): Promise<Resolved> {
    if ("endpointId" in target) {
      if (!isUuid(target.endpointId)) throw new KapselError("E1006", "endpoint_id must be a UUID");
      const endpoint = await this.#deps.endpoints.get(target.endpointId.toLowerCase());
      if (!endpoint || (tenantId !== undefined && endpoint.tenantId !== tenantId)) throw new KapselError("E1003");
      if (!endpoint.enabled) throw new KapselError("E1007");
      return { tenantId: endpoint.tenantId, endpoint };
    }
    if ("sourceId" in target) {
      if (!isUuid(target.sourceId)) throw new KapselError("E1006", "source_id must be a UUID");
      const source = await this.#deps.sources.get(target.sourceId.toLowerCase());
      if (!source || (tenantId !== undefined && source.tenantId !== tenantId)) throw new KapselError("E2005");
      return { tenantId: source.tenantId, source };
    }
    if (tenantId === undefined) throw new KapselError("E1006", "fan-out needs an authenticated tenant");
    return { tenantId };
  }

  async #rateLimit(tenantId: string, n: number): Promise<void> {
    const waitMs = await this.#deps.limiter.take(tenantId, Math.max(1, n));
    if (waitMs > 0) throw new KapselError("E1005", `rate limit exceeded; retry in ${Math.ceil(waitMs / 1000)} s`, { retryAfterMs: waitMs });
  }

  /** An item's content: a sender's request read under the cap and verified by the endpoint's or
   * source's scheme (its idempotency key is the explicit header or else its own delivery id, so
   * its retries of one delivery are stored once; headers that say what the event is are kept), or
   * an RPC's fields checked. */
  async #receive(target: Resolved, item: IngestItem, hold: (bytes: number) => void): Promise<Received> {
    const { endpoint, source } = target;
    if (!isInbound(item.body)) {
      if (item.eventType !== "") checkEventType(item.eventType);
      else if (!endpoint) throw new KapselError("E1006", "event_type is required when no endpoint_id is given");
      return { payload: item.body, contentType: item.contentType, headers: item.headers, idempotencyKey: item.idempotencyKey, eventType: item.eventType, channels: checkMessageChannels(item.channels) };
    }
    const inbound = item.body;
    const targetId = endpoint?.id ?? source!.id;
    const blockedMs = this.#deps.failures.blockedFor(inbound.clientAddress, targetId);
    if (blockedMs > 0) throw new KapselError("E1005", "too many requests with a wrong signature; retry later", { retryAfterMs: blockedMs });
    const verification: SourceConfig = source?.verification ?? endpoint!.source;
    // Our side cannot check (a stored secret that does not open): refused before the body is read,
    // and not counted against the sender, whose signature may well be right.
    const unusable = cannotCheck(verification);
    if (unusable !== undefined) throw new KapselError("E1002", unusable);
    const payload = await this.#read(inbound);
    if (inbound.declaredBytes === undefined) hold(payload.length);
    const failure = verifySource(verification, inbound.headers, payload);
    if (failure !== undefined) {
      this.#deps.failures.failed(inbound.clientAddress, targetId);
      throw new KapselError("E1002", failure);
    }
    return {
      payload,
      contentType: item.contentType,
      headers: this.#keptFrom(inbound.headers, endpoint?.keptHeaders ?? []),
      idempotencyKey: item.idempotencyKey ?? senderDeliveryId(verification.scheme, inbound.headers),
      eventType: source ? eventTypeFrom(source.eventType, inbound.headers, payload) : wellKnownEventType(inbound.headers, payload),
      channels: source?.channels ?? [],
    };
  }

  async #prepare(target: Resolved, r: Received, call: IngestCall): Promise<NewMessage> {
    const { endpoint, source } = target;
    const endpointIds = endpoint ? [endpoint.id] : await this.#deps.subscribers.matching(target.tenantId, r.eventType, r.channels);
    return {
      id: uuidv7(),
      tenantId: target.tenantId,
      scopeId: endpoint?.id ?? source?.id ?? TENANT_SCOPE,
      eventType: r.eventType,
      channels: [...r.channels],
      payload: this.#checkPayload(r.payload),
      contentType: this.#checkContentType(r.contentType),
      headers: this.#checkHeaders(r.headers),
      idempotencyKey: this.#checkKey(r.idempotencyKey),
      sourceId: source?.id,
      requestId: call.requestId,
      trace: call.trace,
      events: endpointIds.map((endpointId) => ({ id: uuidv7(), endpointId })),
    };
  }

  async #read(inbound: InboundBody): Promise<Buffer> {
    try {
      return await inbound.read(this.maxPayloadBytes);
    } catch (err) {
      if (err instanceof BodyTooLarge) throw new KapselError("E1001", `payload exceeds the limit of ${this.maxPayloadBytes} bytes`);
      throw err;
    }
  }

  #keptFrom(headers: IncomingHttpHeaders, endpointKept: readonly string[]): Record<string, string> {
    const kept: Record<string, string> = {};
    for (const name of [...this.#keptHeaders, ...endpointKept]) {
      const v = headers[name];
      if (v !== undefined && !isReservedHeader(name) && !NEVER_KEPT.has(name)) kept[name] = Array.isArray(v) ? v.join(", ") : v;
    }
    return kept;
  }

  #checkPayload(payload: Buffer): Buffer {
    if (payload.length > this.maxPayloadBytes) {
      throw new KapselError("E1001", `payload is ${payload.length} bytes; the limit is ${this.maxPayloadBytes}`);
    }
    return payload;
  }

  #checkKey(key: string | undefined): string | undefined {
    if (key !== undefined && !KEY.test(key)) throw new KapselError("E1006", "idempotency key must be 1 to 255 printable ASCII characters");
    return key;
  }

  #checkContentType(contentType: string): string {
    // A NUL would fail the whole group-commit statement (Postgres text cannot hold it), sinking
    // the other requests in the batch; refuse it here like CR/LF.
    if (contentType.length > 255 || /[\r\n\0]/.test(contentType)) throw new KapselError("E1006", "content type is not valid");
    return contentType || "application/json";
  }

  #checkHeaders(raw: Record<string, string>): Record<string, string> {
    let bytes = 0;
    const headers: Record<string, string> = {};
    for (const [rawName, value] of Object.entries(raw)) {
      const name = rawName.toLowerCase();
      // What the delivery client could not send would fail every attempt: refuse it now.
      const problem = headerProblem(name, value);
      if (problem !== undefined) throw new KapselError("E1006", problem);
      bytes += name.length + value.length;
      headers[name] = value;
    }
    if (bytes > MAX_HEADER_BYTES) throw new KapselError("E1006", `headers exceed ${MAX_HEADER_BYTES} bytes`);
    return headers;
  }
}
