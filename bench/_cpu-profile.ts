// Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time by package / our file, the
// functions with the most self time, and the inclusive time of our own functions.

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Where a frame belongs: a package, one of our files, a Node internal, or a V8 pseudo-frame. */
function bucketOf(frame: CallFrame, root: string): string {
  const url = frame.url.replace(/^file:\/\//, "");
  if (url === "") return frame.functionName.startsWith("(") ? frame.functionName : "(native)";
  if (url.startsWith("node:")) return `node:${url.slice(5).split("/")[0]}`;
  const nm = url.lastIndexOf("node_modules/");
  if (nm !== -1) {
    const rest = url.slice(nm + "node_modules/".length).split("/");
    return rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  return url.startsWith(root) ? url.slice(root.length) : url;
}

function label(frame: CallFrame, root: string): string {
  return `${frame.functionName || "(anonymous)"} ${bucketOf(frame, root)}:${frame.lineNumber + 1}`;
}

export function summariseCpuProfile(profile: CpuProfile, root: string, top = 25): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const totalUs = [...self.values()].reduce((a, b) => a + b, 0);
  const idleUs = [...self.entries()].filter(([id]) => byId.get(id)!.callFrame.functionName === "(idle)").reduce((a, [, v]) => a + v, 0);
  const busyUs = totalUs - idleUs;
  const pct = (us: number) => `${((100 * us) / busyUs).toFixed(1).padStart(5)}%`;

  const buckets = new Map<string, number>();
  const functions = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const [id, us] of self) {
    const node = byId.get(id)!;
    if (node.callFrame.functionName === "(idle)") continue;
    const b = bucketOf(node.callFrame, root);
    buckets.set(b, (buckets.get(b) ?? 0) + us);
    const l = label(node.callFrame, root);
    functions.set(l, (functions.get(l) ?? 0) + us);
    // Inclusive time of our own functions: charge each sample once to every distinct one of our
    // frames on its stack.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      const ours = !f.url.includes("node_modules") && f.url.startsWith("file://") && f.url.includes(root);
      if (!ours) continue;
      const fl = label(f, root);
      if (seen.has(fl)) continue;
      seen.add(fl);
      inclusive.set(fl, (inclusive.get(fl) ?? 0) + us);
    }
  }
  const table = (m: Map<string, number>, n: number) =>
    [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => `  ${pct(v)}  ${k}`).join("\n");
  return [
    `busy ${(busyUs / 1e6).toFixed(1)} s of ${(totalUs / 1e6).toFixed(1)} s sampled (percentages are of busy time)`,
    "self time by package / file:",
    table(buckets, 20),
    `top ${top} functions by self time:`,
    table(functions, top),
    "our functions by inclusive time:",
    table(inclusive, 20),
  ].join("\n");
}
