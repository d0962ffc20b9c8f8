// The e2e bench counts what reached the destination with the sink process: deliveries per step are
// distinct (endpoint path, event) pairs, duplicates are requests but not deliveries, and latency is
// measured from the send time the load generator wrote into the payload.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StepSummary } from "../../bench/_delivery-sink.ts";
import { SinkProcess } from "../../bench/_delivery-support.ts";
import { eventBody, PAYLOAD_BYTES } from "../../bench/_e2e-load.ts";

let sink: SinkProcess;
beforeAll(async () => {
  sink = await SinkProcess.start();
});
afterAll(() => sink.stop());

const post = (path: string, body: Uint8Array<ArrayBuffer> | string) =>
  fetch(`http://127.0.0.1:${sink.port}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body });

describe("the e2e sink", () => {
  it("counts each event once per endpoint and times it from the payload's send time", async () => {
    const sentAt = performance.timeOrigin + performance.now() - 1_000;
    const first = new Uint8Array(eventBody(sentAt, 7, 0));
    expect(first.length).toBe(PAYLOAD_BYTES);
    expect(() => JSON.parse(Buffer.from(first).toString())).not.toThrow();

    await post("/hook/0", first);
    await post("/hook/0", first); // a redelivery
    await post("/hook/1", first); // the same event at a second endpoint (fan-out)
    await post("/hook/0", new Uint8Array(eventBody(sentAt, 7, 1)));
    await post("/hook/0", new Uint8Array(eventBody(sentAt, 8, 0))); // another step
    await post("/hook/0", '{"probe":true}'); // not from the load generator

    const { summary } = await sink.ask<{ summary: StepSummary }>({ type: "stepSummary", step: 7, windowFrom: 0, windowTo: Number.MAX_VALUE });
    expect(summary.requests).toBe(4);
    expect(summary.delivered).toBe(3);
    expect(summary.deliveredInWindow).toBe(4); // first deliveries of steps 7 and 8
    expect(summary.latencyMs.p50).toBeGreaterThanOrEqual(1_000);
    expect(summary.lastArrival).toBeGreaterThan(sentAt);

    const { counts } = await sink.ask<{ counts: [number, number][] }>({ type: "stepCounts" });
    expect(new Map(counts)).toEqual(new Map([[7, 3], [8, 1]]));
  });
});
