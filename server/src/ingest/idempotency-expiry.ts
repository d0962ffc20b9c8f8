// Expired idempotency keys: past the deduplication window a key no longer deduplicates (the insert
// in message-insert.ts replaces it), so its row is only weight. They are deleted oldest first, a
// bounded batch per statement, skipping rows an ingest statement holds right now (it is about to
// replace them). The retention purger calls this; the table stays ingest's.
import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";

/** Deletes up to `limit` keys older than the window; returns how many went. */
export async function deleteExpiredIdempotencyKeys(db: CommonQueryMethods, windowMs: number, limit: number): Promise<number> {
  return db.oneFirst(sql.type(z.object({ n: z.number() }))`
    WITH gone AS (
      DELETE FROM idempotency_keys k
      WHERE (k.tenant_id, k.scope_id, k.key) IN (
        SELECT tenant_id, scope_id, key FROM idempotency_keys
        WHERE created_at < now() - ${windowMs} * interval '1 millisecond'
        ORDER BY created_at LIMIT ${limit}
        FOR UPDATE SKIP LOCKED)
      RETURNING 1
    )
    SELECT count(*)::int AS n FROM gone`);
}
