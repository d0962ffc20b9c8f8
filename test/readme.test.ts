// The README's shell blocks are run as they are written, in order, in one bash session against a
// fresh server, so the README can never drift from what Kapsel does. The one block not run here is
// the install itself (`npm ci && npm start`), which CI and ../shared/scripts/fresh-clone-check.sh
// run on a fresh clone; the test starts the same server the way `npm start` would, in a folder of
// its own.
import { spawn } from "node:child_process";
import { chmod, mkdtemp, readFile, symlink } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../server/src/free-port.ts";
import { ROOT, spawnServer, type ServerProcess } from "./support/server.ts";

const INSTALL = "npm ci && npm start";

/** The ```sh blocks of a Markdown text, in order. */
export function shellBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```(?:sh|bash|shell)\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

let dir: string;
let server: ServerProcess;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "kapsel-readme-"));
  // The embedded Postgres runs as the `postgres` user when we are root; it must reach its folder.
  await chmod(dir, 0o755);
  // `npx kapsel`, `npx kapsel-verify` and `npx kapsel-witness` as a project with Kapsel installed has them.
  await symlink(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
  server = await spawnServer({
    KAPSEL_DATA_DIR: path.join(dir, ".kapsel"),
    KAPSEL_ADMIN_TOKEN: "", // generated into .kapsel/admin-token, as on a first `npm start`
    KAPSEL_MASTER_KEY: "", // generated into .kapsel/master-key, which the blocks' `npx kapsel` then reads too
    KAPSEL_ALLOW_PRIVATE_DESTINATIONS: "true",
  });
});
afterAll(async () => {
  await server?.stop();
});

describe("README.md", () => {
  it("every shell block runs as written, in order, against a fresh server", async () => {
    const blocks = shellBlocks(await readFile(path.join(ROOT, "README.md"), "utf8"));
    expect(blocks[0]!.trim()).toBe(INSTALL);
    const [receiverPort, witnessPort] = [await freePort(), await freePort()];
    // README_TRACE=1 prints each command and its output as it runs (to find the step that fails).
    const trace = process.env.README_TRACE !== undefined;
    const script = [trace ? "set -x" : "", "set -euo pipefail", ...blocks.slice(1)].join("\n");
    const result = await new Promise<{ code: number | null; out: string }>((resolve, reject) => {
      const child = spawn("bash", ["-c", script], {
        cwd: dir,
        env: {
          PATH: process.env.PATH,
          HOME: process.env.HOME,
          KAPSEL: server.url,
          KAPSEL_DATA_DIR: path.join(dir, ".kapsel"),
          RECEIVER_PORT: String(receiverPort),
          WITNESS_DIR: path.join(dir, "witness"),
          WITNESS_PORT: String(witnessPort),
        },
        stdio: ["ignore", "pipe", trace ? "inherit" : "pipe"],
        // Its own process group: what the blocks start in the background (the receiver, a witness
        // under npx) is stopped with it.
        detached: true,
      });
      let out = "";
      child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
      child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
      if (trace) child.stdout!.on("data", (d: Buffer) => process.stderr.write(d));
      child.on("error", reject);
      // When the script ends, what it left running (a witness under npx holds our pipes) is stopped.
      child.on("exit", () => {
        try {
          process.kill(-child.pid!, "SIGTERM");
        } catch {
          // the group has ended already
        }
      });
      child.on("close", (code) => resolve({ code, out }));
    });
    expect(result.code, result.out).toBe(0);
    expect(result.out).toMatch(/VERIFIED|verified/);
    expect(result.out).toMatch(/"eventIds":\["[^"]+","[^"]+","[^"]+"\]/);
    expect(result.out).toMatch(/"event_ids":\["[^"]+","[^"]+"\]/);
    expect(result.out).toMatch(/^following kapsel\.localhost\/log from size \d+/m);
  }, 180_000);
});
