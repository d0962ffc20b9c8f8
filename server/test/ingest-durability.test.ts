// Durable before ack: concurrent gateway and RPC load against a server whose Postgres is stopped in
// the middle. Every 2xx the clients got must name a row that is there after Postgres comes back
// (with its delivery job); everything else must be E9001 (503 / Unavailable), E9003 for the
// requests in flight when it went, or a broken connection, and nothing started after Postgres was
// down may succeed. Uses its own embedded
// Postgres (synchronous_commit and fsync on) so stopping it disturbs no other test file.
import { chmod, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { startEmbeddedPostgres, type EmbeddedDatabase } from "../src/db/embedded.ts";
import { createLogger } from "../src/logger.ts";
import { connect } from "../../test/support/database.ts";
import { createEndpoint, INGEST_ONLY } from "../../test/support/ingest.ts";
import { createTenant, errorCode } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";

const log = createLogger("warn");
let dataDir: string | undefined;
let postgres: EmbeddedDatabase | undefined;
let server: TestServer | undefined;
afterAll(async () => {
  await server?.stop();
  await postgres?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

interface Outcome {
  path: "gateway" | "rpc";
  startedAt: number;
  /** Set for a 2xx. */
  eventId?: string;
  /** Otherwise what came back: `503 E9001`, `unavailable E9001`, `connection error`, … */
  failure?: string;
}

/** One request on the gateway or the Ingest RPC (Connect JSON); never throws. */
async function send(baseUrl: string, pathKind: Outcome["path"], endpointId: string, apiKey: string, n: number): Promise<Outcome> {
  const startedAt = performance.now();
  try {
    if (pathKind === "gateway") {
      const res = await fetch(`${baseUrl}/ingest/${endpointId}`, { method: "POST", body: `{"n":${n}}` });
      const body = await res.json().catch(() => undefined);
      if (res.status >= 200 && res.status < 300) return { path: pathKind, startedAt, eventId: body.event_id };
      return { path: pathKind, startedAt, failure: `${res.status} ${body?.code}` };
    }
    const res = await fetch(`${baseUrl}/kapsel.v1.IngestService/Ingest`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${apiKey}` },
      body: JSON.stringify({ endpointId, payload: Buffer.from(`{"n":${n}}`).toString("base64") }),
    });
    const body = await res.json().catch(() => undefined);
    if (res.status >= 200 && res.status < 300) return { path: pathKind, startedAt, eventId: body.eventId };
    return { path: pathKind, startedAt, failure: `${body?.code} ${errorCode(body)}` };
  } catch {
    return { path: pathKind, startedAt, failure: "connection error" };
  }
}

describe("the database stopped mid-load", () => {
  it("every acknowledged event is stored; the rest is E9001; nothing succeeds once the database is down", async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), "kapsel-durability-"));
    await chmod(dataDir, 0o755);
    postgres = await startEmbeddedPostgres({ dataDir, log });
    // The outage makes the server log one warning per refused request; keep the test output readable.
    const level = process.env.KAPSEL_TEST_LOG_LEVEL;
    process.env.KAPSEL_TEST_LOG_LEVEL = level ?? "error";
    try {
      server = await startTestServer({ ...INGEST_ONLY, DATABASE_URL: postgres.url });
    } finally {
      if (level === undefined) delete process.env.KAPSEL_TEST_LOG_LEVEL;
      else process.env.KAPSEL_TEST_LOG_LEVEL = level;
    }
    const tenant = await createTenant(server.url, ADMIN_TOKEN);
    const endpointId = await createEndpoint(server.url, tenant.apiKey);

    const outcomes: Outcome[] = [];
    let stopLoad = false;
    let n = 0;
    const worker = async (kind: Outcome["path"]) => {
      while (!stopLoad) outcomes.push(await send(server!.url, kind, endpointId, tenant.apiKey, n++));
    };
    const workers = [...Array(4).fill("gateway"), ...Array(4).fill("rpc")].map((k) => worker(k));

    // Let the load run until a good number of events are in, then pull the database away.
    while (outcomes.filter((o) => o.eventId).length < 500) await new Promise((r) => setTimeout(r, 20));
    await postgres.stop();
    postgres = undefined;
    const downAt = performance.now();
    await new Promise((r) => setTimeout(r, 1000));
    stopLoad = true;
    // In-flight requests finish (bounded by the pool's connection timeout) before Postgres returns.
    await Promise.all(workers);

    postgres = await startEmbeddedPostgres({ dataDir, log });
    const db = await connect(postgres.url);
    try {
      const acknowledged = outcomes.filter((o) => o.eventId).map((o) => o.eventId!);
      expect(acknowledged.length).toBeGreaterThanOrEqual(500);
      expect(new Set(acknowledged).size).toBe(acknowledged.length);
      const present = await db.query<{ id: string; job: boolean }>(
        "SELECT e.id, EXISTS (SELECT 1 FROM delivery_jobs j WHERE j.event_id = e.id) AS job FROM events e WHERE e.id = ANY($1::uuid[])",
        [acknowledged],
      );
      const missing = acknowledged.filter((id) => !present.rows.some((r) => r.id === id));
      expect(missing).toEqual([]);
      expect(present.rows.filter((r) => !r.job)).toEqual([]);
      const rows = Number((await db.query("SELECT count(*) AS n FROM events WHERE endpoint_id = $1", [endpointId])).rows[0].n);
      expect(acknowledged.length).toBeLessThanOrEqual(rows);

      // Failures are the database outage, said the way each path says it (or a dropped connection).
      // A request whose statement was under way when Postgres went is E9003 (outcome unknown:
      // Postgres was no longer there to ask), never E9001, which promises nothing was stored.
      const failures = outcomes.filter((o) => o.failure);
      const kinds = new Set(failures.map((o) => `${o.path}: ${o.failure}`));
      const allowed = ["gateway: 503 E9001", "rpc: unavailable E9001", "gateway: 503 E9003", "rpc: unavailable E9003", "gateway: connection error", "rpc: connection error"];
      for (const kind of kinds) expect(allowed).toContain(kind);
      expect(kinds).toContain("gateway: 503 E9001");
      expect(kinds).toContain("rpc: unavailable E9001");
      // A request that started after Postgres was gone cannot have been committed.
      expect(outcomes.filter((o) => o.startedAt > downAt && o.eventId)).toEqual([]);
    } finally {
      await db.end();
    }
  }, 90_000);
});
