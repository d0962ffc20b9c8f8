// Experiment: pure refusal cost. Server in this process (max in flight 1, messages locked), load generator as a child.
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import os from "node:os"; import path from "node:path";
import pg from "pg";
import { startEmbeddedPostgres } from "../server/src/db/embedded.ts";
import { loadConfig } from "../server/src/config.ts";
import { startServer } from "../server/src/main.ts";
import { createLogger } from "../server/src/logger.ts";
import { createTenant, rpc } from "../test/support/rpc.ts";
const log = createLogger("warn");
const dir = mkdtempSync(path.join(os.tmpdir(), "refuse-")); (await import("node:fs")).chmodSync(dir, 0o755);
const db = await startEmbeddedPostgres({ dataDir: dir, log });
const config = loadConfig({ KAPSEL_PORT: "0", KAPSEL_HOST: "127.0.0.1", KAPSEL_ADMIN_TOKEN: "admin-token-123456789012345", KAPSEL_DATA_DIR: path.join(dir, "k"),
  KAPSEL_ALLOW_PRIVATE_DESTINATIONS: "true", KAPSEL_METRICS_LISTEN: "off", KAPSEL_MASTER_KEY: Buffer.alloc(32, 7).toString("base64"), DATABASE_URL: db.url,
  KAPSEL_DELIVERY_ENABLED: "false", KAPSEL_INGEST_MAX_IN_FLIGHT: "1", KAPSEL_LOG_LEVEL: process.env.LVL ?? "warn" });
const server = await startServer(config, createLogger(process.env.LVL ?? "warn"));
const tenant = await createTenant(server.url, "admin-token-123456789012345", "t");
const ep = await rpc(server.url, "CreateEndpoint", { url: "https://93.184.216.34/" }, tenant.apiKey);
const endpointId = (ep.body as { endpoint: { id: string } }).endpoint.id;
const c = new pg.Client({ connectionString: db.url }); await c.connect();
await c.query("BEGIN"); await c.query("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE");
const job = { mode: "gateway", url: server.url, endpointId, apiKey: tenant.apiKey, connections: Number(process.env.CONNS ?? 256), payloadBytes: 1024, warmupMs: 1000, durationMs: 10000, keyPrefix: "r" };
const cpu0 = process.cpuUsage(); const t0 = performance.now();
const out = await new Promise<string>((resolve) => { let o = ""; const ch = spawn(process.execPath, ["/work/main/bench/_ingest-load.ts", JSON.stringify(job)], { stdio: ["ignore", "pipe", "inherit"] }); ch.stdout.on("data", (d) => (o += d)); setTimeout(() => c.query("ROLLBACK"), 11500); ch.on("exit", () => resolve(o)); });
const u = process.cpuUsage(cpu0); const r = JSON.parse(out);
const answered = r.refused.count ?? 0;
const total = Object.values(r.failures as Record<string, number>).reduce((a, b) => a + b, 0);
console.log(`answers ${total} in ${((performance.now() - t0) / 1000).toFixed(1)} s; server µs per answer ${((u.user + u.system) / total).toFixed(1)}; failures ${JSON.stringify(r.failures)}`);
await c.end(); await server.stop(); await db.stop();
