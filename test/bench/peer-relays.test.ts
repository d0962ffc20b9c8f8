// The peer relays of `npm run bench -- e2e` must be correct relays, or the comparison means
// nothing: an event answered 202 is committed (it survives the relay being killed), a failed
// delivery is retried by the queue library, and each event reaches the destination.
import { spawn, type ChildProcess } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { freePort } from "../../server/src/free-port.ts";
import { eventBody } from "../../bench/_e2e-load.ts";
import { createTestDatabase } from "../support/database.ts";
import { ROOT, waitUntilReady } from "../support/server.ts";

/** A destination that answers `status` and records every body it was sent. */
async function destination(): Promise<{ url: string; status: number; bodies: string[]; close(): void }> {
  const state = { status: 503, bodies: [] as string[] };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      state.bodies.push(Buffer.concat(chunks).toString());
      res.writeHead(state.status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return Object.assign(state, {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    close: () => server.close(),
  });
}

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
});

async function startRelay(file: string, env: Record<string, string>): Promise<string> {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(ROOT, file)], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env, PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  await waitUntilReady(url, child, () => output, 60_000);
  return url;
}

async function until(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.each([
  ["graphile-worker", "bench/peers/graphile-relay.ts"],
  ["pg-boss", "bench/peers/pgboss-relay.ts"],
])("the %s relay", (_name, file) => {
  it("keeps acknowledged events through a kill and delivers them once the destination recovers", async () => {
    const dest = await destination();
    const env = { DATABASE_URL: await createTestDatabase({ migrated: false }), DESTINATION_URL: dest.url };
    try {
      let relay = await startRelay(file, env);
      const sent = [0, 1, 2, 3, 4].map((seq) => eventBody(Date.now(), 1, seq).toString());
      for (const body of sent) {
        const res = await fetch(`${relay}/ingest`, { method: "POST", headers: { "content-type": "application/json" }, body });
        expect(res.status).toBe(202);
      }
      // Every event is tried and refused (503), then the relay dies without a goodbye.
      await until(() => new Set(dest.bodies).size === sent.length, 30_000);
      await new Promise((r) => setTimeout(r, 1_000)); // let the failures be recorded
      children.pop()!.kill("SIGKILL");

      dest.status = 200;
      const refusedSoFar = dest.bodies.length;
      relay = await startRelay(file, env);
      await until(() => new Set(dest.bodies.slice(refusedSoFar)).size === sent.length, 45_000);
      expect(new Set(dest.bodies.slice(refusedSoFar))).toEqual(new Set(sent));
    } finally {
      dest.close();
    }
  }, 120_000);
});
