// createKapselClient for browsers (and Deno, Bun, edge runtimes): the Connect protocol over
// fetch. Browsers cannot speak gRPC (no trailers through fetch), and Connect unary calls are
// plain POSTs that any proxy and CORS set-up understands. Nothing here may import a Node module.
import { createConnectTransport } from "@connectrpc/connect-web";
import { interceptorsFor, kapselClient, type CommonClientOptions, type KapselClient } from "./kapsel-client.ts";

export interface WebKapselClientOptions extends CommonClientOptions {
  /** Binary protobuf instead of JSON (default false: JSON is readable in the network panel). */
  useBinaryFormat?: boolean;
  /** A fetch to use instead of the global one. */
  fetch?: typeof globalThis.fetch;
}

export function createKapselClient(options: WebKapselClientOptions): KapselClient {
  const transport = createConnectTransport({
    baseUrl: options.baseUrl,
    interceptors: interceptorsFor(options),
    defaultTimeoutMs: options.defaultTimeoutMs,
    useBinaryFormat: options.useBinaryFormat ?? false,
    fetch: options.fetch,
  });
  // fetch pools connections itself; there is nothing of ours to close.
  return kapselClient(transport);
}
