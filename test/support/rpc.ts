// Minimal Connect-protocol JSON client over fetch: what a curl user or a browser without the SDK
// does. Returns status and parsed body; never throws for HTTP errors.
export interface RpcResult<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

export async function rpc<T = any>(baseUrl: string, method: string, body: unknown, token?: string, headers: Record<string, string> = {}): Promise<RpcResult<T>> {
  const service = method.startsWith("Ingest") ? "IngestService" : ["GetCheckpoint", "GetPublicKeys", "GetInclusionProof", "GetConsistencyProof", "GetProofBundle"].includes(method) ? "AttestationService" : "ManagementService";
  const path = method.includes("/") ? method : `kapsel.v1.${service}/${method}`;
  const res = await fetch(`${baseUrl}/${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

/** The Kapsel error code carried in a Connect JSON error's ErrorInfo detail. */
export function errorCode(body: any): string | undefined {
  return body?.details?.find((d: any) => d.type === "google.rpc.ErrorInfo")?.debug?.reason;
}

/** Creates a tenant with the admin token; returns its id and first (all-scope) key. */
export async function createTenant(baseUrl: string, adminToken: string, name = "acme"): Promise<{ id: string; apiKey: string }> {
  const r = await rpc(baseUrl, "CreateTenant", { name }, adminToken);
  if (r.status !== 200) throw new Error(`CreateTenant failed: ${r.status} ${JSON.stringify(r.body)}`);
  return { id: r.body.tenant.id, apiKey: r.body.apiKey };
}
