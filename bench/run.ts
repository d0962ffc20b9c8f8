// Benchmark harness: `npm run bench -- <name>` runs bench/<name>.ts, whose default export does the
// measuring and prints its figures. With no name it lists what is available.
import { readdirSync } from "node:fs";

const here = new URL(".", import.meta.url);
const available = readdirSync(here)
  .filter((f) => f.endsWith(".ts") && f !== "run.ts" && !f.startsWith("_"))
  .map((f) => f.slice(0, -3));
const names = process.argv.slice(2);
if (names.length === 0) {
  console.log(`usage: npm run bench -- <${available.join("|")}>`);
  process.exit(available.length ? 0 : 2);
}
for (const name of names) {
  if (!available.includes(name)) {
    console.error(`unknown benchmark "${name}"; available: ${available.join(", ")}`);
    process.exit(2);
  }
  const mod = (await import(new URL(`${name}.ts`, here).href)) as { default: () => Promise<void> };
  await mod.default();
}
