// GetEndpointStats: an endpoint's attempts, successes and latency per time bucket, for the
// console's charts. Bounded so a single call cannot make Postgres aggregate without limit: at
// most 31 days of one endpoint's attempts (read through the (endpoint_id, started_at) index) in
// at most 500 buckets. Buckets are aligned to multiples of their width since the epoch, so the
// same range always yields the same bucket edges.
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext } from "@connectrpc/connect";
import { sql, type DatabasePool } from "slonik";
import { z } from "zod";
import { tenantOf } from "../auth/auth-context.ts";
import { KapselError } from "../errors.ts";
import { EndpointStatsBucketSchema, type GetEndpointStatsRequest } from "@kapsel/contracts/management";
import { requireUuid } from "../uuid.ts";

export const MAX_BUCKETS = 500;
export const MAX_RANGE_MS = 31 * 86_400_000;
const DEFAULT_RANGE_MS = 86_400_000;
const DEFAULT_BUCKETS = 48;
const MIN_DEFAULT_BUCKET_S = 60;
/** 9999-12-31T23:59:59Z, the last time a protobuf Timestamp (and its JSON form) can carry. */
const MAX_TIME_MS = 253402300799000;

export interface StatsWindow {
  /** First bucket's start, ms since the epoch (a multiple of the bucket width). */
  startMs: number;
  bucketSeconds: number;
  buckets: number;
}

/** Validates a request's range and bucket width and lays out the buckets (pure). */
export function statsWindow(req: Pick<GetEndpointStatsRequest, "since" | "until" | "bucketSeconds">, nowMs: number): StatsWindow {
  const untilMs = req.until ? timestampDate(req.until).getTime() : nowMs;
  const sinceMs = req.since ? timestampDate(req.since).getTime() : untilMs - DEFAULT_RANGE_MS;
  // From the epoch on (no attempt is older), and bucket edges that stay representable times.
  if (!Number.isFinite(untilMs) || !Number.isFinite(sinceMs) || sinceMs < 0 || untilMs > MAX_TIME_MS) {
    throw new KapselError("E1006", "since and until must be valid times from 1970 on");
  }
  if (sinceMs >= untilMs) throw new KapselError("E1006", "since must be before until");
  if (untilMs - sinceMs > MAX_RANGE_MS) throw new KapselError("E1006", "the range may span at most 31 days");
  if (req.bucketSeconds > MAX_RANGE_MS / 1000) throw new KapselError("E1006", "bucket_seconds may be at most 31 days");
  const bucketSeconds = req.bucketSeconds !== 0
    ? req.bucketSeconds
    : Math.max(MIN_DEFAULT_BUCKET_S, Math.ceil((untilMs - sinceMs) / 1000 / DEFAULT_BUCKETS));
  const widthMs = bucketSeconds * 1000;
  const startMs = Math.floor(sinceMs / widthMs) * widthMs;
  const buckets = Math.ceil((untilMs - startMs) / widthMs);
  if (buckets > MAX_BUCKETS) {
    throw new KapselError("E1006", `the range holds ${buckets} buckets of ${bucketSeconds} s; at most ${MAX_BUCKETS} (use wider buckets)`);
  }
  return { startMs, bucketSeconds, buckets };
}

const bucketRow = z.object({
  i: z.number(),
  attempts: z.number(),
  delivered: z.number(),
  p50: z.number().nullable(),
  p95: z.number().nullable(),
});

export class EndpointStats {
  readonly #pool: DatabasePool;

  constructor(pool: DatabasePool) {
    this.#pool = pool;
  }

  getEndpointStats = async (req: GetEndpointStatsRequest, ctx: HandlerContext) => {
    const tenantId = tenantOf(ctx);
    const endpointId = requireUuid(req.endpointId, "endpoint_id");
    const window = statsWindow(req, Date.now());
    const exists = await this.#pool.maybeOne(sql.unsafe`
      SELECT 1 FROM endpoints WHERE id = ${endpointId} AND tenant_id = ${tenantId} AND deleted_at IS NULL`);
    if (!exists) throw new KapselError("E1003");
    const start = sql.fragment`to_timestamp(${window.startMs / 1000})`;
    const end = sql.fragment`to_timestamp(${(window.startMs + window.buckets * window.bucketSeconds * 1000) / 1000})`;
    const rows = await this.#pool.any(sql.type(bucketRow)`
      SELECT floor(extract(epoch FROM a.started_at - ${start}) / ${window.bucketSeconds})::int AS i,
        count(*)::int AS attempts,
        count(*) FILTER (WHERE a.outcome = 'delivered')::int AS delivered,
        percentile_disc(0.5) WITHIN GROUP (ORDER BY a.duration_ms) AS p50,
        percentile_disc(0.95) WITHIN GROUP (ORDER BY a.duration_ms) AS p95
      FROM delivery_attempts a
      WHERE a.endpoint_id = ${endpointId} AND a.tenant_id = ${tenantId}
        AND a.started_at >= ${start} AND a.started_at < ${end}
      GROUP BY 1`);
    const byIndex = new Map(rows.map((r) => [r.i, r]));
    const buckets = Array.from({ length: window.buckets }, (_, i) => {
      const r = byIndex.get(i);
      return create(EndpointStatsBucketSchema, {
        start: timestampFromMs(window.startMs + i * window.bucketSeconds * 1000),
        attempts: r?.attempts ?? 0,
        delivered: r?.delivered ?? 0,
        latencyP50Ms: r?.p50 ?? 0,
        latencyP95Ms: r?.p95 ?? 0,
      });
    });
    return { endpointId, bucketSeconds: window.bucketSeconds, buckets };
  };
}
