// What a user of the installed packages does from plain ESM, run under each supported Node: both
// SDK entry points and the verifier load, an event goes in over gRPC (HTTP/2) and again over the
// web client's Connect-over-fetch (the same idempotency key: a duplicate), an unknown event is a
// KapselError, a received webhook verifies, and the proof bundle verifies offline.
// Usage: node sdk-on-node.mjs INPUT_JSON  ({ baseUrl, apiKey, endpointId, signingSecret, webhook, proofFile, vkey })
import { readFile } from "node:fs/promises";
import { Code, createKapselClient, idempotencyKeyFrom, KapselError, verifyWebhook } from "@kapsel/sdk";
import { createKapselClient as createWebKapselClient } from "@kapsel/sdk/web";
import { verifyProofBundle } from "@kapsel/verify";

const input = JSON.parse(await readFile(process.argv[2], "utf8"));
const node = createKapselClient({ baseUrl: input.baseUrl, apiKey: input.apiKey, transport: "grpc" });
const web = createWebKapselClient({ baseUrl: input.baseUrl, apiKey: input.apiKey });

const request = {
  endpointId: input.endpointId,
  payload: new TextEncoder().encode(JSON.stringify({ node: process.version })),
  idempotencyKey: idempotencyKeyFrom("node-version", process.version),
};
const first = await node.ingest.ingest(request);
const again = await web.ingest.ingest(request);

let unknownEvent;
try {
  await node.management.getEvent({ eventId: "00000000-0000-4000-8000-000000000000" });
} catch (err) {
  unknownEvent = err instanceof KapselError ? { code: Code[err.code], kapselCode: err.kapselCode } : String(err);
}
node.close();

const { headers, body } = input.webhook;
const webhook = await verifyWebhook(headers, body, [input.signingSecret]);
const tampered = await verifyWebhook(headers, `${body} `, [input.signingSecret]);
const proof = verifyProofBundle(await readFile(input.proofFile, "utf8"), { trustedKeys: [input.vkey] });

console.log(JSON.stringify({
  node: process.version,
  duplicateOfFirst: again.duplicate && again.eventId === first.eventId,
  unknownEvent,
  webhook: webhook.ok,
  tampered: tampered.ok ? "accepted" : tampered.reason,
  proof: proof.ok ? "verified" : proof.code,
}));
