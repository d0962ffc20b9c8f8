// Tenants and their API keys.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext } from "@connectrpc/connect";
import { sql } from "slonik";
import { z } from "zod";
import { ALL_SCOPES, generateApiKey, type ApiKeyStore, type Scope } from "../auth/api-keys.ts";
import { callerOf, tenantOf } from "../auth/auth-context.ts";
import type { DatabasePool } from "../db/pool.ts";
import { KapselError } from "../errors.ts";
import {
  ApiKeySchema, Scope as ScopeEnum, TenantSchema,
  type ApiKey, type CreateApiKeyRequest, type CreateTenantRequest, type GetTenantRequest,
  type ListApiKeysRequest, type ListTenantsRequest, type RevokeApiKeyRequest, type Tenant, type UpdateTenantRequest,
} from "@kapsel/contracts/management";
import { requireUuid } from "../uuid.ts";
import { decodeCursor, pageSize, paginate } from "./pagination.ts";

export interface RateLimitDefaults {
  perSecond: number;
  burst: number;
}

const tenantRow = z.object({
  id: z.string(),
  seq: z.string(),
  name: z.string(),
  rate_limit_per_second: z.number().nullable(),
  rate_limit_burst: z.number().nullable(),
  created_at: z.date(),
});
type TenantRow = z.infer<typeof tenantRow>;

const keyRow = z.object({
  id: z.string(),
  seq: z.string(),
  name: z.string(),
  prefix: z.string(),
  scopes: z.array(z.string()),
  created_at: z.date(),
  revoked_at: z.date().nullable(),
});
type KeyRow = z.infer<typeof keyRow>;

const SCOPE_NAMES: Record<number, Scope> = { [ScopeEnum.INGEST]: "ingest", [ScopeEnum.MANAGE]: "manage", [ScopeEnum.READ]: "read" };
const SCOPE_ENUMS: Record<Scope, ScopeEnum> = { ingest: ScopeEnum.INGEST, manage: ScopeEnum.MANAGE, read: ScopeEnum.READ };

/** Postgres text cannot hold NUL; other control characters have no place in a name either. */
const CONTROL = /[\u0000-\u001f\u007f]/;

function checkName(name: string): string {
  const trimmed = name.trim();
  if (trimmed.length < 1 || trimmed.length > 200 || CONTROL.test(trimmed)) {
    throw new KapselError("E1006", "name must be 1 to 200 characters, without control characters");
  }
  return trimmed;
}

/** The largest rate and burst a tenant may be given (the configuration's own bounds). */
const MAX_RATE = 1e9;

function checkRate(perSecond: number | undefined, burst: number | undefined): void {
  if (perSecond !== undefined && (!Number.isFinite(perSecond) || perSecond < 0 || perSecond > MAX_RATE)) {
    throw new KapselError("E1006", `rate_limit_per_second must be 0 to ${MAX_RATE}`);
  }
  if (burst !== undefined && (burst < 0 || burst > MAX_RATE)) throw new KapselError("E1006", `rate_limit_burst must be 0 to ${MAX_RATE}`);
}

export class Tenants {
  readonly #pool: DatabasePool;
  readonly #keys: ApiKeyStore;
  readonly #defaults: RateLimitDefaults;
  readonly #onRateLimitChanged: (tenantId: string) => void;

  /** `onRateLimitChanged` lets the limiter drop its cached bucket at once. */
  constructor(pool: DatabasePool, keys: ApiKeyStore, defaults: RateLimitDefaults, onRateLimitChanged: (tenantId: string) => void = () => {}) {
    this.#pool = pool;
    this.#keys = keys;
    this.#defaults = defaults;
    this.#onRateLimitChanged = onRateLimitChanged;
  }

  toProto(row: TenantRow): Tenant {
    return create(TenantSchema, {
      id: row.id,
      name: row.name,
      createdAt: timestampFromDate(row.created_at),
      rateLimitPerSecond: row.rate_limit_per_second ?? this.#defaults.perSecond,
      rateLimitBurst: row.rate_limit_burst ?? this.#defaults.burst,
    });
  }

  /** Creates a tenant and its first key with every scope (also used by `kapsel tenant create`). */
  async create(name: string, perSecond = 0, burst = 0): Promise<{ tenant: Tenant; apiKey: string }> {
    checkRate(perSecond, burst);
    const key = generateApiKey();
    return this.#pool.transaction(async (tx) => {
      const row = await tx.one(sql.type(tenantRow)`
        INSERT INTO tenants (name, rate_limit_per_second, rate_limit_burst)
        VALUES (${checkName(name)}, ${perSecond || null}, ${burst || null})
        RETURNING id, seq, name, rate_limit_per_second, rate_limit_burst, created_at`);
      await tx.query(sql.unsafe`
        INSERT INTO api_keys (tenant_id, name, secret_sha256, prefix, scopes)
        VALUES (${row.id}, 'initial', ${sql.binary(key.hash)}, ${key.prefix}, ${sql.array([...ALL_SCOPES], "text")})`);
      return { tenant: this.toProto(row), apiKey: key.secret };
    });
  }

  async get(tenantId: string): Promise<Tenant> {
    const row = await this.#pool.maybeOne(sql.type(tenantRow)`
      SELECT id, seq, name, rate_limit_per_second, rate_limit_burst, created_at FROM tenants WHERE id = ${tenantId}`);
    if (!row) throw new KapselError("E1008", "tenant not found");
    return this.toProto(row);
  }

  // RPC handlers ---------------------------------------------------------------------------------

  createTenant = async (req: CreateTenantRequest) => {
    const { tenant, apiKey } = await this.create(req.name, req.rateLimitPerSecond, req.rateLimitBurst);
    return { tenant, apiKey };
  };

  getTenant = async (req: GetTenantRequest, ctx: HandlerContext) => {
    const caller = callerOf(ctx);
    const id = req.tenantId === "" ? tenantOf(ctx) : requireUuid(req.tenantId, "tenant_id");
    // A tenant asking for another tenant learns nothing about it.
    if (caller.kind === "tenant" && caller.tenantId !== id) throw new KapselError("E1008", "tenant not found");
    return { tenant: await this.get(id) };
  };

  listTenants = async (req: ListTenantsRequest) => {
    const limit = pageSize(req.pageSize);
    const after = decodeCursor(req.pageToken, 1);
    const rows = await this.#pool.any(sql.type(tenantRow)`
      SELECT id, seq, name, rate_limit_per_second, rate_limit_burst, created_at FROM tenants
      WHERE seq > ${after?.[0] ?? "0"} ORDER BY seq LIMIT ${limit + 1}`);
    const page = paginate(rows, limit, (r) => [r.seq]);
    return { tenants: page.items.map((r) => this.toProto(r)), nextPageToken: page.next };
  };

  updateTenant = async (req: UpdateTenantRequest) => {
    const id = requireUuid(req.tenantId, "tenant_id");
    checkRate(req.rateLimitPerSecond, req.rateLimitBurst);
    if (req.rateLimitPerSecond === 0 || req.rateLimitBurst === 0) throw new KapselError("E1006", "rate limits must be > 0");
    const row = await this.#pool.maybeOne(sql.type(tenantRow)`
      UPDATE tenants SET
        name = coalesce(${req.name === undefined ? null : checkName(req.name)}, name),
        rate_limit_per_second = coalesce(${req.rateLimitPerSecond ?? null}::double precision, rate_limit_per_second),
        rate_limit_burst = coalesce(${req.rateLimitBurst ?? null}::integer, rate_limit_burst)
      WHERE id = ${id}
      RETURNING id, seq, name, rate_limit_per_second, rate_limit_burst, created_at`);
    if (!row) throw new KapselError("E1008", "tenant not found");
    this.#onRateLimitChanged(id);
    return { tenant: this.toProto(row) };
  };

  /** The tenant whose keys a call manages: the one the admin names, or the caller's own. */
  async #keyTenant(requested: string, ctx: HandlerContext): Promise<string> {
    const caller = callerOf(ctx);
    if (caller.kind === "admin") {
      const tenantId = requireUuid(requested, "tenant_id");
      await this.get(tenantId);
      return tenantId;
    }
    if (requested !== "" && requested !== caller.tenantId) throw new KapselError("E1008", "tenant not found");
    return caller.tenantId;
  }

  createApiKey = async (req: CreateApiKeyRequest, ctx: HandlerContext) => {
    const tenantId = await this.#keyTenant(req.tenantId, ctx);
    const scopes = [...new Set(req.scopes.map((s) => SCOPE_NAMES[s]))];
    if (scopes.length === 0 || scopes.some((s) => s === undefined)) throw new KapselError("E1006", "scopes must list at least one of SCOPE_INGEST, SCOPE_MANAGE, SCOPE_READ");
    if (CONTROL.test(req.name)) throw new KapselError("E1006", "name must be without control characters");
    const key = generateApiKey();
    const row = await this.#pool.one(sql.type(keyRow)`
      INSERT INTO api_keys (tenant_id, name, secret_sha256, prefix, scopes)
      VALUES (${tenantId}, ${req.name.slice(0, 200)}, ${sql.binary(key.hash)}, ${key.prefix}, ${sql.array(scopes as string[], "text")})
      RETURNING id, seq, name, prefix, scopes, created_at, revoked_at`);
    return { apiKey: keyToProto(row), secret: key.secret };
  };

  listApiKeys = async (req: ListApiKeysRequest, ctx: HandlerContext) => {
    const tenantId = await this.#keyTenant(req.tenantId, ctx);
    const limit = pageSize(req.pageSize);
    const after = decodeCursor(req.pageToken, 1);
    const rows = await this.#pool.any(sql.type(keyRow)`
      SELECT id, seq, name, prefix, scopes, created_at, revoked_at FROM api_keys
      WHERE tenant_id = ${tenantId} AND seq > ${after?.[0] ?? "0"} ORDER BY seq LIMIT ${limit + 1}`);
    const page = paginate(rows, limit, (r) => [r.seq]);
    return { apiKeys: page.items.map(keyToProto), nextPageToken: page.next };
  };

  revokeApiKey = async (req: RevokeApiKeyRequest, ctx: HandlerContext) => {
    const caller = callerOf(ctx);
    const id = requireUuid(req.apiKeyId, "api_key_id");
    // The admin may revoke any tenant's key (a leaked key is an operator's emergency too).
    const tenantFilter = caller.kind === "admin" ? sql.fragment`TRUE` : sql.fragment`tenant_id = ${caller.tenantId}`;
    const row = await this.#pool.maybeOne(sql.type(keyRow)`
      UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
      WHERE id = ${id} AND ${tenantFilter}
      RETURNING id, seq, name, prefix, scopes, created_at, revoked_at`);
    if (!row) throw new KapselError("E1008", "API key not found");
    this.#keys.forgetAll();
    return { apiKey: keyToProto(row) };
  };
}

function keyToProto(row: KeyRow): ApiKey {
  return create(ApiKeySchema, {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    scopes: row.scopes.map((s) => SCOPE_ENUMS[s as Scope]),
    createdAt: timestampFromDate(row.created_at),
    revokedAt: row.revoked_at ? timestampFromDate(row.revoked_at) : undefined,
  });
}
