// Summarises a V8 .cpuprofile (from `node --cpu-prof`) by self time per function, for the
// attestation benchmark's "where does the time go" report.
import { readFile } from "node:fs/promises";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileLine {
  name: string;
  selfMs: number;
  share: number;
}

/** The `top` functions by self time, with the share of all sampled time (idle excluded). */
export async function topSelfTime(file: string, top = 15): Promise<{ busyMs: number; lines: ProfileLine[] }> {
  const profile = JSON.parse(await readFile(file, "utf8")) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) selfUs.set(samples[i]!, (selfUs.get(samples[i]!) ?? 0) + (deltas[i + 1] ?? 0));
  const totals = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of selfUs) {
    const f = byId.get(id)!.callFrame;
    if (f.functionName === "(idle)" || f.functionName === "(program)") continue;
    const where = f.url ? `${f.url.replace(/^.*\/(node_modules|server|bench|verifier)\//, "$1/")}:${f.lineNumber + 1}` : "";
    const name = `${f.functionName || "(anonymous)"} ${where}`.trim();
    totals.set(name, (totals.get(name) ?? 0) + us);
    busy += us;
  }
  const lines = [...totals.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, us]) => ({ name, selfMs: us / 1000, share: us / busy }));
  return { busyMs: busy / 1000, lines };
}

/**
 * Inclusive time (self plus callees) of the functions whose location matches `where`, each sample
 * counted once per function however deep it recurses: "how long was the CPU inside X".
 */
export async function inclusiveTime(file: string, where: RegExp, top = 15): Promise<ProfileLine[]> {
  const profile = JSON.parse(await readFile(file, "utf8")) as Profile;
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  const totals = new Map<string, number>();
  let busy = 0;
  for (let i = 0; i < samples.length; i++) {
    const us = deltas[i + 1] ?? 0;
    const leaf = byId.get(samples[i]!)!.callFrame.functionName;
    if (leaf === "(idle)" || leaf === "(program)") continue;
    busy += us;
    const seen = new Set<string>();
    for (let id: number | undefined = samples[i]; id !== undefined; id = parent.get(id)) {
      const f = byId.get(id)!.callFrame;
      if (!where.test(f.url)) continue;
      const name = `${f.functionName || "(anonymous)"} ${f.url.replace(/^.*\/(server|bench)\//, "$1/")}:${f.lineNumber + 1}`;
      if (seen.has(name)) continue;
      seen.add(name);
      totals.set(name, (totals.get(name) ?? 0) + us);
    }
  }
  return [...totals.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, us]) => ({ name, selfMs: us / 1000, share: us / busy }));
}
