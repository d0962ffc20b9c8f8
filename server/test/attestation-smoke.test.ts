import http from "node:http";
import { afterAll, beforeAll, expect, it } from "vitest";
import { verifyProofBundle, verifyConsistency, verifyCheckpoint } from "@kapsel/verify";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";
import { createTenant, rpc } from "../../test/support/rpc.ts";

let server: TestServer;
let sink: http.Server;
let port = 0;
beforeAll(async () => {
  server = await startTestServer({ KAPSEL_CHECKPOINT_INTERVAL_MS: "200" });
  sink = http.createServer((req, res) => { req.resume(); req.on("end", () => { res.writeHead(200); res.end("ok"); }); });
  await new Promise<void>((r) => sink.listen(0, "127.0.0.1", () => r()));
  port = (sink.address() as any).port;
});
afterAll(async () => { await server?.stop(); sink?.close(); });

it("bundle verifies", async () => {
  const t = await createTenant(server.url, ADMIN_TOKEN);
  const ep = (await rpc(server.url, "CreateEndpoint", { url: `http://127.0.0.1:${port}/hook`, allowHttp: true }, t.apiKey)).body.endpoint;
  const ids: string[] = [];
  for (let i = 0; i < 300; i++) ids.push((await (await fetch(`${server.url}/ingest/${ep.id}`, { method: "POST", body: `{"a":${i}}` })).json()).event_id);
  let attempts: any[] = [];
  for (let i = 0; i < 100; i++) {
    const ev = await rpc(server.url, "GetEvent", { eventId: ids[0] }, t.apiKey);
    attempts = ev.body.event.attempts ?? [];
    if (attempts.length) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const keys = (await rpc(server.url, "GetPublicKeys", {}, t.apiKey)).body.keys.map((k: any) => k.vkey);
  let bundle: any;
  for (let i = 0; i < 50; i++) {
    bundle = await rpc(server.url, "GetProofBundle", { attemptId: attempts[0].id }, t.apiKey);
    if (bundle.status === 200) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(bundle.status).toBe(200);
  const result = verifyProofBundle(bundle.body.bundle, { trustedKeys: keys });
  expect(result).toMatchObject({ ok: true });
  await new Promise((r) => setTimeout(r, 1500));
  const cp1 = (await rpc(server.url, "GetCheckpoint", {}, t.apiKey)).body;
  console.log(cp1.treeSize, cp1.checkpoint);
  const cons = await rpc(server.url, "GetConsistencyProof", { oldSize: 7, newSize: cp1.treeSize }, t.apiKey);
  expect(cons.status).toBe(200);
  const curl = await fetch(`${server.url}/v1/attempts/${attempts[0].id}/proof`, { headers: { authorization: `Bearer ${t.apiKey}` } });
  expect(curl.status).toBe(200);
  const tile = await fetch(`${server.url}/log/tile/0/000`);
  console.log(tile.status, (await tile.arrayBuffer()).byteLength, await (await fetch(`${server.url}/log/checkpoint`)).text());
});
