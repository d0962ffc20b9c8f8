// The purger at work during full-speed ingest and delivery: payload and excerpt windows of one
// second, a pass every 20 ms, four rows per batch, while concurrent senders ingest as fast as the
// server takes them (endpoint-targeted and fanned out). Nothing may fail, every event must be
// delivered with the exact body it was sent with (a payload purged too early would go out empty),
// and the purger must have done its work alongside.
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "../../test/support/database.ts";
import { addEndpoint, createDestination, until } from "../../test/support/delivery.ts";
import { rpc } from "../../test/support/rpc.ts";
import { startTestServer, type TestServer } from "../../test/support/server.ts";
import { startSink, succeed, type Sink } from "../../test/support/sink.ts";

const SENDERS = 6;
const PER_SENDER = 250;

let server: TestServer;
let db: pg.Client;
let sink: Sink;

beforeAll(async () => {
  server = await startTestServer({
    KAPSEL_PAYLOAD_RETENTION_SECONDS: "1",
    KAPSEL_RESPONSE_RETENTION_SECONDS: "1",
    KAPSEL_EVENT_RETENTION_SECONDS: "3600",
    KAPSEL_PURGE_INTERVAL_MS: "20",
    KAPSEL_PURGE_BATCH_SIZE: "4",
    KAPSEL_CHECKPOINT_INTERVAL_MS: "200",
  });
  db = await connect(server.databaseUrl);
  sink = await startSink(succeed());
});
afterAll(async () => {
  await db?.end();
  await server?.stop();
  await sink?.close();
});

function metric(text: string, line: string): number {
  return Number(text.split("\n").find((l) => l.startsWith(line))?.split(" ").at(-1));
}

describe("the purger under load", () => {
  it("runs beside full-speed ingest and delivery without an error, and every event is delivered intact", async () => {
    const d = await createDestination(server.url, sink.url);
    await addEndpoint(server.url, d.apiKey, sink.url, { eventTypes: ["bulk.*"] });
    const sent = new Map<string, string>();
    const failures: string[] = [];

    const sender = async (s: number) => {
      for (let i = 0; i < PER_SENDER; i++) {
        const body = JSON.stringify({ sender: s, i, email: `load-${s}-${i}@example.com` });
        if (i % 4 === 0) {
          const r = await rpc(server.url, "Ingest", { payload: Buffer.from(body).toString("base64"), contentType: "application/json", eventType: "bulk.created" }, d.apiKey);
          if (r.status !== 200) failures.push(`Ingest ${r.status} ${JSON.stringify(r.body)}`);
          else for (const id of r.body.eventIds as string[]) sent.set(id, body);
        } else {
          const res = await fetch(`${server.url}/ingest/${d.endpointId}`, { method: "POST", headers: { "content-type": "application/json" }, body });
          const text = await res.text();
          if (res.status !== 202) failures.push(`gateway ${res.status} ${text}`);
          else sent.set((JSON.parse(text) as { event_id: string }).event_id, body);
        }
      }
    };
    await Promise.all(Array.from({ length: SENDERS }, (_, s) => sender(s)));
    expect(failures).toEqual([]);
    const events = SENDERS * PER_SENDER + SENDERS * Math.ceil(PER_SENDER / 4);
    expect(sent.size).toBe(events);

    await until("every event delivered", async () => {
      const { rows } = await db.query<{ n: string }>("SELECT count(*) AS n FROM events WHERE status = 'delivered'");
      return Number(rows[0]!.n) === events ? true : undefined;
    }, 120_000);
    // Each event reached the receiver with exactly the body it was sent with, at least once.
    const received = new Map<string, Buffer>();
    for (const r of sink.requests) received.set(r.eventId, r.body);
    expect(received.size).toBe(events);
    const wrong = [...sent].filter(([id, body]) => received.get(id)?.toString() !== body);
    expect(wrong).toEqual([]);
    const { rows: outcomes } = await db.query<{ outcome: string; n: string }>("SELECT outcome, count(*) AS n FROM delivery_attempts GROUP BY outcome");
    expect(outcomes).toEqual([{ outcome: "delivered", n: expect.any(String) }]);

    // The purger catches up: every payload and excerpt of these finished events is gone.
    await until("every payload and excerpt purged", async () => {
      const { rows } = await db.query<{ kept: string; excerpts: string }>(
        "SELECT (SELECT count(*) FROM messages WHERE payload_erased_at IS NULL) AS kept, (SELECT count(*) FROM delivery_attempts WHERE response_excerpt <> '') AS excerpts");
      return rows[0]!.kept === "0" && rows[0]!.excerpts === "0" ? true : undefined;
    }, 120_000);
    const metrics = await (await fetch(`${server.metricsUrl}/metrics`)).text();
    expect(metric(metrics, 'kapsel_retention_purge_batches_total{result="error"}')).toBe(0);
    expect(metric(metrics, 'kapsel_retention_purged_total{kind="payload"}')).toBe(SENDERS * PER_SENDER);
    expect(metric(metrics, 'kapsel_retention_purged_total{kind="response_excerpt"}')).toBeGreaterThanOrEqual(events);
    expect(metric(metrics, 'kapsel_retention_purge_batches_total{result="done"}')).toBeGreaterThan((SENDERS * PER_SENDER) / 4);
  }, 240_000);
});
