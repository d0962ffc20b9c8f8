// getVerifiedProof end to end: a real delivery is attested by the server, its bundle fetched
// through AttestationService and verified with @kapsel/verify against the keys from
// GetPublicKeys; a key the log did not sign with, a wrong payload or an unknown attempt fail.
// The same bundle, downloaded with a plain GET as the README shows, passes the kapsel-verify CLI.
import { execFile } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { computeKeyId, keyIdHex, PROOF_BUNDLE_HEADER, SIGNATURE_TYPE_ED25519 } from "@kapsel/verify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, createKapselClient, EventStatus, getVerifiedProof, KapselError, ProofVerificationError, type KapselClient } from "@kapsel/sdk";
import { createKapselClient as createWebKapselClient } from "@kapsel/sdk/web";
import { addEndpoint } from "../../test/support/delivery.ts";
import { createTenant } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, ROOT, startTestServer, type TestServer } from "../../test/support/server.ts";
import { startSink, type Sink } from "../../test/support/sink.ts";

const run = promisify(execFile);

/** A well-formed vkey for `name` whose Ed25519 key the log never had. */
function strangerVkey(name: string): string {
  const { publicKey } = generateKeyPairSync("ed25519");
  const raw = Buffer.from(publicKey.export({ format: "jwk" }).x!, "base64url");
  const id = keyIdHex(computeKeyId(name, SIGNATURE_TYPE_ED25519, raw));
  return `${name}+${id}+${Buffer.concat([Buffer.from([SIGNATURE_TYPE_ED25519]), raw]).toString("base64")}`;
}

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(() => {
    throw new Error("expected a rejection");
  }, (err: unknown) => err);
}

let server: TestServer;
let sink: Sink;
let client: KapselClient;
let apiKey: string;
let attemptId: string;
let eventId: string;
let vkeys: string[];
const payload = new TextEncoder().encode('{"type":"order.shipped","order":"A-1"}');

beforeAll(async () => {
  server = await startTestServer({ KAPSEL_CHECKPOINT_INTERVAL_MS: "200" });
  sink = await startSink();
  apiKey = (await createTenant(server.url, ADMIN_TOKEN, "auditor")).apiKey;
  const { endpointId } = await addEndpoint(server.url, apiKey, sink.url);
  client = createKapselClient({ baseUrl: server.url, apiKey, transport: "grpc" });
  ({ eventId } = await client.ingest.ingest({ endpointId, payload, contentType: "application/json" }));
  let status: EventStatus | undefined;
  for await (const { event } of client.management.watchEvent({ eventId })) status = event?.status;
  expect(status).toBe(EventStatus.DELIVERED);
  const { event } = await client.management.getEvent({ eventId });
  attemptId = event!.attempts[0]!.id;
  vkeys = (await client.attestation.getPublicKeys({})).keys.map((k) => k.vkey);
});
afterAll(async () => {
  client?.close();
  await server?.stop();
  await sink?.close();
});

describe("getVerifiedProof", () => {
  it("verifies a delivered attempt with the keys from GetPublicKeys and returns its facts and bundle", async () => {
    const proof = await getVerifiedProof(client, attemptId, { trustedKeys: vkeys, payload, requireTimestamp: true, maxWaitMs: 30_000 });
    expect(proof.receipt).toMatchObject({ v: 1, attempt_id: attemptId, event_id: eventId, url: sink.url, attempt: 1, outcome: "delivered", status_code: 200 });
    expect(proof.payloadVerified).toBe(true);
    expect(proof.index).toBeLessThan(proof.treeSize);
    expect(vkeys).toContain(proof.signedBy.vkey);
    expect(proof.origin).toBe(proof.signedBy.name);
    expect(typeof proof.timestamp).toBe("bigint");
    expect(proof.bundle.startsWith(PROOF_BUNDLE_HEADER)).toBe(true);
  });

  it("works the same through the web client (Connect over fetch)", async () => {
    const web = createWebKapselClient({ baseUrl: server.url, apiKey });
    const proof = await getVerifiedProof(web, attemptId, { trustedKeys: vkeys, maxWaitMs: 30_000 });
    expect([proof.receipt.attempt_id, proof.payloadVerified]).toEqual([attemptId, false]);
  });

  it("fails with NO_TRUSTED_SIGNATURE for a key the log did not sign with", async () => {
    const name = vkeys[0]!.split("+")[0]!;
    const err = await rejectionOf(getVerifiedProof(client, attemptId, { trustedKeys: [strangerVkey(name)], maxWaitMs: 30_000 }));
    expect(err).toBeInstanceOf(ProofVerificationError);
    expect((err as ProofVerificationError).code).toBe("NO_TRUSTED_SIGNATURE");
    expect((err as ProofVerificationError).attemptId).toBe(attemptId);
    expect((err as ProofVerificationError).bundle.startsWith(PROOF_BUNDLE_HEADER)).toBe(true);
  });

  it("fails with ORIGIN_MISMATCH for another log's key, and PAYLOAD_MISMATCH for other bytes", async () => {
    const otherLog = await rejectionOf(getVerifiedProof(client, attemptId, { trustedKeys: [strangerVkey("other.example/log")], maxWaitMs: 30_000 }));
    expect((otherLog as ProofVerificationError).code).toBe("ORIGIN_MISMATCH");
    const otherBytes = await rejectionOf(getVerifiedProof(client, attemptId, { trustedKeys: vkeys, payload: new TextEncoder().encode("{}"), maxWaitMs: 30_000 }));
    expect((otherBytes as ProofVerificationError).code).toBe("PAYLOAD_MISMATCH");
  });

  it("refuses a valid proof of another attempt (WRONG_ATTEMPT) or of another tenant (WRONG_TENANT), as a lying server would send", async () => {
    // A second real attempt, whose bundle verifies against the same log.
    const endpointId = (await client.management.listEndpoints({})).endpoints[0]!.id;
    const second = await client.ingest.ingest({ endpointId, payload, contentType: "application/json" });
    for await (const { event } of client.management.watchEvent({ eventId: second.eventId })) if (event?.status === EventStatus.DELIVERED) break;
    const otherAttempt = (await client.management.getEvent({ eventId: second.eventId })).event!.attempts[0]!.id;
    // The server answers every request for `attemptId` with the other attempt's (valid) bundle.
    const lying = {
      attestation: {
        ...client.attestation,
        getProofBundle: (_req: { attemptId: string }, options?: { signal?: AbortSignal }) => client.attestation.getProofBundle({ attemptId: otherAttempt }, options),
      },
    } as Pick<KapselClient, "attestation">;
    const swapped = await rejectionOf(getVerifiedProof(lying, attemptId, { trustedKeys: vkeys, maxWaitMs: 30_000 }));
    expect(swapped).toBeInstanceOf(ProofVerificationError);
    expect((swapped as ProofVerificationError).code).toBe("WRONG_ATTEMPT");
    // The right attempt, checked against the tenant the caller is.
    const proof = await getVerifiedProof(client, attemptId, { trustedKeys: vkeys, maxWaitMs: 30_000 });
    const ours = await getVerifiedProof(client, attemptId, { trustedKeys: vkeys, tenantId: proof.receipt.tenant_id });
    expect(ours.receipt.attempt_id).toBe(attemptId);
    const theirs = await rejectionOf(getVerifiedProof(client, attemptId, { trustedKeys: vkeys, tenantId: "00000000-0000-4000-8000-000000000001" }));
    expect((theirs as ProofVerificationError).code).toBe("WRONG_TENANT");
  });

  it("an unknown attempt is a KapselError (NotFound, E3003), not a verification failure", async () => {
    const err = await rejectionOf(getVerifiedProof(client, "00000000-0000-4000-8000-000000000000", { trustedKeys: vkeys }));
    expect(err).toBeInstanceOf(KapselError);
    expect([(err as KapselError).code, (err as KapselError).kapselCode]).toEqual([Code.NotFound, "E3003"]);
  });
});

describe("the README's curl and CLI path", () => {
  it("GET /v1/attempts/{id}/proof with the API key returns a bundle kapsel-verify accepts, and rejects with a wrong key", async () => {
    const res = await fetch(`${server.url}/v1/attempts/${attemptId}/proof`, { headers: { authorization: `Bearer ${apiKey}` } });
    expect(res.status).toBe(200);
    const dir = await mkdtemp(path.join(os.tmpdir(), "kapsel-proof-"));
    const file = path.join(dir, `${attemptId}.tlog-proof`);
    await writeFile(file, await res.text());
    const cli = path.join(ROOT, "verifier/dist/cli.js");
    const ok = await run(process.execPath, [cli, "proof", file, "--key", vkeys.at(-1)!]);
    expect(ok.stdout).toContain(attemptId);
    const name = vkeys[0]!.split("+")[0]!;
    const bad = await rejectionOf(run(process.execPath, [cli, "proof", file, "--key", strangerVkey(name)]));
    expect((bad as { code: number }).code).toBe(1);
  });
});
