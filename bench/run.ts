// Benchmark harness: `npm run bench -- <name> [options]` runs bench/<name>.ts, whose default export
// does the measuring and prints its figures; the words after a name, up to the next name, are its
// options (e.g. `npm run bench -- e2e --layout split`). With no name it lists what is available.
import { readdirSync } from "node:fs";

const here = new URL(".", import.meta.url);
const available = readdirSync(here)
  .filter((f) => f.endsWith(".ts") && f !== "run.ts" && !f.startsWith("_"))
  .map((f) => f.slice(0, -3));
const words = process.argv.slice(2);
if (words.length === 0) {
  console.log(`usage: npm run bench -- <${available.join("|")}> [options]`);
  process.exit(available.length ? 0 : 2);
}
const runs: { name: string; args: string[] }[] = [];
for (const word of words) {
  if (available.includes(word)) runs.push({ name: word, args: [] });
  else if (runs.length > 0 && word.startsWith("-")) runs.at(-1)!.args.push(word);
  else if (runs.length > 0 && runs.at(-1)!.args.at(-1)?.startsWith("--") && !runs.at(-1)!.args.at(-1)!.includes("=")) runs.at(-1)!.args.push(word);
  else {
    console.error(`unknown benchmark "${word}"; available: ${available.join(", ")}`);
    process.exit(2);
  }
}
for (const { name, args } of runs) {
  const mod = (await import(new URL(`${name}.ts`, here).href)) as { default: (args: string[]) => Promise<void> };
  await mod.default(args);
}
