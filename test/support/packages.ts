// The workspace's packages as a user gets them: packed with `npm pack` (each package's prepack
// builds it from a clean dist/) and installed from the tarballs into a fresh project outside the
// repository, where commands run with a chosen Node on PATH and none of the repository's tools.
import { spawn } from "node:child_process";
import { cp, mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { ROOT } from "./server.ts";

export interface PackedPackage {
  name: string;
  version: string;
  /** The tarball's absolute path. */
  file: string;
  /** Compressed bytes, as published. */
  size: number;
  unpackedSize: number;
  /** Paths inside the package (without the `package/` prefix). */
  files: string[];
}

export interface CommandResult {
  code: number | string;
  stdout: string;
  stderr: string;
}

/** The environment of a user's shell whose `node` is `nodeBinary`: no variables from the `npm test`
 * that runs us, and nothing from this repository's node_modules/.bin on PATH. */
export function userEnv(nodeBinary: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(npm_|VITEST|NODE_OPTIONS$|NODE_ENV$)/i.test(name)));
  const outside = (process.env.PATH ?? "").split(path.delimiter).filter((dir) => dir !== "" && !path.resolve(dir).startsWith(ROOT));
  return { ...env, PATH: [path.dirname(nodeBinary), ...outside].join(path.delimiter), ...extra };
}

/** Runs a command to its end (killed after `timeoutMs`); never rejects for a non-zero exit. */
export function run(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number }): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? signal ?? -1, stdout, stderr });
    });
  });
}

/** Fails with the command's output unless it exited 0. */
export function succeeded(what: string, result: CommandResult): string {
  if (result.code !== 0) throw new Error(`${what} exited with ${result.code}:\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

/** The binary of the newest Node `major`, which npx takes from the npm registry (cached after the
 * first time), as `npx -y node@20 file.mjs` would run it. Asked outside the repository, whose own
 * `node` devDependency npx would otherwise take for node@24. */
export async function nodeBinary(major: number): Promise<string> {
  const result = await run("npx", ["-y", `node@${major}`, "-p", "process.execPath"], { cwd: os.tmpdir(), env: userEnv(process.execPath), timeoutMs: 180_000 });
  return succeeded(`npx node@${major}`, result).trim();
}

interface WorkspacePackage {
  dir: string;
  name: string;
  /** Not published (the console: the server's tarball carries its build). */
  private: boolean;
}

async function workspacePackages(): Promise<WorkspacePackage[]> {
  const root = JSON.parse(await readFile(path.join(ROOT, "package.json"), "utf8")) as { workspaces: string[] };
  return Promise.all(root.workspaces.map(async (dir) => {
    const pkg = JSON.parse(await readFile(path.join(ROOT, dir, "package.json"), "utf8")) as { name: string; private?: boolean };
    return { dir, name: pkg.name, private: pkg.private === true };
  }));
}

/**
 * Packs every published workspace package into `destination`, the way a release would (`npm pack
 * -w …`). It works on a copy of the workspace: prepack deletes and rebuilds dist/, and the
 * real dist/ folders are in use by the other test files and the servers they start. The copy's
 * node_modules links to the real one's packages, except that the workspace packages are the copies.
 */
export async function packWorkspace(scratch: string, destination: string): Promise<PackedPackage[]> {
  const copy = path.join(scratch, "workspace");
  const packages = await workspacePackages();
  for (const file of ["package.json", "tsconfig.base.json", "LICENSE"]) await cp(path.join(ROOT, file), path.join(copy, file));
  for (const pkg of packages) {
    // A published package's dist/ is rebuilt by its prepack; a private one's build (the console's)
    // is taken as it is, for the packages that carry it.
    const skipped = pkg.private ? ["node_modules", "test"] : ["dist", "node_modules", "test"];
    await cp(path.join(ROOT, pkg.dir), path.join(copy, pkg.dir), {
      recursive: true,
      filter: (source) => !skipped.includes(path.basename(source)) && !source.endsWith(".tsbuildinfo"),
    });
  }
  const ownNames = new Set(packages.map((p) => p.name.split("/")[0]!));
  await mkdir(path.join(copy, "node_modules"));
  for (const entry of await readdir(path.join(ROOT, "node_modules"))) {
    if (!ownNames.has(entry)) await symlink(path.join(ROOT, "node_modules", entry), path.join(copy, "node_modules", entry));
  }
  for (const { dir, name } of packages) {
    await mkdir(path.dirname(path.join(copy, "node_modules", name)), { recursive: true });
    await symlink(path.join(copy, dir), path.join(copy, "node_modules", name));
  }
  await mkdir(destination, { recursive: true });
  const published = packages.filter((p) => !p.private).flatMap((p) => ["-w", p.dir]);
  const result = await run("npm", ["pack", ...published, "--json", "--pack-destination", destination], { cwd: copy, env: userEnv(process.execPath), timeoutMs: 240_000 });
  const packed = JSON.parse(succeeded("npm pack", result)) as { name: string; version: string; filename: string; size: number; unpackedSize: number; files: { path: string }[] }[];
  return packed.map((p) => ({
    name: p.name,
    version: p.version,
    file: path.join(destination, p.filename),
    size: p.size,
    unpackedSize: p.unpackedSize,
    files: p.files.map((f) => f.path),
  }));
}

/** A new npm project in `dir` (an ES module package) with the tarballs installed as dependencies. */
export async function installTarballs(dir: string, packed: PackedPackage[], nodeBinaryPath: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, "package.json"), `${JSON.stringify({ name: "kapsel-user", private: true, type: "module" }, null, 2)}\n`);
  const result = await run("npm", ["install", "--no-audit", "--no-fund", ...packed.map((p) => p.file)], { cwd: dir, env: userEnv(nodeBinaryPath), timeoutMs: 300_000 });
  succeeded("npm install", result);
}
