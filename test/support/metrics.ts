// Reading a test server's Prometheus metrics from its own metrics listener.
import type { Server } from "../../server/src/main.ts";

/** The Prometheus text of `server`'s metrics listener; throws unless it answers 200. */
export async function scrape(server: Pick<Server, "metricsUrl">): Promise<string> {
  if (!server.metricsUrl) throw new Error("this server has no metrics listener");
  const res = await fetch(`${server.metricsUrl}/metrics`);
  if (res.status !== 200) throw new Error(`metrics listener answered ${res.status}`);
  return res.text();
}

/** Prometheus text → `name{k="v",…}` (labels sorted by name) → value. */
export function samples(text: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = [...(m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map(([, k, v]) => `${k}="${v}"`).sort();
    found.set(`${m[1]}{${labels.join(",")}}`, Number(m[3]));
  }
  return found;
}

/** One sample: `sample(text, "kapsel_delivery_circuits", { state: "open" })`; undefined when absent. */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const key = `${name}{${Object.entries(labels).map(([k, v]) => `${k}="${v}"`).sort().join(",")}}`;
  return samples(text).get(key);
}
