// A throwaway Kapsel with some history, for the screenshots and the console benchmark: `kapsel
// serve` on its own embedded Postgres in a temp folder, a loopback sink, a tenant with endpoints
// and delivered (and failed) events.
import { randomBytes } from "node:crypto";
import http from "node:http";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startKapsel, type KapselProcess } from "../../bench/_delivery-support.ts";
import { rpc } from "../../test/support/rpc.ts";

export interface DemoServer {
  kapsel: KapselProcess;
  adminToken: string;
  sinkUrl: string;
  close(): Promise<void>;
}

/** Starts Kapsel and a sink that answers `/ok` with 200, `/flaky` with 500 every third request, `/down` with 503. */
export async function startDemoServer(env: Record<string, string> = {}): Promise<DemoServer> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "kapsel-console-demo-"));
  // Embedded Postgres runs initdb as an unprivileged user when we are root: it must reach the folder.
  await chmod(dataDir, 0o755);
  const adminToken = `kadm_${randomBytes(24).toString("base64url")}`;
  let n = 0;
  const sink = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const flakyFail = req.url === "/flaky" && ++n % 3 === 0;
      const delay = 5 + Math.floor(Math.random() * 40);
      setTimeout(() => {
        if (req.url === "/down") res.writeHead(503).end("maintenance");
        else if (flakyFail) res.writeHead(500).end('{"error":"database timeout"}');
        else res.writeHead(200, { "content-type": "application/json" }).end('{"received":true}');
      }, delay);
    });
  });
  await new Promise<void>((r) => sink.listen(0, "127.0.0.1", r));
  const kapsel = await startKapsel({
    KAPSEL_DATA_DIR: dataDir,
    KAPSEL_ADMIN_TOKEN: adminToken,
    KAPSEL_ALLOW_PRIVATE_DESTINATIONS: "true",
    KAPSEL_CHECKPOINT_INTERVAL_MS: "200",
    KAPSEL_RETRY_BASE_MS: "200",
    KAPSEL_RETRY_CAP_MS: "1000",
    ...env,
  });
  return {
    kapsel,
    adminToken,
    sinkUrl: `http://127.0.0.1:${(sink.address() as { port: number }).port}`,
    async close() {
      await kapsel.stop();
      await new Promise((r) => sink.close(r));
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export async function call(url: string, method: string, body: unknown, token: string): Promise<any> {
  const r = await rpc(url, method, body, token);
  if (r.status !== 200) throw new Error(`${method} answered ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body;
}

/** Sends `count` events to an endpoint through IngestBatch, 1 000 a call. */
export async function ingestMany(url: string, apiKey: string, endpointId: string, count: number, type = "order.paid"): Promise<void> {
  for (let sent = 0; sent < count; sent += 1000) {
    const events = Array.from({ length: Math.min(1000, count - sent) }, (_, i) => ({
      endpointId,
      contentType: "application/json",
      payload: Buffer.from(JSON.stringify({ type, order: sent + i, amount: 1000 + ((sent + i) % 97) })).toString("base64"),
    }));
    await call(url, "kapsel.v1.IngestService/IngestBatch", { events }, apiKey);
  }
}
