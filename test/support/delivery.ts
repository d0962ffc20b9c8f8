// What delivery tests share: a tenant with an endpoint pointing at a sink, ingest through the HTTP
// gateway, reading an event back, and following it with WatchEvent over the Connect protocol.
import { createClient, ConnectError, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ErrorInfoSchema } from "@kapsel/contracts/error-details";
import { ManagementService } from "@kapsel/contracts/management";
import { createTenant, rpc } from "./rpc.ts";
import { ADMIN_TOKEN } from "./server.ts";

export interface Destination {
  tenantId: string;
  apiKey: string;
  endpointId: string;
  signingSecret: string;
}

/** A new tenant with one plain-http endpoint at `url`; `options` are CreateEndpoint fields. */
export async function createDestination(baseUrl: string, url: string, options: Record<string, unknown> = {}): Promise<Destination> {
  const tenant = await createTenant(baseUrl, ADMIN_TOKEN, "delivery");
  return { tenantId: tenant.id, apiKey: tenant.apiKey, ...(await addEndpoint(baseUrl, tenant.apiKey, url, options)) };
}

export async function addEndpoint(baseUrl: string, apiKey: string, url: string, options: Record<string, unknown> = {}): Promise<{ endpointId: string; signingSecret: string }> {
  const r = await rpc(baseUrl, "CreateEndpoint", { url, allowHttp: true, ...options }, apiKey);
  if (r.status !== 200) throw new Error(`CreateEndpoint failed: ${r.status} ${JSON.stringify(r.body)}`);
  return { endpointId: r.body.endpoint.id, signingSecret: r.body.signingSecret };
}

/** POSTs an event to the gateway; returns its id. */
export async function ingest(baseUrl: string, endpointId: string, body: string | Uint8Array<ArrayBuffer> = '{"type":"test"}', headers: Record<string, string> = {}): Promise<string> {
  const res = await fetch(`${baseUrl}/ingest/${endpointId}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
  const text = await res.text();
  if (res.status !== 202) throw new Error(`ingest answered ${res.status}: ${text}`);
  return (JSON.parse(text) as { event_id: string }).event_id;
}

export async function getEvent(baseUrl: string, apiKey: string, eventId: string): Promise<any> {
  const r = await rpc(baseUrl, "GetEvent", { eventId }, apiKey);
  if (r.status !== 200) throw new Error(`GetEvent failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.event;
}

/** Polls until `check` returns something other than undefined; fails after `timeoutMs`. */
export async function until<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Waits for the event to reach `status` (e.g. "EVENT_STATUS_DELIVERED") and returns it. */
export function eventReaching(baseUrl: string, apiKey: string, eventId: string, status: string, timeoutMs = 30_000): Promise<any> {
  return until(`event ${eventId} to be ${status}`, async () => {
    const event = await getEvent(baseUrl, apiKey, eventId);
    return event.status === status ? event : undefined;
  }, timeoutMs);
}

export function managementClient(baseUrl: string, apiKey: string) {
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${apiKey}`);
    return next(req);
  };
  return createClient(ManagementService, createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors: [auth] }));
}

/** The Kapsel code (E2002, …) in a ConnectError's ErrorInfo detail. */
export function kapselCode(err: unknown): string | undefined {
  return err instanceof ConnectError ? err.findDetails(ErrorInfoSchema)[0]?.reason : undefined;
}
