// Who is calling, as established by the auth interceptor and read by every handler.
import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import { KapselError } from "../errors.ts";
import type { Scope } from "./api-keys.ts";

export type Caller =
  | { kind: "admin" }
  | { kind: "tenant"; tenantId: string; keyId: string; scopes: readonly Scope[] };

export const callerKey = createContextKey<Caller | undefined>(undefined);

export function callerOf(ctx: HandlerContext): Caller {
  const caller = ctx.values.get(callerKey);
  if (!caller) throw new KapselError("E1004", "authentication required");
  return caller;
}

/** The tenant a tenant-scoped call acts for. The admin token is not a tenant. */
export function tenantOf(ctx: HandlerContext): string {
  const caller = callerOf(ctx);
  if (caller.kind !== "tenant") throw new KapselError("E1004", "this call needs a tenant API key", { forbidden: true });
  return caller.tenantId;
}
