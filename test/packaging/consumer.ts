// A TypeScript user of the installed @kapsel/sdk, type-checked in a fresh project with the settings
// of `tsc --init` (module nodenext). The expected error proves the types are real, not `any`.
import { createKapselClient, EventStatus, getVerifiedProof, idempotencyKeyFrom, KapselError, verifyWebhook, type KapselClient } from "@kapsel/sdk";
import { createKapselClient as createWebKapselClient } from "@kapsel/sdk/web";

const node: KapselClient = createKapselClient({ baseUrl: "http://localhost:8080", apiKey: "ksk_example", transport: "grpc" });
const web: KapselClient = createWebKapselClient({ baseUrl: "http://localhost:8080", apiKey: () => "ksk_example" });

export async function deliverAndProve(endpointId: string, secret: string, trustedKey: string): Promise<string> {
  const payload = new TextEncoder().encode('{"type":"order.paid"}');
  const { eventId, duplicate } = await node.ingest.ingest({ endpointId, payload, idempotencyKey: idempotencyKeyFrom("order.paid", "42") });
  // @ts-expect-error endpointId is a string
  await web.ingest.ingest({ endpointId: 42 });
  const { event } = await web.management.getEvent({ eventId });
  if (event?.status !== EventStatus.DELIVERED) return duplicate ? "duplicate" : "pending";
  const received = await verifyWebhook({ "webhook-id": eventId }, "{}", [secret]);
  if (!received.ok) return received.reason;
  const proof = await getVerifiedProof(node, event.attempts[0]!.id, { trustedKeys: [trustedKey] });
  return `${proof.receipt.outcome} at ${proof.index} of ${proof.treeSize}`;
}

export const isKapselError = (err: unknown): err is KapselError => err instanceof KapselError;
