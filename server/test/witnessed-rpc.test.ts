// Witnessed checkpoints where there are none: a log without witnesses answers E3004 (it never will
// have one) and keeps publishing its latest checkpoint; a log whose witnesses have never answered
// answers E3001 with a retry hint and publishes nothing at /log/checkpoint (as Tessera publishes a
// checkpoint only once its witness policy is met), while it signs, and stays ready.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WitnessKey } from "../../witness/src/witness-key.ts";
import { freePort } from "../src/free-port.ts";
import { createTenant, errorCode, rpc } from "../../test/support/rpc.ts";
import { until } from "../../test/support/delivery.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";

async function latestSize(server: TestServer, apiKey: string): Promise<number | undefined> {
  const r = await rpc(server.url, "GetCheckpoint", {}, apiKey);
  return r.status === 200 ? Number(r.body.treeSize) : undefined;
}

describe("a log without witnesses", () => {
  let server: TestServer;
  let apiKey: string;
  beforeAll(async () => {
    server = await startTestServer({ KAPSEL_CHECKPOINT_INTERVAL_MS: "50" });
    apiKey = (await createTenant(server.url, ADMIN_TOKEN)).apiKey;
    await until("the first checkpoint", () => latestSize(server, apiKey));
  });
  afterAll(() => server?.stop());

  it("answers witnessed requests with E3004 and serves its latest checkpoint at /log/checkpoint", async () => {
    const checkpoint = await rpc(server.url, "GetCheckpoint", { witnessed: true }, apiKey);
    expect([checkpoint.status, checkpoint.body.code, errorCode(checkpoint.body)]).toEqual([400, "failed_precondition", "E3004"]);
    const bundle = await rpc(server.url, "GetProofBundle", { attemptId: "00000000-0000-4000-8000-000000000000", witnessed: true }, apiKey);
    expect(errorCode(bundle.body)).toBe("E3004");
    const latest = await rpc(server.url, "GetCheckpoint", {}, apiKey);
    expect(latest.body.witnesses).toBeUndefined();
    const served = await fetch(`${server.url}/log/checkpoint`);
    expect([served.status, await served.text()]).toEqual([200, latest.body.checkpoint]);
    const ready = await (await fetch(`${server.url}/readyz`)).json();
    expect(ready.witnesses).toBeUndefined();
  });
});

describe("a log whose witnesses never answered", () => {
  let server: TestServer;
  let apiKey: string;
  beforeAll(async () => {
    const key = new WitnessKey("unreachable.witness.example", Buffer.alloc(32, 6));
    server = await startTestServer({
      KAPSEL_CHECKPOINT_INTERVAL_MS: "50",
      KAPSEL_WITNESSES: `http://127.0.0.1:${await freePort()} ${key.vkey}`,
      KAPSEL_WITNESS_INTERVAL_MS: "50",
    });
    apiKey = (await createTenant(server.url, ADMIN_TOKEN)).apiKey;
    await until("the first checkpoint", () => latestSize(server, apiKey));
  });
  afterAll(() => server?.stop());

  it("answers E3001 with a retry hint, publishes no checkpoint yet, and stays ready", async () => {
    const checkpoint = await rpc(server.url, "GetCheckpoint", { witnessed: true }, apiKey);
    expect([checkpoint.status, errorCode(checkpoint.body)]).toEqual([400, "E3001"]);
    expect(checkpoint.body.details.some((d: any) => d.type === "google.rpc.RetryInfo")).toBe(true);
    const served = await fetch(`${server.url}/log/checkpoint`);
    expect([served.status, await served.text()]).toEqual([404, "no witnessed checkpoint yet\n"]);
    const ready = await until("the witness to be reported failing", async () => {
      const body = await (await fetch(`${server.url}/readyz`)).json();
      return body.witnesses?.witnesses?.[0]?.state === "failing" ? body : undefined;
    });
    expect(ready).toMatchObject({
      ready: true,
      log: { signing: "ok" },
      witnesses: { quorum: 1, witnessed_tree_size: null, witnesses: [{ name: "unreachable.witness.example", last_failure: { reason: "unreachable" }, cosigned_tree_size: null }] },
    });
  });
});
