// A tenant's ingest rate as the limiter needs it: the tenant's own limits (UpdateTenant) or the
// server's defaults. Read, never written, here: tenants belong to management/tenants.ts.
import { sql, type DatabasePool } from "slonik";
import { z } from "zod";
import type { Limit } from "./rate-limiter.ts";

export async function tenantRateLimit(pool: DatabasePool, tenantId: string, defaults: Limit): Promise<Limit> {
  const row = await pool.maybeOne(sql.type(z.object({ r: z.number().nullable(), b: z.number().nullable() }))`
    SELECT rate_limit_per_second AS r, rate_limit_burst AS b FROM tenants WHERE id = ${tenantId}`);
  return { perSecond: row?.r ?? defaults.perSecond, burst: row?.b ?? defaults.burst };
}
