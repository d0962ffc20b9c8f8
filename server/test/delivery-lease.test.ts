// Leases and slow destinations: a claimed job's lease must outlast the attempt it was claimed for,
// or the same process (or another) claims it again and the destination gets the event twice.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "../../test/support/database.ts";
import { createDestination, eventReaching, ingest } from "../../test/support/delivery.ts";
import { startTestServer, type TestServer } from "../../test/support/server.ts";
import { slow, startSink, type Sink } from "../../test/support/sink.ts";

let server: TestServer;
let sink: Sink;
beforeAll(async () => {
  // A lease far shorter than the endpoint's timeout and than the destination's answer time.
  server = await startTestServer({ KAPSEL_DELIVERY_LEASE_MS: "200" });
});
afterAll(async () => {
  await server?.stop();
  await sink?.close();
});

describe("leases", () => {
  it("an attempt that takes longer than KAPSEL_DELIVERY_LEASE_MS (but within the endpoint timeout) is sent once and recorded once", async () => {
    sink = await startSink(slow(1_500));
    const d = await createDestination(server.url, sink.url, { timeoutMs: 5_000 });
    const ids = [await ingest(server.url, d.endpointId), await ingest(server.url, d.endpointId)];
    for (const id of ids) {
      const event = await eventReaching(server.url, d.apiKey, id, "EVENT_STATUS_DELIVERED");
      expect(event.attempts.map((a: any) => [a.attempt, a.outcome])).toEqual([[1, "ATTEMPT_OUTCOME_DELIVERED"]]);
      expect(sink.forEvent(id)).toHaveLength(1);
    }
    const db = await connect(server.databaseUrl);
    try {
      const { rows } = await db.query("SELECT count(*)::int AS n, bool_and(decided) AS decided FROM delivery_attempts");
      expect(rows[0]).toEqual({ n: 2, decided: true });
    } finally {
      await db.end();
    }
  });
});
