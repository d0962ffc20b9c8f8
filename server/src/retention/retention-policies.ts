// The retention_policies table (a tenant's own windows) and the RPCs that read and change it:
// GetRetentionPolicy, UpdateRetentionPolicy. The rules are retention-policy.ts.
import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import {
  RetentionPolicySchema,
  type GetRetentionPolicyRequest, type RetentionPolicy, type UpdateRetentionPolicyRequest,
} from "@kapsel/contracts/management";
import { sql, type CommonQueryMethods, type DatabasePool } from "slonik";
import { z } from "zod";
import { callerOf } from "../auth/auth-context.ts";
import { KapselError } from "../errors.ts";
import { requireUuid } from "../uuid.ts";
import { applyChange, effectiveWindows, NO_CHOICES, type RetentionWindows, type TenantChoices } from "./retention-policy.ts";

export interface RetentionLimits {
  defaults: RetentionWindows;
  /** The longest window a tenant key may choose (0 = no limit). */
  maxSeconds: number;
}

/** A tenant's windows as the purger applies them. */
export interface TenantWindows {
  tenantId: string;
  windows: RetentionWindows;
}

const choicesRow = z.object({
  payload_seconds: z.string().nullable(),
  response_seconds: z.string().nullable(),
  event_seconds: z.string().nullable(),
});
type ChoicesRow = z.infer<typeof choicesRow>;

const n = (v: string | null) => (v === null ? undefined : Number(v));
const choicesOf = (row: ChoicesRow | null): TenantChoices =>
  row ? { payloadSeconds: n(row.payload_seconds), responseSeconds: n(row.response_seconds), eventSeconds: n(row.event_seconds) } : { ...NO_CHOICES };

export function policyToProto(w: RetentionWindows): RetentionPolicy {
  return create(RetentionPolicySchema, {
    payloadRetentionSeconds: w.payloadSeconds,
    responseRetentionSeconds: w.responseSeconds,
    eventRetentionSeconds: w.eventSeconds,
  });
}

/** The tenant a call acts for: the one the admin names (it must exist), or the caller's own; a
 * tenant naming another tenant learns nothing about it (E1008). */
export async function tenantFor(db: CommonQueryMethods, requested: string, ctx: HandlerContext): Promise<string> {
  const caller = callerOf(ctx);
  if (caller.kind === "tenant") {
    if (requested !== "" && requested.toLowerCase() !== caller.tenantId) throw new KapselError("E1008", "tenant not found");
    return caller.tenantId;
  }
  const tenantId = requireUuid(requested, "tenant_id");
  const exists = await db.maybeOne(sql.unsafe`SELECT 1 FROM tenants WHERE id = ${tenantId}`);
  if (!exists) throw new KapselError("E1008", "tenant not found");
  return tenantId;
}

export class RetentionPolicies {
  readonly #pool: DatabasePool;
  readonly #limits: RetentionLimits;

  constructor(pool: DatabasePool, limits: RetentionLimits) {
    this.#pool = pool;
    this.#limits = limits;
  }

  /** Every tenant with the windows that apply to it, for one purge pass. */
  async all(): Promise<TenantWindows[]> {
    const rows = await this.#pool.any(sql.type(choicesRow.extend({ id: z.string() }))`
      SELECT t.id, p.payload_seconds::text, p.response_seconds::text, p.event_seconds::text
      FROM tenants t LEFT JOIN retention_policies p ON p.tenant_id = t.id ORDER BY t.seq`);
    return rows.map((r) => ({ tenantId: r.id, windows: effectiveWindows(this.#limits.defaults, choicesOf(r)) }));
  }

  async #choices(db: CommonQueryMethods, tenantId: string, lock: boolean): Promise<TenantChoices> {
    const row = await db.maybeOne(sql.type(choicesRow)`
      SELECT payload_seconds::text, response_seconds::text, event_seconds::text FROM retention_policies
      WHERE tenant_id = ${tenantId} ${lock ? sql.fragment`FOR UPDATE` : sql.fragment``}`);
    return choicesOf(row);
  }

  getRetentionPolicy = async (req: GetRetentionPolicyRequest, ctx: HandlerContext) => {
    const tenantId = await tenantFor(this.#pool, req.tenantId, ctx);
    const choices = await this.#choices(this.#pool, tenantId, false);
    return {
      policy: policyToProto(effectiveWindows(this.#limits.defaults, choices)),
      defaults: policyToProto(this.#limits.defaults),
      maxRetentionSeconds: this.#limits.maxSeconds,
    };
  };

  updateRetentionPolicy = async (req: UpdateRetentionPolicyRequest, ctx: HandlerContext) => {
    const tenantId = await tenantFor(this.#pool, req.tenantId, ctx);
    const by = callerOf(ctx).kind;
    const change = {
      payloadSeconds: req.payloadRetentionSeconds,
      responseSeconds: req.responseRetentionSeconds,
      eventSeconds: req.eventRetentionSeconds,
      reset: req.resetToDefaults,
    };
    // Read, check and write under the row lock: two concurrent changes of different windows must
    // not combine into a policy neither of them checked.
    const windows = await this.#pool.transaction(async (tx) => {
      await tx.query(sql.unsafe`INSERT INTO retention_policies (tenant_id) VALUES (${tenantId}) ON CONFLICT (tenant_id) DO NOTHING`);
      const next = applyChange(await this.#choices(tx, tenantId, true), change, by, this.#limits);
      await tx.query(sql.unsafe`
        UPDATE retention_policies SET payload_seconds = ${next.payloadSeconds ?? null}, response_seconds = ${next.responseSeconds ?? null},
          event_seconds = ${next.eventSeconds ?? null}, updated_at = now()
        WHERE tenant_id = ${tenantId}`);
      return effectiveWindows(this.#limits.defaults, next);
    });
    return { policy: policyToProto(windows) };
  };
}
