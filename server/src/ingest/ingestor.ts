// The path every event takes in, shared by the gateway and the RPCs: find the endpoint, validate,
// rate-limit, then group-commit. Nothing is acknowledged before it is durable.
import { KapselError } from "../errors.ts";
import { isHeaderName, isReservedHeader } from "../http/header-names.ts";
import { isUuid, uuidv7 } from "../uuid.ts";
import type { EndpointCache, IngestEndpoint } from "./endpoint-cache.ts";
import type { Accepted, GroupCommit, NewEvent } from "./group-commit.ts";
import type { RateLimiter } from "./rate-limiter.ts";

export interface IngestInput {
  payload: Buffer;
  contentType: string;
  idempotencyKey: string | undefined;
  headers: Record<string, string>;
  requestId: string;
}

const KEY = /^[\x20-\x7e]{1,255}$/;
export const MAX_HEADER_BYTES = 16 * 1024;

export class Ingestor {
  readonly #endpoints: EndpointCache;
  readonly #limiter: RateLimiter;
  readonly #commit: GroupCommit;
  readonly maxPayloadBytes: number;

  constructor(endpoints: EndpointCache, limiter: RateLimiter, commit: GroupCommit, maxPayloadBytes: number) {
    this.#endpoints = endpoints;
    this.#limiter = limiter;
    this.#commit = commit;
    this.maxPayloadBytes = maxPayloadBytes;
  }

  /** The endpoint for an id from a request: E1006 malformed, E1003 unknown (or another tenant's
   * when tenantId is given), E1007 disabled. */
  async endpoint(rawId: string, tenantId?: string): Promise<IngestEndpoint> {
    if (!isUuid(rawId)) throw new KapselError("E1006", "endpoint_id must be a UUID");
    const endpoint = await this.#endpoints.get(rawId.toLowerCase());
    if (!endpoint || (tenantId !== undefined && endpoint.tenantId !== tenantId)) throw new KapselError("E1003");
    if (!endpoint.enabled) throw new KapselError("E1007");
    return endpoint;
  }

  /** Throws E1005 with a retry delay when the tenant is over its rate. */
  async rateLimit(tenantId: string, n: number): Promise<void> {
    const waitMs = await this.#limiter.take(tenantId, n);
    if (waitMs > 0) throw new KapselError("E1005", `rate limit exceeded; retry in ${Math.ceil(waitMs / 1000)} s`, { retryAfterMs: waitMs });
  }

  /** Checks one event's fields (E1001, E1006) and gives it an id. */
  prepare(endpoint: IngestEndpoint, input: IngestInput): NewEvent {
    if (input.payload.length > this.maxPayloadBytes) {
      throw new KapselError("E1001", `payload is ${input.payload.length} bytes; the limit is ${this.maxPayloadBytes}`);
    }
    if (input.idempotencyKey !== undefined && !KEY.test(input.idempotencyKey)) {
      throw new KapselError("E1006", "idempotency key must be 1 to 255 printable ASCII characters");
    }
    // A NUL would fail the whole group-commit statement (Postgres text cannot hold it), sinking
    // the other requests in the batch; refuse it here like CR/LF.
    if (input.contentType.length > 255 || /[\r\n\0]/.test(input.contentType)) throw new KapselError("E1006", "content type is not valid");
    let headerBytes = 0;
    const headers: Record<string, string> = {};
    for (const [rawName, value] of Object.entries(input.headers)) {
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
      payload: input.payload,
      contentType: input.contentType || "application/json",
      headers,
      idempotencyKey: input.idempotencyKey,
      requestId: input.requestId,
    };
  }

  /** Stores events; each promise resolves once its event is durable. */
  commit(events: readonly NewEvent[]): Promise<Accepted>[] {
    return this.#commit.submit(events);
  }
}
