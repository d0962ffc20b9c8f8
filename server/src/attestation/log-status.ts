// The log's state at a glance, for operators (`kapsel log status`): how big it is, when it was last
// signed, how much waits to be sequenced, and which key signs.
import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";

export interface LogStatus {
  treeSize: number;
  latestCheckpoint: { treeSize: number; signedAt: string; ageSeconds: number } | undefined;
  /** Attempts recorded but not yet in the log, and how long the oldest has waited. */
  queued: number;
  oldestQueuedSeconds: number;
}

export async function logStatus(db: CommonQueryMethods): Promise<LogStatus> {
  const r = await db.one(sql.type(z.object({
    tree_size: z.string(),
    cp_size: z.string().nullable(),
    cp_at: z.date().nullable(),
    cp_age: z.number().nullable(),
    queued: z.string(),
    oldest: z.number(),
  }))`
    SELECT (SELECT tree_size FROM log_state)::text AS tree_size,
      c.tree_size::text AS cp_size, c.signed_at AS cp_at, extract(epoch FROM now() - c.signed_at)::float8 AS cp_age,
      (SELECT count(*) FROM log_queue)::text AS queued,
      coalesce((SELECT extract(epoch FROM now() - min(queued_at)) FROM log_queue), 0)::float8 AS oldest
    FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT tree_size, signed_at FROM checkpoints ORDER BY tree_size DESC LIMIT 1) c ON true`);
  return {
    treeSize: Number(r.tree_size),
    latestCheckpoint: r.cp_size === null ? undefined : { treeSize: Number(r.cp_size), signedAt: r.cp_at!.toISOString(), ageSeconds: Math.round(r.cp_age! * 10) / 10 },
    queued: Number(r.queued),
    oldestQueuedSeconds: Math.round(r.oldest * 10) / 10,
  };
}
