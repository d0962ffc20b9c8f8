// createKapselClient for browsers (and Deno, Bun, edge runtimes): the Connect protocol over
// fetch. Browsers cannot speak gRPC (no trailers through fetch), and Connect unary calls are
// plain POSTs that any proxy and CORS set-up understands. Nothing here may import a Node module.
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { interceptorsFor, kapselClient, type CommonClientOptions, type KapselClient } from "./kapsel-client.ts";

export interface WebKapselClientOptions extends CommonClientOptions {
  /** Binary protobuf instead of JSON (default false: JSON is readable in the network panel). */
  useBinaryFormat?: boolean;
  /** A fetch to use instead of the global one. */
  fetch?: typeof globalThis.fetch;
}

export function createKapselClient(options: WebKapselClientOptions): KapselClient {
  // fetch pools connections itself; there is nothing of ours to close.
  return kapselClient(createKapselTransport(options));
}

/**
 * The transport under createKapselClient (API key, retries, your interceptors), for libraries
 * that take a Connect transport rather than a client: `@connectrpc/connect-query`'s
 * TransportProvider, for one. Its calls fail with ConnectError; `new KapselError(err)` reads the
 * Kapsel code from one.
 */
export function createKapselTransport(options: WebKapselClientOptions): Transport {
  return createConnectTransport({
    baseUrl: options.baseUrl,
    interceptors: interceptorsFor(options),
    defaultTimeoutMs: options.defaultTimeoutMs,
    useBinaryFormat: options.useBinaryFormat ?? false,
    fetch: options.fetch,
  });
}
