// The attestation log's Prometheus metrics: log size (leaves), checkpoint age, sequencer lag (age
// of the oldest unsequenced attempt) and leaves per batch. The first three are read from the
// database in the background, so each check waits for a refresh that saw the change.
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { insertSyntheticAttempts, treeSize, until } from "../../test/support/attestation.ts";
import { connect } from "../../test/support/database.ts";
import { sample, scrape } from "../../test/support/metrics.ts";
import { startTestServer, type TestServer } from "../../test/support/server.ts";

async function metric(server: TestServer, name: string): Promise<number> {
  const value = sample(await scrape(server), name);
  if (value === undefined) throw new Error(`no ${name} in /metrics`);
  return value;
}

/** The metric once a background refresh has brought it to satisfy `ok`. */
function metricReaching(server: TestServer, name: string, ok: (v: number) => boolean): Promise<number> {
  return until(`${name} to be refreshed`, async () => {
    const v = await metric(server, name);
    return ok(v) ? v : undefined;
  });
}

describe("with the sequencer keeping up", () => {
  let server: TestServer;
  let db: pg.Client;
  beforeAll(async () => {
    server = await startTestServer({ KAPSEL_CHECKPOINT_INTERVAL_MS: "100" });
    db = await connect(server.databaseUrl);
  });
  afterAll(async () => {
    await db?.end();
    await server?.stop();
  });

  it("kapsel_log_leaves is the signed tree size and kapsel_log_batch_leaves counts the leaves of each batch", async () => {
    await until("the first checkpoint", async () => ((await db.query("SELECT 1 FROM checkpoints")).rowCount ? true : undefined));
    // The first checkpoint's (empty) batch is counted after its row commits: wait for it, or it
    // would be counted with the batch below (it was, once in a full run).
    const batchesBefore = await metricReaching(server, "kapsel_log_batch_leaves_count", (v) => v >= 1);
    await insertSyntheticAttempts(db, 1234);
    await until("the batch to be sequenced", async () => ((await treeSize(db)) === 1234 ? true : undefined));
    expect(await metricReaching(server, "kapsel_log_leaves", (v) => v === 1234)).toBe(1234);
    expect(await metric(server, "kapsel_log_batch_leaves_sum")).toBe(1234);
    expect(await metric(server, "kapsel_log_batch_leaves_count")).toBe(batchesBefore + 1);
    const text = await scrape(server);
    expect(text).toContain('kapsel_log_batch_leaves_bucket{le="1000"} ' + batchesBefore + "\n");
    expect(text).toContain('kapsel_log_batch_leaves_bucket{le="5000"} ' + (batchesBefore + 1) + "\n");
    expect(await metric(server, "kapsel_log_sequencer_lag_seconds")).toBe(0);
  });
});

describe("with attempts waiting", () => {
  it("kapsel_log_sequencer_lag_seconds is the oldest waiting attempt's age; kapsel_log_checkpoint_age_seconds the latest checkpoint's", async () => {
    // An hour's interval: after the first (empty) checkpoint nothing is sequenced.
    const server = await startTestServer({ KAPSEL_CHECKPOINT_INTERVAL_MS: "3600000" });
    const db = await connect(server.databaseUrl);
    try {
      await until("the first checkpoint", async () => ((await db.query("SELECT 1 FROM checkpoints")).rowCount ? true : undefined));
      await insertSyntheticAttempts(db, 10);
      await db.query("UPDATE log_queue SET queued_at = now() - interval '1 hour' WHERE attempt_seq = (SELECT min(attempt_seq) FROM log_queue)");
      await db.query("UPDATE checkpoints SET signed_at = now() - interval '2 hours'");
      const lag = await metricReaching(server, "kapsel_log_sequencer_lag_seconds", (v) => v >= 3600);
      const age = await metricReaching(server, "kapsel_log_checkpoint_age_seconds", (v) => v >= 7200);
      expect(lag).toBeGreaterThanOrEqual(3600);
      expect(lag).toBeLessThan(7200);
      expect(age).toBeGreaterThanOrEqual(7200);
      expect(age).toBeLessThan(3 * 3600);
      expect(await metric(server, "kapsel_log_leaves")).toBe(0);
    } finally {
      await db.end();
      await server.stop();
    }
  });
});
