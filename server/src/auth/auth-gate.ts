// Authenticates and authorises every RPC from its headers alone, before a byte of its body is
// read, decompressed or parsed (Connect's request gate): a stranger's request costs a header
// check, whatever it sends after. The gate also records the caller for the handlers
// (auth-context.ts), so no handler can run unauthenticated or forget the check.
import type { HandlerContext } from "@connectrpc/connect";
import { accessOf, authorize } from "./access.ts";
import { callerKey } from "./auth-context.ts";
import type { Authenticator } from "./authenticator.ts";
import { bearerToken } from "./bearer-token.ts";

/** Throws E1004 (or E9001 when the key store is unreachable) unless the caller may make the call. */
export function authGate(auth: Authenticator): (ctx: HandlerContext) => Promise<void> {
  return async (ctx) => {
    const access = accessOf(ctx.service.typeName, ctx.method.name);
    const token = bearerToken(ctx.requestHeader.get("authorization"));
    const caller = token === undefined || access === "public" ? undefined : await auth.authenticate(token);
    authorize(access, caller);
    ctx.values.set(callerKey, caller);
  };
}
