// The console's only way to the server: @kapsel/sdk/web, pointed at the origin that served the
// page. The base URL is never configurable and never read from the URL or storage, so the key
// cannot be sent anywhere else (the Content-Security-Policy's `connect-src 'self'` enforces the
// same from the browser's side).
import { createKapselClient, createKapselTransport, type KapselClient } from "@kapsel/sdk/web";
import type { Transport } from "@connectrpc/connect";

export interface Clients {
  /** For @connectrpc/connect-query (TransportProvider). */
  transport: Transport;
  /** For streams and step-by-step flows (proof verification). */
  client: KapselClient;
}

export function serverOrigin(): string {
  return window.location.origin;
}

export function createClients(token: string): Clients {
  const options = { baseUrl: serverOrigin(), apiKey: token, defaultTimeoutMs: 30_000 };
  return { transport: createKapselTransport(options), client: createKapselClient(options) };
}
