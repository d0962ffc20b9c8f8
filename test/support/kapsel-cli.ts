// Runs the `kapsel` command line (server/src/cli.ts) as a child process with exactly the given
// environment (plus the tests' master key, which KAPSEL_MASTER_KEY: "" takes away), the way an
// operator's shell or a container runtime would.
import { spawn } from "node:child_process";
import path from "node:path";
import { TEST_MASTER_KEY } from "./secrets.ts";
import { ROOT } from "./server.ts";

export interface CliResult {
  code: number | string;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, "server/src/cli.ts"), ...args], {
      cwd: ROOT,
      // Off unless a test asks: parallel test files must not race for the default metrics port.
      env: { PATH: process.env.PATH, HOME: process.env.HOME, KAPSEL_METRICS_LISTEN: "off", KAPSEL_MASTER_KEY: TEST_MASTER_KEY, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code: code ?? signal ?? -1, stdout, stderr }));
  });
}
