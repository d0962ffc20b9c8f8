// The e2e load generator is open loop: requests are due on a clock whether or not the system
// answers, a request that waits for a connection carries that wait in its latency, and what could
// not be sent by the end of the step counts as offered and not acknowledged.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LoadGenerator } from "../../bench/e2e.ts";

let load: LoadGenerator;
let server: http.Server;
let received = 0;

beforeAll(async () => {
  load = await LoadGenerator.start();
  // A system that takes 200 ms per request.
  server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      received++;
      setTimeout(() => res.writeHead(202).end(), 200);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
});
afterAll(() => {
  load.stop();
  server.close();
});

describe("the e2e load generator", () => {
  it("keeps offering on its clock when the system falls behind, and counts the wait", async () => {
    const target = `http://127.0.0.1:${(server.address() as AddressInfo).port}/ingest`;
    const r = await load.step({ type: "step", step: 1, rate: 50, seconds: 1, targets: [target], connectionsPerTarget: 1, graceMs: 2_000 });

    expect(r.offered).toBe(50);
    // One connection and 200 ms a request: at most a handful could be sent in the second.
    expect(r.sent).toBeLessThan(10);
    expect(r.acked).toBe(r.sent);
    expect(received).toBe(r.sent);
    // The second request was due 20 ms after the first but waited for the connection.
    expect(r.ackMs.p99).toBeGreaterThan(300);
    // The step ran its whole second although the system fell behind (timers may fire a little early).
    expect(r.endedAt - r.startedAt).toBeGreaterThanOrEqual(990);
    expect(await load.idle(5_000)).toBe(0);
  });
});
