// API keys: `ksk_` + 32 random bytes (base64url). Only their SHA-256 is stored; a lookup hashes
// the presented key and finds it by that hash, so a leaked table does not leak usable keys.
import { createHash, randomBytes } from "node:crypto";
import { LRUCache } from "lru-cache";
import { sql } from "slonik";
import { z } from "zod";
import type { DatabasePool } from "../db/pool.ts";

export type Scope = "ingest" | "manage" | "read";
export const ALL_SCOPES: readonly Scope[] = ["ingest", "manage", "read"];

export interface ApiKeyIdentity {
  keyId: string;
  tenantId: string;
  scopes: readonly Scope[];
}

export function generateApiKey(): { secret: string; prefix: string; hash: Buffer } {
  const secret = `ksk_${randomBytes(32).toString("base64url")}`;
  return { secret, prefix: secret.slice(0, 12), hash: hashApiKey(secret) };
}

export function hashApiKey(secret: string): Buffer {
  return createHash("sha256").update(secret).digest();
}

const identityRow = z.object({ id: z.string(), tenant_id: z.string(), scopes: z.array(z.string()) });

/**
 * Finds active keys by hash. Answers are cached briefly because ingest authenticates every
 * request; a revocation in this process clears the cache at once, other processes see it within
 * the cache TTL.
 */
export class ApiKeyStore {
  readonly #pool: DatabasePool;
  /** Bounded and least-recently-used first, so unknown keys sent by strangers cannot push the
   * keys in use out all at once. A miss is cached too. */
  readonly #cache: LRUCache<string, { identity: ApiKeyIdentity | undefined }>;
  /** Bumped by forgetAll, so a lookup that was in flight during a revocation is not cached. */
  #generation = 0;

  constructor(pool: DatabasePool, options: { ttlMs?: number; max?: number } = {}) {
    this.#pool = pool;
    this.#cache = new LRUCache({ max: options.max ?? 10_000, ttl: options.ttlMs ?? 2_000 });
  }

  async lookup(secret: string): Promise<ApiKeyIdentity | undefined> {
    const hash = hashApiKey(secret);
    const cacheKey = hash.toString("base64");
    const hit = this.#cache.get(cacheKey);
    if (hit) return hit.identity;
    const generation = this.#generation;
    const row = await this.#pool.maybeOne(sql.type(identityRow)`
      SELECT k.id, k.tenant_id, k.scopes FROM api_keys k
      WHERE k.secret_sha256 = ${sql.binary(hash)} AND k.revoked_at IS NULL`);
    const identity = row ? { keyId: row.id, tenantId: row.tenant_id, scopes: row.scopes as Scope[] } : undefined;
    if (generation !== this.#generation) return identity;
    this.#cache.set(cacheKey, { identity });
    return identity;
  }

  forgetAll(): void {
    this.#generation++;
    this.#cache.clear();
  }
}
