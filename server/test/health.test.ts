import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as Status } from "@kapsel/contracts/health";
import { startTestServer } from "../../test/support/server.ts";

it("Health/List reports every Kapsel service as SERVING", async () => {
  const server = await startTestServer();
  try {
    const r = await fetch(`${server.url}/grpc.health.v1.Health/List`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(r.status).toBe(200);
    const body = await r.json();
    expect(Object.keys(body.statuses).sort()).toEqual(["", "kapsel.v1.AttestationService", "kapsel.v1.IngestService", "kapsel.v1.ManagementService"]);
    for (const s of Object.values(body.statuses) as { status: string }[]) expect(s.status).toBe("SERVING");
  } finally {
    await server.stop();
  }
});

it("a health watcher sees NOT_SERVING when shutdown begins, before its stream ends", async () => {
  const server = await startTestServer();
  const client = createClient(Health, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
  const seen: Status[] = [];
  const watching = (async () => {
    try {
      for await (const m of client.watch({ service: "" })) {
        seen.push(m.status);
        if (seen.length === 1) void server.stop();
      }
    } catch {
      // the stream is ended by the shutdown
    }
  })();
  await watching;
  expect(seen).toEqual([Status.SERVING, Status.NOT_SERVING]);
});
