// Proofs are per tenant: another tenant's attempt is NotFound (E3003) exactly like an attempt that
// does not exist, over Connect and over the curl route; checkpoints, keys and consistency proofs are
// for any authenticated caller; nothing answers without credentials.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleFor, checkBundle, createDestination, deliver, startLoopbackSink, vkeysOf, type Destination, type LoopbackSink } from "../../test/support/attestation.ts";
import { errorCode, rpc } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";

let server: TestServer;
let sink: LoopbackSink;
let alice: Destination;
let bob: Destination;
let aliceAttempt: string;
let bobAttempt: string;

beforeAll(async () => {
  server = await startTestServer({ KAPSEL_CHECKPOINT_INTERVAL_MS: "100" });
  sink = await startLoopbackSink();
  alice = await createDestination(server.url, sink.url, "alice");
  bob = await createDestination(server.url, sink.url, "bob");
  aliceAttempt = (await deliver(server.url, alice, 1))[0].id;
  bobAttempt = (await deliver(server.url, bob, 1))[0].id;
  await bundleFor(server.url, alice.apiKey, aliceAttempt);
  await bundleFor(server.url, bob.apiKey, bobAttempt);
});
afterAll(async () => {
  await server?.stop();
  await sink?.close();
});

const proofRoute = (attemptId: string, token?: string) =>
  fetch(`${server.url}/v1/attempts/${attemptId}/proof`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

describe("another tenant's attempt", () => {
  it("is NotFound (E3003) for GetProofBundle and GetInclusionProof, like an id that does not exist", async () => {
    for (const [attemptId, token] of [[bobAttempt, alice.apiKey], [aliceAttempt, bob.apiKey], ["01900000-0000-7000-8000-000000000000", alice.apiKey]] as const) {
      for (const method of ["GetProofBundle", "GetInclusionProof"]) {
        const r = await rpc(server.url, method, { attemptId }, token);
        expect(r.status, method).toBe(404);
        expect(r.body.code).toBe("not_found");
        expect(errorCode(r.body)).toBe("E3003");
        expect(JSON.stringify(r.body)).not.toContain("extra ");
      }
    }
    // An older tree size does not open a side door.
    const r = await rpc(server.url, "GetInclusionProof", { attemptId: bobAttempt, treeSize: "1" }, alice.apiKey);
    expect(errorCode(r.body)).toBe("E3003");
  });

  it("is 404 E3003 on GET /v1/attempts/{id}/proof", async () => {
    const res = await proofRoute(bobAttempt, alice.apiKey);
    expect(res.status).toBe(404);
    expect((await res.json()).code).toBe("E3003");
    const own = await proofRoute(bobAttempt, bob.apiKey);
    expect(own.status).toBe(200);
    expect(checkBundle(await own.text(), await vkeysOf(server.url, bob.apiKey)).receipt.tenant_id).toBe(bob.tenantId);
  });

  it("a malformed attempt id on the curl route is a client error and the server keeps serving", async () => {
    for (const bad of ["not-a-uuid", "%E0%A4%A", "%ZZ", "%"]) {
      const res = await proofRoute(bad, alice.apiKey);
      expect(res.status, bad).toBeGreaterThanOrEqual(400);
      expect(res.status, bad).toBeLessThan(500);
    }
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });
});

describe("log-wide reads", () => {
  it("checkpoints, keys and consistency proofs answer every authenticated caller alike", async () => {
    const readOnly = await rpc(server.url, "CreateApiKey", { scopes: ["SCOPE_READ"] }, alice.apiKey);
    const ingestOnly = await rpc(server.url, "CreateApiKey", { scopes: ["SCOPE_INGEST"] }, bob.apiKey);
    expect([readOnly.status, ingestOnly.status]).toEqual([200, 200]);
    const callers = [alice.apiKey, bob.apiKey, readOnly.body.secret ?? readOnly.body.apiKey, ingestOnly.body.secret ?? ingestOnly.body.apiKey, ADMIN_TOKEN];
    const answers: string[] = [];
    for (const token of callers) {
      const cp = await rpc(server.url, "GetCheckpoint", {}, token);
      const keys = await rpc(server.url, "GetPublicKeys", {}, token);
      const cons = await rpc(server.url, "GetConsistencyProof", { oldSize: "1", newSize: "2" }, token);
      expect([cp.status, keys.status, cons.status]).toEqual([200, 200, 200]);
      answers.push(JSON.stringify([keys.body, cons.body]));
    }
    expect(new Set(answers).size).toBe(1);
  });

  it("an ingest-only key may not read proofs, not even its own tenant's (E1004 PermissionDenied)", async () => {
    const ingestOnly = await rpc(server.url, "CreateApiKey", { scopes: ["SCOPE_INGEST"] }, alice.apiKey);
    const token = ingestOnly.body.secret ?? ingestOnly.body.apiKey;
    const r = await rpc(server.url, "GetProofBundle", { attemptId: aliceAttempt }, token);
    expect(r.status).toBe(403);
    expect(errorCode(r.body)).toBe("E1004");
    expect((await proofRoute(aliceAttempt, token)).status).toBe(403);
  });
});

describe("without credentials", () => {
  it("every attestation RPC and the proof route answer E1004 Unauthenticated", async () => {
    const calls: [string, unknown][] = [
      ["GetCheckpoint", {}],
      ["GetPublicKeys", {}],
      ["GetInclusionProof", { attemptId: aliceAttempt }],
      ["GetConsistencyProof", { oldSize: "1", newSize: "2" }],
      ["GetProofBundle", { attemptId: aliceAttempt }],
      ["kapsel.v1.AttestationService/WatchCheckpoints", {}],
    ];
    for (const token of [undefined, "ksk_wrong", alice.apiKey + "x"]) {
      for (const [method, body] of calls) {
        if (method.endsWith("WatchCheckpoints")) {
          // A server stream over the Connect protocol: the error is the end-of-stream message.
          const res = await fetch(`${server.url}/${method}`, {
            method: "POST",
            headers: { "content-type": "application/connect+json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
            body: Buffer.concat([Buffer.of(0, 0, 0, 0, 2), Buffer.from("{}")]),
          });
          const bytes = Buffer.from(await res.arrayBuffer());
          const end = JSON.parse(bytes.subarray(5).toString());
          expect(end.error.code).toBe("unauthenticated");
          expect(end.error.details.some((d: { debug?: { reason?: string } }) => d.debug?.reason === "E1004")).toBe(true);
          continue;
        }
        const r = await rpc(server.url, method, body, token);
        expect(r.status, `${method} with ${token}`).toBe(401);
        expect(errorCode(r.body)).toBe("E1004");
      }
      const res = await proofRoute(aliceAttempt, token);
      expect(res.status).toBe(401);
      expect((await res.json()).code).toBe("E1004");
    }
  });

  it("the public tiles API needs none: it carries hashes and checkpoints, never receipts", async () => {
    expect((await fetch(`${server.url}/log/checkpoint`)).status).toBe(200);
    expect((await fetch(`${server.url}/log/tile/0/000.p/1`)).status).toBe(200);
  });
});
