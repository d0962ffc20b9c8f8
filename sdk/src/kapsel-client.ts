// The client shape both entry points return, and how it is put together from a transport: the
// caller's interceptors, then retries, then authentication (outermost first), and every method
// wrapped so that whatever fails reaches the caller as a KapselError.
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import { bearerAuth, type ApiKeySource } from "./bearer-auth.ts";
import { toKapselError } from "./kapsel-error.ts";
import { retryInterceptor } from "./retry-interceptor.ts";
import { resolveRetryOptions, type RetryOptions } from "./retry-policy.ts";
import { AttestationService } from "@kapsel/contracts/attestation";
import { IngestService } from "@kapsel/contracts/ingest";
import { ManagementService } from "@kapsel/contracts/management";

export interface KapselClient {
  readonly ingest: Client<typeof IngestService>;
  readonly management: Client<typeof ManagementService>;
  readonly attestation: Client<typeof AttestationService>;
  /** Closes pooled HTTP/2 connections; later calls open new ones. */
  close(): void;
}

/** Options both entry points share. */
export interface CommonClientOptions {
  /** Where Kapsel listens, e.g. `https://kapsel.example.com` (no trailing RPC path). */
  baseUrl: string;
  /** A tenant API key (`ksk_…`), the admin token, or a function returning the current one. */
  apiKey?: ApiKeySource;
  /** Opt-in retries of unary calls on Unavailable and ResourceExhausted; `true` for defaults. */
  retry?: RetryOptions | boolean;
  /** Applied to every call that does not pass its own `timeoutMs`. */
  defaultTimeoutMs?: number;
  /** Extra interceptors, run before the SDK's own (they see each call once, not each retry). */
  interceptors?: Interceptor[];
}

/** The interceptor chain for a transport, outermost first. */
export function interceptorsFor(options: CommonClientOptions): Interceptor[] {
  const retry = resolveRetryOptions(options.retry);
  return [
    ...(options.interceptors ?? []),
    ...(retry ? [retryInterceptor(retry)] : []),
    ...(options.apiKey !== undefined ? [bearerAuth(options.apiKey)] : []),
  ];
}

export function kapselClient(transport: Transport, close: () => void = () => {}): KapselClient {
  return {
    ingest: throwingKapselErrors(IngestService, createClient(IngestService, transport)),
    management: throwingKapselErrors(ManagementService, createClient(ManagementService, transport)),
    attestation: throwingKapselErrors(AttestationService, createClient(AttestationService, transport)),
    close,
  };
}

/**
 * Wraps each method so failures surface as KapselError. This sits outside the transport on
 * purpose: deadlines and cancellations are raised by connect-es after the interceptors have run,
 * so an interceptor would miss them.
 */
export function throwingKapselErrors<S extends DescService>(service: S, client: Client<S>): Client<S> {
  const methods = client as unknown as Record<string, (input: unknown, options?: unknown) => unknown>;
  const wrapped: Record<string, unknown> = {};
  for (const method of service.methods) {
    const call = methods[method.localName]!;
    if (method.methodKind === "unary") {
      wrapped[method.localName] = async (input: unknown, options?: unknown) => {
        try {
          return await call(input, options);
        } catch (err) {
          throw toKapselError(err);
        }
      };
    } else if (method.methodKind === "server_streaming") {
      wrapped[method.localName] = (input: unknown, options?: unknown) =>
        rethrowingKapselErrors(call(input, options) as AsyncIterable<unknown>);
    } else {
      wrapped[method.localName] = call;
    }
  }
  return wrapped as Client<S>;
}

function rethrowingKapselErrors<T>(stream: AsyncIterable<T>): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      const it = stream[Symbol.asyncIterator]();
      return {
        next: () =>
          it.next().catch((err: unknown) => {
            throw toKapselError(err);
          }),
      };
    },
  };
}
