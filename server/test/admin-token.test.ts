// A generated admin token is printed once, and only to an interactive terminal: the output of a
// service manager, a container or CI is collected into logs that more people read than the data
// folder, so there the server says where the file is instead. (The database is unreachable here
// on purpose: the token is made before the database is opened, and the process then stops.)
import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runCli } from "../../test/support/kapsel-cli.ts";
import { TEST_MASTER_KEY } from "../../test/support/secrets.ts";
import { ROOT } from "../../test/support/server.ts";

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function dataDir(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), "kapsel-admin-token-"));
  dirs.push(d);
  return d;
}

const NO_DATABASE = { DATABASE_URL: "postgres://127.0.0.1:1/none", KAPSEL_MASTER_KEY: TEST_MASTER_KEY, KAPSEL_PORT: "0", KAPSEL_LOG_LEVEL: "info" };

describe("the generated admin token", () => {
  it("with stderr not a terminal: written to the 0600 file, never to the output, which names the file", async () => {
    const dir = await dataDir();
    const r = await runCli(["serve"], { ...NO_DATABASE, KAPSEL_DATA_DIR: dir });
    const token = (await readFile(path.join(dir, "admin-token"), "utf8")).trim();
    expect(token).toMatch(/^kadm_/);
    expect(r.stdout + r.stderr).not.toContain(token);
    expect(r.stderr).toContain(`Kapsel admin token: in ${path.join(dir, "admin-token")}`);
  });

  it("on a terminal: printed once", async (ctx) => {
    // util-linux `script` runs the command on a pseudo-terminal.
    if (spawnSync("script", ["--version"]).status !== 0) ctx.skip("no `script` command to provide a terminal");
    const dir = await dataDir();
    const command = `${JSON.stringify(process.execPath)} ${JSON.stringify(path.join(ROOT, "server/src/cli.ts"))} serve`;
    const output = await new Promise<string>((resolve) => {
      const child = spawn("script", ["-qefc", command, "/dev/null"], {
        env: { PATH: process.env.PATH, HOME: process.env.HOME, TERM: "dumb", KAPSEL_METRICS_LISTEN: "off", ...NO_DATABASE, KAPSEL_DATA_DIR: dir },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let text = "";
      child.stdout.on("data", (d: Buffer) => (text += d.toString()));
      child.stderr.on("data", (d: Buffer) => (text += d.toString()));
      child.on("close", () => resolve(text));
    });
    const token = (await readFile(path.join(dir, "admin-token"), "utf8")).trim();
    expect(output).toContain(`Kapsel admin token: ${token}`);
  });
});
