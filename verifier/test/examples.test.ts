// Keeps the auditor README truthful: the checked-in example files are exactly what the example
// generator produces, and every command in the README's console blocks prints what the README
// shows, with the matching exit status.
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { NODE_20, VERIFIER_DIR, buildVerifier, runCli } from "./support/cli.ts";
import { buildExamples } from "./support/examples.ts";

const readme = readFileSync(`${VERIFIER_DIR}README.md`, "utf8");

interface Transcript {
  readonly args: string[];
  readonly output: string;
}

/** `$ kapsel-verify …` lines of ```console blocks, each with the output lines after it. */
function transcripts(): Transcript[] {
  const found: Transcript[] = [];
  for (const block of readme.matchAll(/```console\n([\s\S]*?)```/g)) {
    for (const chunk of block[1]!.split(/^(?=\$ )/m)) {
      const [command, ...output] = chunk.replace(/\n$/, "").split("\n");
      const match = /^\$ kapsel-verify (.*)$/.exec(command!);
      if (match === null) throw new Error(`unexpected console line in README: ${command}`);
      found.push({ args: match[1]!.split(" "), output: output.join("\n") });
    }
  }
  return found;
}

beforeAll(async () => {
  await buildVerifier();
});

describe("verifier/examples", () => {
  it.each([...buildExamples()])("%s is what the example generator produces", (name, content) => {
    expect(readFileSync(`${VERIFIER_DIR}examples/${name}`, "utf8")).toBe(content);
  });
});

describe("the README's worked example", () => {
  it("has the commands this test replays", () => {
    expect(transcripts().map((t) => t.args[0])).toEqual(["proof", "proof", "checkpoint", "consistency", "checkpoint", "checkpoint"]);
  });

  it.each(transcripts().map((t) => [t.args.join(" "), t] as const))("kapsel-verify %s", (_, { args, output }) => {
    const run = runCli(NODE_20, args);
    expect(run.stdout + run.stderr).toBe(`${output}\n`);
    expect(run.status).toBe(output.startsWith("NOT VERIFIED") ? 1 : 0);
  });

  it("shows the example bundle as it is on disk", () => {
    const shown = /```\n(c2sp\.org\/tlog-proof@v1\n[\s\S]*?)```/.exec(readme)![1]!.split("\n");
    const actual = buildExamples().get("attempt.tlog-proof")!.split("\n");
    expect(shown).toHaveLength(actual.length);
    shown.forEach((line, i) => {
      if (line.endsWith("…")) expect(actual[i]!.startsWith(line.slice(0, -1))).toBe(true);
      else expect(line).toBe(actual[i]);
    });
  });

  it("shows the example vkey", () => {
    const vkey = buildExamples().get("log.vkey")!.split("\n")[1]!;
    expect(readme).toContain(`\n${vkey}\n└─ name = log origin ─┘`);
  });
});
