// Who a bearer token is: the admin, a tenant's API key, or nobody.
import { createHash, timingSafeEqual } from "node:crypto";
import type { ApiKeyStore } from "./api-keys.ts";
import type { Caller } from "./auth-context.ts";

export interface Authenticator {
  /** Resolves a bearer token to a caller; undefined when it is not valid. */
  authenticate(token: string): Promise<Caller | undefined>;
}

export function createAuthenticator(adminToken: string, keys: ApiKeyStore): Authenticator {
  const adminHash = createHash("sha256").update(adminToken).digest();
  const adminLooksLikeKey = adminToken.startsWith("ksk_");
  return {
    async authenticate(token) {
      // API keys are recognisable by their prefix, which spares them the admin comparison (a hash).
      // The admin comparison hashes both sides, so it is constant-time whatever the lengths.
      const maybeKey = token.startsWith("ksk_");
      if ((!maybeKey || adminLooksLikeKey) && timingSafeEqual(createHash("sha256").update(token).digest(), adminHash)) return { kind: "admin" };
      if (!maybeKey) return undefined;
      const identity = await keys.lookup(token);
      return identity && { kind: "tenant", ...identity };
    },
  };
}
