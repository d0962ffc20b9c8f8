// The one error type SDK callers catch. Every failed call — an answer from the server, a broken
// connection, a deadline, a cancellation — surfaces as a KapselError wrapping the ConnectError
// that connect-es produced, so callers branch on one type and still reach the original.
import { Code, ConnectError } from "@connectrpc/connect";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { ErrorInfoSchema, RetryInfoSchema } from "@kapsel/contracts/error-details";

export class KapselError extends Error {
  override readonly name = "KapselError";
  /** The Connect (= gRPC) status code, e.g. `Code.InvalidArgument`. */
  readonly code: Code;
  /**
   * The Kapsel error code (`E1006`, …; see the error table in the README) from the
   * `google.rpc.ErrorInfo` detail. Undefined when the server did not answer (network errors,
   * client-side deadlines and cancellations) or answered without one.
   */
  readonly kapselCode: string | undefined;
  /** How long the server asked us to wait before trying again (`google.rpc.RetryInfo`). */
  readonly retryAfterMs: number | undefined;
  /** The server's `x-request-id` for this call, to quote in a support request or find in logs. */
  readonly requestId: string | undefined;
  /** Response headers and trailers that came with the error. */
  readonly metadata: Headers;
  override readonly cause: ConnectError;

  constructor(cause: ConnectError) {
    // ConnectError's message already leads with the code ("[invalid_argument] E1006: …").
    super(cause.message, { cause });
    this.cause = cause;
    this.code = cause.code;
    this.metadata = cause.metadata;
    this.kapselCode = cause.findDetails(ErrorInfoSchema)[0]?.reason || undefined;
    const delay = cause.findDetails(RetryInfoSchema)[0]?.retryDelay;
    this.retryAfterMs = delay === undefined ? undefined : Number(delay.seconds) * 1000 + Math.round(delay.nanos / 1e6);
    this.requestId = cause.metadata.get("x-request-id") ?? undefined;
  }

  /** Decodes the error details of one type (for example `google.rpc.ErrorInfo`). */
  findDetails<Desc extends DescMessage>(desc: Desc): MessageShape<Desc>[] {
    return this.cause.findDetails(desc) as MessageShape<Desc>[];
  }
}

/** Converts anything a call threw into a KapselError (ConnectError.from decides the code). */
export function toKapselError(reason: unknown): KapselError {
  if (reason instanceof KapselError) return reason;
  return new KapselError(ConnectError.from(reason));
}

/** True for errors worth retrying after a pause: the server is overloaded or briefly down. */
export function isRetryable(code: Code): boolean {
  return code === Code.Unavailable || code === Code.ResourceExhausted;
}
