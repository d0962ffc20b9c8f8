// Figures of bench/e2e.ts: the per-step table, the sustained rates and ratios, and the chart
// (an SVG written by hand, so the bench needs no plotting tool).

export interface StepResult {
  step: number;
  /** Offered deliveries per second (ingest requests per second × fan-out). */
  rate: number;
  /** Offered ingest requests per second. */
  requestRate: number;
  seconds: number;
  /** Ingest requests due during the step, sent, and answered 2xx. */
  offered: number;
  sent: number;
  acked: number;
  failures: Record<string, number>;
  /** Distinct deliveries of this step's events by the end of the measurement. */
  delivered: number;
  /** Deliveries that arrived while the step's clock ran, per second. */
  deliveredRate: number;
  /** Step end → last delivery of its events; undefined when not drained within the limit. */
  drainMs: number | undefined;
  /** Ingest (scheduled send) → first delivery at the sink, over this step's events. */
  latencyMs: { p50: number; p99: number; max: number };
  /** Scheduled send → 2xx answer. */
  ackMs: { p50: number; p99: number };
  /** CPU per delivered event, µs, by process (Postgres = postmaster + children). */
  cpuUs: { system: number; postgres: number; sink: number; load: number };
  /** Cores used over the step and its drain: each process of the system by name, `postgres`,
   * `sink`, `load gen`, `others` (processes outside the bench) and `idle`. */
  cores: Record<string, number>;
  keptUp: boolean;
  /** Why the step does not count as kept up. */
  why: string;
}

export interface SystemRun {
  kind: string;
  label: string;
  fanout: number;
  steps: StepResult[];
  notes: string[];
  /** Set when the system could not be measured on this build (then steps is empty). */
  unavailable?: string;
}

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits }) : "–");
/** Cores by process for a step: the system's processes (joined by + when several), Postgres,
 * sink + load generator, others, idle. */
function coresCell(s: StepResult): string {
  const fixed = new Set(["postgres", "sink", "load gen", "others", "idle"]);
  const system = Object.entries(s.cores).filter(([k]) => !fixed.has(k)).map(([, v]) => v.toFixed(2)).join("+");
  const c = (k: string) => s.cores[k] ?? 0;
  return `${system} · ${c("postgres").toFixed(2)} · ${(c("sink") + c("load gen")).toFixed(2)} · ${c("others").toFixed(2)} · ${c("idle").toFixed(2)}`;
}

const ms = (n: number) => (!Number.isFinite(n) ? "–" : n >= 100 ? fmt(n) : n.toFixed(1));

/** The highest offered rate the system kept up with (deliveries/s), 0 if none. */
export function sustained(run: SystemRun): number {
  return run.steps.filter((s) => s.keptUp).reduce((m, s) => Math.max(m, s.rate), 0);
}

export function stepLine(run: SystemRun, s: StepResult): string {
  const offered = run.fanout > 1 ? `${fmt(s.rate)}/s (${fmt(s.requestRate)} msg/s)` : `${fmt(s.rate)}/s`;
  const drain = s.drainMs === undefined ? "not drained" : `drain ${(s.drainMs / 1000).toFixed(2)} s`;
  const failures = Object.keys(s.failures).length ? ` failures ${JSON.stringify(s.failures)}` : "";
  return `  ${run.label}: offered ${offered}: acked ${((100 * s.acked) / s.offered).toFixed(1)} %, delivered ${fmt(s.deliveredRate)}/s, ${drain}, ` +
    `latency p50 ${ms(s.latencyMs.p50)} ms p99 ${ms(s.latencyMs.p99)} ms (ack p99 ${ms(s.ackMs.p99)} ms), ` +
    `CPU µs/delivery: system ${fmt(s.cpuUs.system)} pg ${fmt(s.cpuUs.postgres)} sink ${fmt(s.cpuUs.sink)} load ${fmt(s.cpuUs.load)}, ` +
    `cores ${Object.entries(s.cores).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", ")} → ${s.keptUp ? "kept up" : `NOT kept up (${s.why})`}${failures}`;
}

/** The per-step table for every system, in Markdown. */
export function stepsTable(runs: SystemRun[]): string {
  const lines = [
    "| system | offered deliveries/s | acked | delivered/s | drain | p50 | p99 | CPU µs per delivery: server · Postgres · sink · load gen | cores: server · Postgres · sink + load gen · others · idle | kept up |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
  ];
  for (const run of runs) {
    if (run.unavailable) {
      lines.push(`| ${run.label} | ${run.unavailable} | | | | | | | | |`);
      continue;
    }
    for (const s of [...run.steps].sort((a, b) => a.rate - b.rate)) {
      const offered = run.fanout > 1 ? `${fmt(s.rate)} (${fmt(s.requestRate)} msg/s)` : fmt(s.rate);
      lines.push(`| ${run.label} | ${offered} | ${((100 * s.acked) / s.offered).toFixed(1)} % | ${fmt(s.deliveredRate)} | ` +
        `${s.drainMs === undefined ? "> 5 s" : `${(s.drainMs / 1000).toFixed(2)} s`} | ${ms(s.latencyMs.p50)} ms | ${ms(s.latencyMs.p99)} ms | ` +
        `${fmt(s.cpuUs.system)} · ${fmt(s.cpuUs.postgres)} · ${fmt(s.cpuUs.sink)} · ${fmt(s.cpuUs.load)} | ${coresCell(s)} | ${s.keptUp ? "yes" : `no: ${s.why}`} |`);
    }
  }
  return lines.join("\n");
}

/**
 * Sustained rate per system, with a ratio to the reference system measured in the same run:
 * `reference ÷ this` (how many times the peers' rate Kapsel sustains) or `this ÷ reference` (what
 * a layout adds over one process).
 */
export function sustainedTable(runs: SystemRun[], reference: string, ratio: "reference-over-this" | "this-over-reference"): string {
  const ref = runs.find((r) => r.kind === reference && !r.unavailable);
  const refRate = ref ? sustained(ref) : 0;
  const refLabel = ref?.label ?? reference;
  const lines = [
    `| system | sustained deliveries/s | at that rate: p99, CPU µs per delivery (server + Postgres) | ${ratio === "reference-over-this" ? `${refLabel} ÷ this` : `this ÷ ${refLabel}`} |`,
    "|---|---:|---:|---:|",
  ];
  for (const run of runs) {
    if (run.unavailable) {
      lines.push(`| ${run.label} | ${run.unavailable} | | |`);
      continue;
    }
    const rate = sustained(run);
    const at = run.steps.find((s) => s.keptUp && s.rate === rate);
    const cost = at ? `${ms(at.latencyMs.p99)} ms, ${fmt(at.cpuUs.system)} + ${fmt(at.cpuUs.postgres)}` : "–";
    const [a, b] = ratio === "reference-over-this" ? [refRate, rate] : [rate, refRate];
    const shownRatio = run === ref ? "1" : a > 0 && b > 0 ? `${(a / b).toFixed(1)}×` : "–";
    const shown = run.fanout > 1 && rate > 0 ? `${fmt(rate)} (${fmt(rate / run.fanout)} msg/s)` : rate > 0 ? fmt(rate) : "none of the steps";
    lines.push(`| ${run.label} | ${shown} | ${cost} | ${shownRatio} |`);
  }
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------
// Chart.

const COLOURS: Record<string, string> = {
  kapsel: "#1f5fbf",
  fanout: "#17a2b8",
  graphile: "#e07b00",
  pgboss: "#2e9e44",
  "split-1+1": "#8a4fbf",
  "split-2+2": "#b03a5b",
};

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** A log axis covering [min, max] with ticks at 1, 2 and 5 × 10^k inside it. */
function logAxis(min: number, max: number): { lo: number; hi: number; ticks: number[] } {
  const lo = Math.log10(min / 1.25);
  const hi = Math.log10(max * 1.25);
  const ticks: number[] = [];
  for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (Math.log10(v) >= lo && Math.log10(v) <= hi) ticks.push(v);
    }
  }
  return { lo, hi, ticks };
}

const short = (n: number) => (n >= 1000 ? `${fmt(n / 1000, n % 1000 === 0 ? 0 : 1)}k` : fmt(n));

interface Panel {
  x: number;
  y: number;
  w: number;
  h: number;
}

/**
 * Two panels against offered deliveries/s, on log scales (the search doubles the rate): delivered
 * deliveries/s, with the y = x line a system that keeps up follows, and ingest→delivered p99. One
 * line per system; filled markers are steps it kept up with, hollow ones steps it did not.
 */
export function renderChart(runs: SystemRun[], title: string, subtitle: string): string {
  const shown = runs.filter((r) => !r.unavailable && r.steps.length > 0);
  const W = 1000;
  const H = 470;
  const left: Panel = { x: 80, y: 110, w: 380, h: 300 };
  const right: Panel = { x: 590, y: 110, w: 380, h: 300 };
  const all = shown.flatMap((r) => r.steps);
  const rates = all.flatMap((s) => [s.rate, s.deliveredRate]).filter((v) => v > 0);
  const rateAxis = logAxis(Math.min(100, ...rates), Math.max(1000, ...rates));
  const p99s = all.map((s) => s.latencyMs.p99).filter((v) => Number.isFinite(v) && v > 0);
  const msAxis = p99s.length ? logAxis(Math.min(...p99s) / 1.5, Math.max(...p99s) * 1.5) : logAxis(1, 1000);

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>`);
  out.push(`<text x="${W / 2}" y="44" text-anchor="middle" fill="#444">${esc(subtitle)}</text>`);

  // Legend.
  let lx = 80;
  for (const r of shown) {
    const c = COLOURS[r.kind] ?? "#333";
    out.push(`<line x1="${lx}" y1="68" x2="${lx + 22}" y2="68" stroke="${c}" stroke-width="2.5"/><circle cx="${lx + 11}" cy="68" r="4" fill="${c}"/>`);
    out.push(`<text x="${lx + 28}" y="72">${esc(r.label)}</text>`);
    lx += 44 + r.label.length * 6.2;
  }
  const missing = runs.filter((r) => r.unavailable).map((r) => `${r.label}: ${r.unavailable}`);
  out.push(`<text x="80" y="92" fill="#555">filled: kept up (≥ 99 % acknowledged, drained within 5 s); hollow: did not${esc(missing.length ? `. ${missing.join("; ")}` : "")}</text>`);

  const scale = (axis: { lo: number; hi: number }, from: number, length: number, v: number) => from + ((Math.log10(v) - axis.lo) / (axis.hi - axis.lo)) * length;
  const xOf = (p: Panel, v: number) => scale(rateAxis, p.x, p.w, v);
  const yRate = (p: Panel, v: number) => p.y + p.h - scale(rateAxis, 0, p.h, v);
  const yMs = (p: Panel, v: number) => p.y + p.h - scale(msAxis, 0, p.h, v);

  const frame = (p: Panel, yTicks: { label: string; y: number }[], yLabel: string) => {
    for (const t of rateAxis.ticks) {
      const x = xOf(p, t);
      out.push(`<line x1="${x.toFixed(1)}" y1="${p.y}" x2="${x.toFixed(1)}" y2="${p.y + p.h}" stroke="#e6e6e6"/>`);
      out.push(`<text x="${x.toFixed(1)}" y="${p.y + p.h + 16}" text-anchor="middle" fill="#333">${short(t)}</text>`);
    }
    for (const t of yTicks) {
      out.push(`<line x1="${p.x}" y1="${t.y.toFixed(1)}" x2="${p.x + p.w}" y2="${t.y.toFixed(1)}" stroke="#e6e6e6"/>`);
      out.push(`<text x="${p.x - 6}" y="${(t.y + 4).toFixed(1)}" text-anchor="end" fill="#333">${t.label}</text>`);
    }
    out.push(`<rect x="${p.x}" y="${p.y}" width="${p.w}" height="${p.h}" fill="none" stroke="#999"/>`);
    out.push(`<text x="${p.x + p.w / 2}" y="${p.y + p.h + 38}" text-anchor="middle">offered deliveries/s (open loop, log scale)</text>`);
    out.push(`<text transform="translate(${p.x - 58} ${p.y + p.h / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`);
  };

  frame(left, rateAxis.ticks.map((v) => ({ label: short(v), y: yRate(left, v) })), "delivered deliveries/s (log scale)");
  const [d0, d1] = [10 ** rateAxis.lo, 10 ** rateAxis.hi];
  out.push(`<line x1="${xOf(left, d0).toFixed(1)}" y1="${yRate(left, d0).toFixed(1)}" x2="${xOf(left, d1).toFixed(1)}" y2="${yRate(left, d1).toFixed(1)}" stroke="#999" stroke-dasharray="5 4"/>`);
  frame(right, msAxis.ticks.map((v) => ({ label: v >= 1000 ? `${fmt(v / 1000)} s` : `${fmt(v)} ms`, y: yMs(right, v) })), "ingest → delivered p99 (log scale)");

  for (const r of shown) {
    const c = COLOURS[r.kind] ?? "#333";
    const steps = [...r.steps].sort((a, b) => a.rate - b.rate);
    const series = (p: Panel, y: (s: StepResult) => number | undefined) => {
      const pts = steps.map((s) => ({ s, x: xOf(p, s.rate), y: y(s) })).filter((q): q is { s: StepResult; x: number; y: number } => q.y !== undefined);
      if (pts.length > 1) out.push(`<polyline points="${pts.map((q) => `${q.x.toFixed(1)},${q.y.toFixed(1)}`).join(" ")}" fill="none" stroke="${c}" stroke-width="2"/>`);
      for (const q of pts) {
        out.push(`<circle cx="${q.x.toFixed(1)}" cy="${q.y.toFixed(1)}" r="4.5" fill="${q.s.keptUp ? c : "#fff"}" stroke="${c}" stroke-width="2"><title>${esc(`${r.label}: offered ${fmt(q.s.rate)}/s`)}</title></circle>`);
      }
    };
    series(left, (s) => (s.deliveredRate > 0 ? yRate(left, s.deliveredRate) : undefined));
    series(right, (s) => (Number.isFinite(s.latencyMs.p99) && s.latencyMs.p99 > 0 ? yMs(right, s.latencyMs.p99) : undefined));
  }
  out.push("</svg>");
  return out.join("\n") + "\n";
}
