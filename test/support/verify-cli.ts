// `kapsel-verify proof` as an auditor runs it: the verifier's installed bin (verifier/bin, which
// loads its build in verifier/dist) in a child process, on a proof bundle and optionally the
// payload the tenant kept, written to files in a temporary folder.
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { ROOT } from "./server.ts";

export interface VerifyRun {
  code: number;
  stdout: string;
  stderr: string;
}

export async function kapselVerifyProof(bundle: string, vkeys: readonly string[], payload?: Uint8Array): Promise<VerifyRun> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "kapsel-verify-proof-"));
  try {
    await writeFile(path.join(dir, "attempt.tlog-proof"), bundle);
    const args = [path.join(ROOT, "verifier/bin/kapsel-verify.js"), "proof", "attempt.tlog-proof", ...vkeys.flatMap((k) => ["--key", k])];
    if (payload !== undefined) {
      await writeFile(path.join(dir, "payload.bin"), payload);
      args.push("--payload", "payload.bin");
    }
    return await new Promise((resolve, reject) => {
      execFile(process.execPath, args, { cwd: dir, encoding: "utf8", timeout: 60_000 }, (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof (error as { code?: unknown }).code === "number" ? (error as { code: number }).code : undefined;
        if (code === undefined) reject(error);
        else resolve({ code, stdout, stderr });
      });
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
