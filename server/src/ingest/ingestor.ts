// The one way in for events, shared by the HTTP gateway and the RPCs: accept() owns the order of
// the steps, and the protocol handlers only translate to and from it.
//
//   resolve each endpoint (E1006 malformed id, E1003 unknown or another tenant's, E1007 disabled)
//   → a sender's declared size (E1001) → the tenant's rate (E1005, for the whole call)
//   → a sender's body, read under the cap (E1001) → its source signature (E1002)
//   → each item's fields (E1001, E1006) → group commit → answered once durable.
//
// Item errors answer that item only (a batch goes on); call errors (rate limit, database outage)
// are thrown. Nothing is acknowledged before it is durable.
import type { IncomingHttpHeaders } from "node:http";
import { KapselError, toKapselError } from "../errors.ts";
import { BodyTooLarge } from "../http/body-reader.ts";
import { isHeaderName, isReservedHeader } from "../http/header-names.ts";
import { isUuid, uuidv7 } from "../uuid.ts";
import type { EndpointCache, IngestEndpoint } from "./endpoint-cache.ts";
import type { Accepted, NewEvent } from "./event-insert.ts";
import type { GroupCommit } from "./group-commit.ts";
import type { RateLimiter } from "./rate-limiter.ts";
import { senderDeliveryId, verifySource } from "./source-verification.ts";

/** A webhook sender's request body, read only once the endpoint is known and the rate allows. */
export interface InboundBody {
  /** Content-Length as the sender declared it, if any. */
  declaredBytes: number | undefined;
  /** Reads the body, rejecting with BodyTooLarge past `cap` bytes. */
  read(cap: number): Promise<Buffer>;
  /** The request headers: the source signature, the sender's delivery id and kept headers. */
  headers: IncomingHttpHeaders;
}

function isInbound(body: Buffer | InboundBody): body is InboundBody {
  return !Buffer.isBuffer(body);
}

export interface IngestItem {
  /** The endpoint id exactly as the caller gave it. */
  endpointId: string;
  /** The payload (RPCs), or a sender's request to read it from (gateway). */
  body: Buffer | InboundBody;
  contentType: string;
  idempotencyKey: string | undefined;
  /** Headers the caller asks to forward (RPCs); a sender's are taken from its request. */
  headers: Record<string, string>;
}

export interface IngestCall {
  /** The API key's tenant; its endpoints only. Undefined for a webhook sender, whom the endpoint
   * id and its source signature authenticate. */
  tenantId: string | undefined;
  requestId: string;
  items: readonly IngestItem[];
}

export type ItemResult = Accepted | KapselError;

export interface IngestorOptions {
  maxPayloadBytes: number;
  /** Header names kept from every sender (besides each endpoint's own list). */
  keptHeaders: readonly string[];
}

const KEY = /^[\x20-\x7e]{1,255}$/;
export const MAX_HEADER_BYTES = 16 * 1024;
/** Never kept from a sender, whatever the lists say: they were for us. */
const NEVER_KEPT = new Set(["authorization", "cookie"]);

export class Ingestor {
  readonly #endpoints: EndpointCache;
  readonly #limiter: RateLimiter;
  readonly #commit: GroupCommit<NewEvent, Accepted>;
  readonly #keptHeaders: readonly string[];
  readonly maxPayloadBytes: number;

  constructor(endpoints: EndpointCache, limiter: RateLimiter, commit: GroupCommit<NewEvent, Accepted>, options: IngestorOptions) {
    this.#endpoints = endpoints;
    this.#limiter = limiter;
    this.#commit = commit;
    this.#keptHeaders = options.keptHeaders;
    this.maxPayloadBytes = options.maxPayloadBytes;
  }

  /** Accepts a call's items; resolves once every accepted item is durable, with one result per
   * item in order. Throws for what fails the whole call (E1005, E9001, a sender gone mid-body). */
  async accept(call: IngestCall): Promise<ItemResult[]> {
    const results: (ItemResult | undefined)[] = new Array(call.items.length);
    // Item errors are answers; anything else (an outage) fails the call.
    const itemError = (i: number, err: unknown): void => {
      const known = toKapselError(err);
      if (!known || known.code === "E9001") throw err;
      results[i] = known;
    };

    const endpoints = await Promise.all(call.items.map(async (item, i) => {
      try {
        const endpoint = await this.#endpoint(item.endpointId, call.tenantId);
        const declared = isInbound(item.body) ? item.body.declaredBytes : undefined;
        if (declared !== undefined && declared > this.maxPayloadBytes) {
          throw new KapselError("E1001", `payload is ${declared} bytes; the limit is ${this.maxPayloadBytes}`);
        }
        return endpoint;
      } catch (err) {
        itemError(i, err);
        return undefined;
      }
    }));
    const tenantId = call.tenantId ?? endpoints.find((e) => e !== undefined)?.tenantId;
    if (tenantId === undefined) return results as ItemResult[];
    // A batch takes one token per item, valid or not: a caller cannot send unlimited bad items.
    await this.#rateLimit(tenantId, call.items.length);

    const prepared: (NewEvent | undefined)[] = [];
    for (const [i, item] of call.items.entries()) {
      const endpoint = endpoints[i];
      if (!endpoint) {
        prepared.push(undefined);
        continue;
      }
      try {
        prepared.push(isInbound(item.body)
          ? await this.#prepareInbound(endpoint, item, item.body, call.requestId)
          : this.#prepare(endpoint, item, item.body, item.headers, item.idempotencyKey, call.requestId));
      } catch (err) {
        itemError(i, err);
        prepared.push(undefined);
      }
    }

    const events = prepared.filter((e): e is NewEvent => e !== undefined);
    const accepted = await Promise.all(this.#commit.submit(events));
    let next = 0;
    for (const [i, e] of prepared.entries()) if (e) results[i] = accepted[next++];
    return results as ItemResult[];
  }

  async #endpoint(rawId: string, tenantId: string | undefined): Promise<IngestEndpoint> {
    if (!isUuid(rawId)) throw new KapselError("E1006", "endpoint_id must be a UUID");
    const endpoint = await this.#endpoints.get(rawId.toLowerCase());
    if (!endpoint || (tenantId !== undefined && endpoint.tenantId !== tenantId)) throw new KapselError("E1003");
    if (!endpoint.enabled) throw new KapselError("E1007");
    return endpoint;
  }

  async #rateLimit(tenantId: string, n: number): Promise<void> {
    const waitMs = await this.#limiter.take(tenantId, Math.max(1, n));
    if (waitMs > 0) throw new KapselError("E1005", `rate limit exceeded; retry in ${Math.ceil(waitMs / 1000)} s`, { retryAfterMs: waitMs });
  }

  /** A sender's request: read under the cap, verified by the endpoint's scheme; its idempotency
   * key is the explicit header or, failing that, the sender's own delivery id (so its retries of
   * one delivery are stored once); headers that say what the event is are kept. */
  async #prepareInbound(endpoint: IngestEndpoint, item: IngestItem, inbound: InboundBody, requestId: string): Promise<NewEvent> {
    let body: Buffer;
    try {
      body = await inbound.read(this.maxPayloadBytes);
    } catch (err) {
      if (err instanceof BodyTooLarge) throw new KapselError("E1001", `payload exceeds the limit of ${this.maxPayloadBytes} bytes`);
      throw err;
    }
    const failure = verifySource(endpoint.source, inbound.headers, body);
    if (failure !== undefined) throw new KapselError("E1002", failure);
    const key = item.idempotencyKey ?? senderDeliveryId(endpoint.source.scheme, inbound.headers);
    const headers: Record<string, string> = {};
    for (const name of [...this.#keptHeaders, ...endpoint.keptHeaders]) {
      const v = inbound.headers[name];
      if (v !== undefined && !isReservedHeader(name) && !NEVER_KEPT.has(name)) headers[name] = Array.isArray(v) ? v.join(", ") : v;
    }
    return this.#prepare(endpoint, item, body, headers, key, requestId);
  }

  /** Checks one event's fields (E1001, E1006) and gives it an id. */
  #prepare(endpoint: IngestEndpoint, item: IngestItem, payload: Buffer, rawHeaders: Record<string, string>, idempotencyKey: string | undefined, requestId: string): NewEvent {
    if (payload.length > this.maxPayloadBytes) {
      throw new KapselError("E1001", `payload is ${payload.length} bytes; the limit is ${this.maxPayloadBytes}`);
    }
    if (idempotencyKey !== undefined && !KEY.test(idempotencyKey)) {
      throw new KapselError("E1006", "idempotency key must be 1 to 255 printable ASCII characters");
    }
    // A NUL would fail the whole group-commit statement (Postgres text cannot hold it), sinking
    // the other requests in the batch; refuse it here like CR/LF.
    if (item.contentType.length > 255 || /[\r\n\0]/.test(item.contentType)) throw new KapselError("E1006", "content type is not valid");
    let headerBytes = 0;
    const headers: Record<string, string> = {};
    for (const [rawName, value] of Object.entries(rawHeaders)) {
      const name = rawName.toLowerCase();
      if (!isHeaderName(name) || isReservedHeader(name)) throw new KapselError("E1006", `header ${JSON.stringify(rawName)} may not be set`);
      if (/[\r\n\0]/.test(value)) throw new KapselError("E1006", `header ${name} has a control character`);
      headerBytes += name.length + value.length;
      headers[name] = value;
    }
    if (headerBytes > MAX_HEADER_BYTES) throw new KapselError("E1006", `headers exceed ${MAX_HEADER_BYTES} bytes`);
    return {
      id: uuidv7(),
      tenantId: endpoint.tenantId,
      endpointId: endpoint.id,
      payload,
      contentType: item.contentType || "application/json",
      headers,
      idempotencyKey,
      requestId,
    };
  }
}
