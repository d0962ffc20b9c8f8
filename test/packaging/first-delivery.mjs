// A first delivery through the installed @kapsel/sdk, run with Node in a fresh project: a tenant
// made with the admin token, an endpoint, an event over gRPC, followed until delivered, and the
// proof of its attempt verified against the log's published keys and written to a file.
// Usage: node first-delivery.mjs BASE_URL ADMIN_TOKEN RECEIVER_URL PROOF_FILE
import { writeFile } from "node:fs/promises";
import { createKapselClient, EventStatus, getVerifiedProof } from "@kapsel/sdk";

const [baseUrl, adminToken, receiverUrl, proofFile] = process.argv.slice(2);

const admin = createKapselClient({ baseUrl, apiKey: adminToken });
const { apiKey } = await admin.management.createTenant({ name: "first-delivery" });
const kapsel = createKapselClient({ baseUrl, apiKey, transport: "grpc" });
const { endpoint, signingSecret } = await kapsel.management.createEndpoint({ url: receiverUrl, allowHttp: true });
const payload = new TextEncoder().encode(JSON.stringify({ type: "order.paid", order: 42 }));
const { eventId } = await kapsel.ingest.ingest({ endpointId: endpoint.id, payload, contentType: "application/json" });

let status;
for await (const { event } of kapsel.management.watchEvent({ eventId })) status = event?.status;
const { event } = await kapsel.management.getEvent({ eventId });
const attemptId = event.attempts[0].id;
const { keys } = await kapsel.attestation.getPublicKeys({});
const proof = await getVerifiedProof(kapsel, attemptId, { trustedKeys: keys.map((k) => k.vkey), payload, maxWaitMs: 30_000 });
await writeFile(proofFile, proof.bundle);

kapsel.close();
admin.close();
console.log(JSON.stringify({
  apiKey,
  endpointId: endpoint.id,
  signingSecret,
  eventId,
  delivered: status === EventStatus.DELIVERED,
  attemptId,
  vkey: proof.signedBy.vkey,
  payloadVerified: proof.payloadVerified,
}));
