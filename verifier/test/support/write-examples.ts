// Rewrites verifier/examples/ from examples.ts: `node verifier/test/support/write-examples.ts`.
import { mkdirSync, writeFileSync } from "node:fs";
import { buildExamples } from "./examples.ts";

const dir = new URL("../../examples/", import.meta.url);
mkdirSync(dir, { recursive: true });
for (const [name, content] of buildExamples()) writeFileSync(new URL(name, dir), content);
console.log(`wrote ${[...buildExamples().keys()].join(", ")} to ${dir.pathname}`);
