// The packages as a user installs them: every workspace package packed with `npm pack` (its
// prepack builds it), the tarballs installed into a new project outside the repository, and used
// there — the packed server started with `npx kapsel serve` on embedded Postgres under the oldest
// Node it supports and called with the packed SDK, the SDK imported from plain ESM on Node 20, 22
// and 24 and type-checked from TypeScript with the settings of `tsc --init`, and `kapsel-verify`
// run on the proof bundle the packed server made. Packing and installing happen once for all.
import { spawn, type ChildProcess } from "node:child_process";
import { chmod, copyFile, mkdtemp, readdir, readFile, readlink, realpath, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../server/src/free-port.ts";
import { installTarballs, nodeBinary, packWorkspace, run, succeeded, userEnv, type PackedPackage } from "./support/packages.ts";
import { ROOT, waitUntilReady } from "./support/server.ts";
import { startSink, type Sink } from "./support/sink.ts";

/** The Node versions the SDK and the verifier support (their engines), and the server's oldest. */
const NODE_MAJORS = [20, 22, 24] as const;
const SERVER_NODE = 22;
const PAYLOAD = JSON.stringify({ type: "order.paid", order: 42 });
const FIXTURES = path.join(ROOT, "test/packaging");
const TSC = path.join(ROOT, "node_modules/typescript/bin/tsc");

interface FirstDelivery {
  apiKey: string;
  endpointId: string;
  signingSecret: string;
  eventId: string;
  delivered: boolean;
  attemptId: string;
  vkey: string;
  payloadVerified: boolean;
}

interface PackedServer {
  url: string;
  child: ChildProcess;
  output(): string;
  exited: Promise<number | string>;
}

let scratch: string;
let app: string;
let packed: PackedPackage[];
const node = new Map<number, string>();
let sink: Sink;
let server: PackedServer | undefined;
let first: FirstDelivery;
let proofFile: string;

/** `npx kapsel serve` in the user's project, in its own process group (as a terminal would run it),
 * on a free port, with the default data folder `.kapsel` there. */
async function startPackedServer(): Promise<PackedServer> {
  const port = await freePort();
  const env = userEnv(node.get(SERVER_NODE)!, {
    KAPSEL_HOST: "127.0.0.1",
    KAPSEL_PORT: String(port),
    KAPSEL_ALLOW_PRIVATE_DESTINATIONS: "true",
    KAPSEL_CHECKPOINT_INTERVAL_MS: "200",
    // Not the default metrics port: another test (or session) on this machine may hold it.
    KAPSEL_METRICS_LISTEN: "127.0.0.1:0",
  });
  const child = spawn("npx", ["kapsel", "serve"], { cwd: app, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | string>((resolve) => child.on("exit", (code, signal) => resolve(code ?? signal ?? -1)));
  const started = { url: `http://127.0.0.1:${port}`, child, output: () => output, exited };
  try {
    await waitUntilReady(started.url, child, started.output, 120_000);
  } catch (err) {
    process.kill(-child.pid!, "SIGKILL");
    throw err;
  }
  return started;
}

/** The executables of the processes in a process group (Linux /proc). */
async function executablesInGroup(pgid: number): Promise<string[]> {
  const found: string[] = [];
  for (const pid of (await readdir("/proc")).filter((name) => /^\d+$/.test(name))) {
    try {
      const stat = await readFile(`/proc/${pid}/stat`, "utf8");
      // Fields after the command name (which may hold spaces): state, ppid, pgrp, …
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]) === pgid) found.push(await readlink(`/proc/${pid}/exe`));
    } catch {
      // the process ended meanwhile
    }
  }
  return found;
}

/** Sends SIGTERM to the server's process group (npx, the shell, node, Postgres) and waits for all
 * of them to be gone. */
async function stopPackedServer(s: PackedServer): Promise<void> {
  process.kill(-s.child.pid!, "SIGTERM");
  await s.exited;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      process.kill(-s.child.pid!, 0);
    } catch {
      return;
    }
    if (Date.now() > deadline) {
      process.kill(-s.child.pid!, "SIGKILL");
      throw new Error(`the packed server's processes outlived it:\n${s.output()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), "kapsel-packaging-"));
  // Embedded Postgres runs as its own system user when we are root: it must reach the data folder.
  await chmod(scratch, 0o755);
  app = path.join(scratch, "app");
  const started = Date.now();
  const seconds = () => ((Date.now() - started) / 1000).toFixed(0);
  const phases: string[] = [];
  const [tarballs, binaries] = await Promise.all([
    packWorkspace(scratch, path.join(scratch, "tarballs")),
    Promise.all(NODE_MAJORS.map(nodeBinary)),
  ]);
  packed = tarballs;
  NODE_MAJORS.forEach((major, i) => node.set(major, binaries[i]!));
  phases.push(`packed and Node ${NODE_MAJORS.join("/")} fetched after ${seconds()} s`);
  await installTarballs(app, packed, node.get(24)!);
  phases.push(`installed after ${seconds()} s`);
  for (const fixture of await readdir(FIXTURES)) await copyFile(path.join(FIXTURES, fixture), path.join(app, fixture));

  sink = await startSink();
  server = await startPackedServer();
  phases.push(`server ready after ${seconds()} s`);
  const adminToken = (await readFile(path.join(app, ".kapsel/admin-token"), "utf8")).trim();
  proofFile = path.join(app, "attempt.tlog-proof");
  const delivery = await run(node.get(24)!, ["first-delivery.mjs", server.url, adminToken, sink.url, proofFile], { cwd: app, env: userEnv(node.get(24)!), timeoutMs: 90_000 });
  first = JSON.parse(succeeded("first-delivery.mjs", delivery)) as FirstDelivery;
  phases.push(`first delivery proven after ${seconds()} s`);
  console.log(`packaging set-up: ${phases.join(", ")}`);
}, 900_000);

afterAll(async () => {
  if (server) await stopPackedServer(server);
  await sink?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe("the published tarballs", () => {
  it("print their sizes", () => {
    const rows = packed.map((p) => `${p.name.padEnd(18)} ${(p.size / 1024).toFixed(1).padStart(6)} KiB packed  ${(p.unpackedSize / 1024).toFixed(1).padStart(6)} KiB unpacked  ${p.files.length} files`);
    console.log(`npm pack:\n${rows.join("\n")}`);
    expect(packed.map((p) => p.name).sort()).toEqual(["@kapsel/contracts", "@kapsel/sdk", "@kapsel/verify", "@kapsel/witness", "kapsel"]);
  });

  it("hold the built JavaScript, the LICENSE and a README, and no sources or tests", () => {
    for (const p of packed) {
      expect(p.files, p.name).toEqual(expect.arrayContaining(["package.json", "LICENSE", "README.md"]));
      expect(p.files.filter((f) => /^(src|test)\//.test(f) || f.endsWith(".ts") && !f.endsWith(".d.ts")), p.name).toEqual([]);
      expect(p.files.filter((f) => f.startsWith("dist/") && f.endsWith(".js")).length, p.name).toBeGreaterThan(0);
    }
  });

  it("ship type declarations beside every module of the libraries", () => {
    // The server and the witness are commands, not libraries: nothing imports them.
    for (const p of packed.filter((x) => x.name.startsWith("@kapsel/") && x.name !== "@kapsel/witness")) {
      const modules = p.files.filter((f) => f.startsWith("dist/") && f.endsWith(".js"));
      expect(modules.filter((f) => !p.files.includes(f.replace(/\.js$/, ".d.ts"))), p.name).toEqual([]);
    }
  });

  it("point every export and bin at a file in the tarball, declare Apache-2.0, the repository and engines, and pin each other exactly", async () => {
    const licence = await readFile(path.join(ROOT, "LICENSE"), "utf8");
    const versions = new Map(packed.map((p) => [p.name, p.version]));
    for (const p of packed) {
      const dir = path.join(app, "node_modules", p.name);
      const manifest = JSON.parse(await readFile(path.join(dir, "package.json"), "utf8"));
      const targets = [
        ...Object.values<Record<string, string> | string>(manifest.exports ?? {}).flatMap((t) => (typeof t === "string" ? [t] : Object.values(t))),
        ...Object.values<string>(manifest.bin ?? {}),
      ];
      expect(targets.filter((t) => !p.files.includes(path.normalize(t))), p.name).toEqual([]);
      expect([manifest.license, manifest.repository?.url, manifest.repository?.directory, manifest.engines?.node], p.name).toEqual([
        "Apache-2.0",
        expect.stringMatching(/^git\+https:\/\//),
        expect.any(String),
        expect.stringMatching(/^>=\d/),
      ]);
      expect(await readFile(path.join(dir, "LICENSE"), "utf8"), p.name).toBe(licence);
      const ownDependencies = Object.entries<string>(manifest.dependencies ?? {}).filter(([name]) => versions.has(name));
      expect(ownDependencies.filter(([name, range]) => range !== versions.get(name)), p.name).toEqual([]);
    }
  });

  it("give the server its migrations and its command", async () => {
    const kapsel = packed.find((p) => p.name === "kapsel")!;
    const migrations = (await readdir(path.join(ROOT, "server/migrations"))).map((f) => `migrations/${f}`);
    expect(kapsel.files.filter((f) => f.startsWith("migrations/")).sort()).toEqual(migrations.sort());
    expect(kapsel.files).toContain("bin/kapsel.js");
    // The console's build rides along, so an installed server serves /console/ too.
    expect(kapsel.files).toContain("console/index.html");
    expect(kapsel.files.some((f) => /^console\/assets\/.+\.js$/.test(f))).toBe(true);
  });
});

describe("in a new project with the tarballs installed", () => {
  it(`npx kapsel serve runs the packed server on Node ${SERVER_NODE} and embedded Postgres in the project's .kapsel folder, and it delivers and proves an event`, async () => {
    expect(existsSync(path.join(app, ".kapsel/pg/PG_VERSION"))).toBe(true);
    expect(await executablesInGroup(server!.child.pid!)).toContain(await realpath(node.get(SERVER_NODE)!));
    expect(server!.output()).toContain('"msg":"kapsel listening"');
    expect([first.delivered, first.payloadVerified]).toEqual([true, true]);
    expect(sink.forEvent(first.eventId)).toHaveLength(1);
    const consolePage = await fetch(`${server!.url}/console/events`);
    expect([consolePage.status, (await consolePage.text()).includes("<div id=\"root\">")]).toEqual([200, true]);
  });

  it(`the SDK works from plain ESM on Node ${NODE_MAJORS.join(", ")}: gRPC and Connect calls, errors, webhook and proof verification`, async () => {
    const received = sink.forEvent(first.eventId)[0]!;
    const input = path.join(app, "sdk-on-node.json");
    await writeFile(input, JSON.stringify({
      ...first,
      baseUrl: server!.url,
      proofFile,
      webhook: {
        headers: Object.fromEntries(["webhook-id", "webhook-timestamp", "webhook-signature"].map((h) => [h, String(received.headers[h])])),
        body: received.body.toString("utf8"),
      },
    }));
    const results = await Promise.all(NODE_MAJORS.map(async (major) => {
      const result = await run(node.get(major)!, ["sdk-on-node.mjs", input], { cwd: app, env: userEnv(node.get(major)!), timeoutMs: 60_000 });
      return JSON.parse(succeeded(`sdk-on-node.mjs on Node ${major}`, result));
    }));
    expect(results.map((r) => Number(/^v(\d+)\./.exec(r.node)![1]))).toEqual([...NODE_MAJORS]);
    for (const r of results) {
      expect(r, r.node).toEqual({
        node: r.node,
        duplicateOfFirst: true,
        unknownEvent: { code: "NotFound", kapselCode: "E2002" },
        webhook: true,
        tampered: "no_matching_signature",
        proof: "verified",
      });
    }
  });

  it("a TypeScript project type-checks against @kapsel/sdk and @kapsel/sdk/web with tsc --init's settings, and with bundler resolution", async () => {
    const options = { cwd: app, env: userEnv(node.get(24)!), timeoutMs: 120_000 };
    succeeded("tsc --init", await run(node.get(24)!, [TSC, "--init"], options));
    const nodenext = await run(node.get(24)!, [TSC, "--noEmit", "-p", "."], options);
    const bundler = await run(node.get(24)!, [TSC, "--noEmit", "-p", ".", "--module", "preserve", "--moduleResolution", "bundler"], options);
    expect([nodenext.code, nodenext.stdout]).toEqual([0, ""]);
    expect([bundler.code, bundler.stdout]).toEqual([0, ""]);
  });

  it("npx kapsel-verify checks the packed server's proof bundle, and rejects it for another payload", async () => {
    const options = { cwd: app, env: userEnv(node.get(24)!), timeoutMs: 60_000 };
    await writeFile(path.join(app, "payload.json"), PAYLOAD);
    await writeFile(path.join(app, "other.json"), `${PAYLOAD}\n`);
    const ok = await run("npx", ["kapsel-verify", "proof", proofFile, "--key", first.vkey, "--payload", "payload.json"], options);
    expect([ok.code, ok.stdout]).toEqual([0, expect.stringContaining(`attempt id ${first.attemptId}`)]);
    expect(ok.stdout).toMatch(/payload\s+matches payload_sha256/);
    const other = await run("npx", ["kapsel-verify", "proof", proofFile, "--key", first.vkey, "--payload", "other.json"], options);
    expect([other.code, other.stdout + other.stderr]).toEqual([1, expect.stringContaining("PAYLOAD_MISMATCH")]);
  });

  it("the packed server stops on SIGTERM, and so does its Postgres", async () => {
    const s = server!;
    server = undefined;
    await stopPackedServer(s);
    expect(s.output()).toContain('"msg":"stopped"');
    expect(existsSync(path.join(app, ".kapsel/pg/postmaster.pid"))).toBe(false);
  });
});
