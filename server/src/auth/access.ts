// The access table: what each RPC needs. Health checks and reflection (the public API schema) are
// open; tenant administration needs the admin token; the rest needs an API key with the listed
// scope. One table, read by the request gate (auth-gate.ts) before any request body is read.
import { KapselError } from "../errors.ts";
import type { Scope } from "./api-keys.ts";
import type { Caller } from "./auth-context.ts";

export type Access = "public" | "admin" | "admin-or-read" | "admin-or-manage" | Scope | "read-or-manage" | "any";

/** Access per RPC, by `Service/Method`. Anything not listed needs the `manage` scope. */
const ACCESS: Record<string, Access> = {
  "grpc.health.v1.Health/Check": "public",
  "grpc.health.v1.Health/Watch": "public",
  "grpc.health.v1.Health/List": "public",
  "grpc.reflection.v1.ServerReflection/ServerReflectionInfo": "public",
  "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": "public",
  "kapsel.v1.IngestService/Ingest": "ingest",
  "kapsel.v1.IngestService/IngestBatch": "ingest",
  "kapsel.v1.ManagementService/CreateTenant": "admin",
  "kapsel.v1.ManagementService/ListTenants": "admin",
  "kapsel.v1.ManagementService/UpdateTenant": "admin",
  "kapsel.v1.ManagementService/GetTenant": "admin-or-read",
  "kapsel.v1.ManagementService/CreateApiKey": "admin-or-manage",
  "kapsel.v1.ManagementService/GetEndpoint": "read-or-manage",
  "kapsel.v1.ManagementService/ListEndpoints": "read-or-manage",
  "kapsel.v1.ManagementService/ListApiKeys": "admin-or-read",
  "kapsel.v1.ManagementService/RevokeApiKey": "admin-or-manage",
  "kapsel.v1.ManagementService/ListEvents": "read-or-manage",
  "kapsel.v1.ManagementService/GetEvent": "read-or-manage",
  "kapsel.v1.ManagementService/WatchEvent": "read-or-manage",
  "kapsel.v1.ManagementService/GetEndpointHealth": "read-or-manage",
  "kapsel.v1.ManagementService/GetEndpointStats": "read-or-manage",
  "kapsel.v1.ManagementService/WatchEvents": "read-or-manage",
  "kapsel.v1.ManagementService/ListMessages": "read-or-manage",
  "kapsel.v1.ManagementService/GetMessage": "read-or-manage",
  "kapsel.v1.ManagementService/GetSource": "read-or-manage",
  "kapsel.v1.ManagementService/ListSources": "read-or-manage",
  "kapsel.v1.ManagementService/GetRetentionPolicy": "admin-or-read",
  "kapsel.v1.ManagementService/UpdateRetentionPolicy": "admin-or-manage",
  "kapsel.v1.ManagementService/ListErasures": "admin-or-read",
  "kapsel.v1.AttestationService/GetCheckpoint": "any",
  "kapsel.v1.AttestationService/GetPublicKeys": "any",
  "kapsel.v1.AttestationService/GetConsistencyProof": "any",
  "kapsel.v1.AttestationService/WatchCheckpoints": "any",
  "kapsel.v1.AttestationService/GetInclusionProof": "read-or-manage",
  "kapsel.v1.AttestationService/GetProofBundle": "read-or-manage",
};

/** What the RPC `service/method` needs (by their full names). */
export function accessOf(service: string, method: string): Access {
  return ACCESS[`${service}/${method}`] ?? "manage";
}

/** Throws E1004 unless the caller may make this call. */
export function authorize(access: Access, caller: Caller | undefined): void {
  if (access === "public") return;
  if (!caller) throw new KapselError("E1004", "missing or invalid API key");
  const has = (s: Scope) => caller.kind === "tenant" && caller.scopes.includes(s);
  const ok =
    access === "any" ||
    (access === "admin" && caller.kind === "admin") ||
    (access === "admin-or-read" && (caller.kind === "admin" || has("read") || has("manage"))) ||
    (access === "admin-or-manage" && (caller.kind === "admin" || has("manage"))) ||
    (access === "read-or-manage" && (has("read") || has("manage"))) ||
    ((access === "ingest" || access === "manage" || access === "read") && has(access));
  if (!ok) {
    const need = access === "admin" ? "the admin token" : access === "read-or-manage" ? "a key with scope read or manage" : `scope ${access.replace("admin-or-", "")}`;
    throw new KapselError("E1004", `this call needs ${need}`, { forbidden: true });
  }
}
