// The one error type of Kapsel: every failure a caller can see has a stable code from the table in
// DESIGN.md, a Connect code and an HTTP status. RPCs carry the code in a google.rpc.ErrorInfo
// detail (reason = code); throttling adds RetryInfo. The gateway answers JSON with the same code.
import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { ErrorInfoSchema, RetryInfoSchema } from "@kapsel/contracts/error-details";

export const ERROR_DOMAIN = "kapsel.dev";

export const ERROR_CODES = {
  E1001: { code: Code.InvalidArgument, http: 413, text: "payload larger than the limit" },
  E1002: { code: Code.Unauthenticated, http: 401, text: "source signature missing or wrong" },
  E1003: { code: Code.NotFound, http: 404, text: "endpoint not found" },
  E1004: { code: Code.Unauthenticated, http: 401, text: "API key missing, wrong or revoked" },
  E1005: { code: Code.ResourceExhausted, http: 429, text: "rate limit exceeded" },
  E1006: { code: Code.InvalidArgument, http: 400, text: "malformed request" },
  E1007: { code: Code.FailedPrecondition, http: 409, text: "endpoint disabled" },
  // Not in DESIGN.md's table, which has no code for management objects other than endpoints and
  // events: an unknown (or another tenant's) tenant or API key id.
  E1008: { code: Code.NotFound, http: 404, text: "tenant or API key not found" },
  E2001: { code: Code.InvalidArgument, http: 400, text: "destination not allowed" },
  E2002: { code: Code.NotFound, http: 404, text: "event not found" },
  E2003: { code: Code.FailedPrecondition, http: 409, text: "event not in a state that allows this" },
  // Not in DESIGN.md's table, which predates messages and sources: an unknown (or another
  // tenant's) message or source id.
  E2004: { code: Code.NotFound, http: 404, text: "message not found" },
  E2005: { code: Code.NotFound, http: 404, text: "source not found" },
  // Not in DESIGN.md's table, which predates erasure: the event's payload was erased (EraseEvents
  // or the retention policy), so it can never be delivered again. Its receipts and proofs stay.
  E2006: { code: Code.FailedPrecondition, http: 409, text: "event payload erased; it cannot be delivered again" },
  E3001: { code: Code.FailedPrecondition, http: 409, text: "attempt not yet in a signed checkpoint" },
  E3002: { code: Code.InvalidArgument, http: 400, text: "tree sizes out of range for a proof" },
  // Not in DESIGN.md's table: an attempt id that does not exist (or is another tenant's).
  E3003: { code: Code.NotFound, http: 404, text: "attempt not found" },
  // Not in DESIGN.md's table, which predates witnessing: a witnessed checkpoint or bundle was
  // asked of a log that has no witnesses (KAPSEL_WITNESSES is empty).
  E3004: { code: Code.FailedPrecondition, http: 409, text: "the log has no witnesses configured" },
  E9001: { code: Code.Unavailable, http: 503, text: "database unavailable; nothing was accepted" },
  E9002: { code: Code.Unavailable, http: 503, text: "overloaded: the ingest queue is full; nothing was accepted, retry after the hint" },
  // Not in DESIGN.md's table: E9001 promises that nothing was accepted, which Kapsel cannot say
  // when the connection was lost while a commit was under way and the database could not be asked
  // afterwards. Retrying with the same idempotency key is always safe.
  E9003: { code: Code.Unavailable, http: 503, text: "database connection lost during the commit; the request may have been accepted: retry with the same idempotency key" },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface KapselErrorOptions {
  /** For E1004: a key that is valid but lacks the scope answers PermissionDenied/403. */
  forbidden?: boolean;
  /** For throttling and not-yet-ready answers: when to try again. */
  retryAfterMs?: number;
  cause?: unknown;
}

export class KapselError extends Error {
  readonly code: ErrorCode;
  readonly connectCode: Code;
  readonly httpStatus: number;
  readonly retryAfterMs: number | undefined;

  constructor(code: ErrorCode, message?: string, options: KapselErrorOptions = {}) {
    super(message ?? ERROR_CODES[code].text, { cause: options.cause });
    this.code = code;
    const forbidden = code === "E1004" && options.forbidden === true;
    this.connectCode = forbidden ? Code.PermissionDenied : ERROR_CODES[code].code;
    this.httpStatus = forbidden ? 403 : ERROR_CODES[code].http;
    this.retryAfterMs = options.retryAfterMs;
  }

  /** The RPC form: the same code in ErrorInfo, plus RetryInfo when there is a retry delay. */
  toConnectError(): ConnectError {
    const details = [
      { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { reason: this.code, domain: ERROR_DOMAIN }) },
    ] as ConstructorParameters<typeof ConnectError>[3] & object[];
    if (this.retryAfterMs !== undefined) {
      details.push({
        desc: RetryInfoSchema,
        value: create(RetryInfoSchema, { retryDelay: durationFromMs(this.retryAfterMs) }),
      });
    }
    // The code leads the message because many tools show only the message.
    return new ConnectError(`${this.code}: ${this.message}`, this.connectCode, undefined, details, this);
  }

  /** The gateway's JSON body. */
  toJson(requestId: string): { code: ErrorCode; message: string; request_id: string } {
    return { code: this.code, message: this.message, request_id: requestId };
  }
}

/** Postgres or network failures that mean "the database is not there right now". */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && (/^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EAI_AGAIN)$/.test(code) || /^(08|57P)/.test(code))) {
      return true;
    }
    const name = e.constructor.name;
    if (name === "ConnectionError" || name === "BackendTerminatedError" || name === "BackendTerminatedUnexpectedlyError") return true;
    if (/Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(e.message)) return true;
  }
  return false;
}

/** Maps anything thrown inside a handler to what the caller should see. */
export function toKapselError(err: unknown): KapselError | undefined {
  if (err instanceof KapselError) return err;
  if (isDatabaseUnavailable(err)) return new KapselError("E9001", undefined, { cause: err });
  return undefined;
}
