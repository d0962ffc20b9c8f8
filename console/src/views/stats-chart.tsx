// An endpoint's delivery health over time, from GetEndpointStats: attempts per bucket split into
// delivered and failed (the success rate you can see), and the median and 95th percentile
// latency. Plain SVG: no chart library in the bundle, no inline styles for the CSP to allow.
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { EndpointStatsBucket } from "@kapsel/sdk/web";

const W = 720;
const H = 140;
const PAD = { left: 44, right: 8, top: 10, bottom: 20 };

function axisTime(d: Date, spanMs: number): string {
  const iso = d.toISOString();
  return spanMs > 2 * 86_400_000 ? iso.slice(5, 10) : iso.slice(11, 16);
}

export function StatsChart({ buckets, bucketSeconds }: { buckets: EndpointStatsBucket[]; bucketSeconds: number }) {
  if (buckets.length === 0) return <p className="muted">No data for this range.</p>;
  const innerW = W - PAD.left - PAD.right;
  const innerH = H - PAD.top - PAD.bottom;
  const bw = innerW / buckets.length;
  const maxAttempts = Math.max(1, ...buckets.map((b) => b.attempts));
  const maxLatency = Math.max(1, ...buckets.map((b) => b.latencyP95Ms));
  const total = buckets.reduce((n, b) => n + b.attempts, 0);
  const delivered = buckets.reduce((n, b) => n + b.delivered, 0);
  const first = timestampDate(buckets[0]!.start!);
  const span = buckets.length * bucketSeconds * 1000;
  const ticks = [0, Math.floor(buckets.length / 2), buckets.length - 1];
  const y = (v: number, max: number) => PAD.top + innerH - (v / max) * innerH;
  const line = (pick: (b: EndpointStatsBucket) => number) =>
    buckets
      .map((b, i) => (b.attempts === 0 ? undefined : `${PAD.left + i * bw + bw / 2},${y(pick(b), maxLatency)}`))
      .filter(Boolean)
      .join(" ");
  const xLabels = ticks.map((i) => (
    <text key={i} x={PAD.left + i * bw + bw / 2} y={H - 4} textAnchor="middle" className="axis">
      {axisTime(new Date(first.getTime() + i * bucketSeconds * 1000), span)}
    </text>
  ));
  return (
    <div className="charts" data-testid="endpoint-chart">
      <p>
        {total} attempts, {total === 0 ? "—" : `${((delivered / total) * 100).toFixed(1)} % delivered`} · buckets of{" "}
        {bucketSeconds >= 7200 ? `${+(bucketSeconds / 3600).toFixed(1)} h` : bucketSeconds >= 120 ? `${+(bucketSeconds / 60).toFixed(1)} min` : `${bucketSeconds} s`}
      </p>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label="Attempts per bucket, delivered and failed" className="chart">
        <text x={4} y={PAD.top + 8} className="axis">{maxAttempts}</text>
        <text x={4} y={PAD.top + innerH} className="axis">0</text>
        {buckets.map((b, i) => {
          const x = PAD.left + i * bw + 0.5;
          const failed = b.attempts - b.delivered;
          return (
            <g key={i}>
              <rect x={x} width={Math.max(bw - 1, 0.5)} y={y(b.delivered, maxAttempts)} height={innerH - (y(b.delivered, maxAttempts) - PAD.top)} className="bar-ok" />
              {failed > 0 && (
                <rect x={x} width={Math.max(bw - 1, 0.5)} y={y(b.attempts, maxAttempts)} height={(failed / maxAttempts) * innerH} className="bar-bad" />
              )}
            </g>
          );
        })}
        {xLabels}
      </svg>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label="Latency p50 and p95 in milliseconds" className="chart">
        <text x={4} y={PAD.top + 8} className="axis">{maxLatency} ms</text>
        <text x={4} y={PAD.top + innerH} className="axis">0</text>
        <polyline points={line((b) => b.latencyP95Ms)} className="line-p95" />
        <polyline points={line((b) => b.latencyP50Ms)} className="line-p50" />
        {buckets.map((b, i) =>
          b.attempts === 0 ? null : (
            <g key={i}>
              <circle cx={PAD.left + i * bw + bw / 2} cy={y(b.latencyP95Ms, maxLatency)} r={2.5} className="dot-p95" />
              <circle cx={PAD.left + i * bw + bw / 2} cy={y(b.latencyP50Ms, maxLatency)} r={2.5} className="dot-p50" />
            </g>
          ),
        )}
        {xLabels}
      </svg>
      <p className="legend">
        <span className="key ok" /> delivered <span className="key bad" /> failed <span className="key p50" /> p50 latency{" "}
        <span className="key p95" /> p95 latency
      </p>
    </div>
  );
}
