// The files in verifier/examples/, which the README's worked example runs against. They are
// produced here, deterministically, by the same independent stand-in for the log the tests use;
// examples.test.ts fails if the checked-in files drift from this, and `node
// verifier/test/support/write-examples.ts` rewrites them.
import { ReferenceTree, sha256 } from "./reference-merkle.ts";
import { TestKey, b64, bundleText, canonical, cosign, signCheckpoint, uuid } from "./test-log.ts";

export const EXAMPLE_ORIGIN = "kapsel.example.com/log";

/** Seed of the example log's key. Public on purpose: it only signs these demo files. */
const EXAMPLE_SEED_LABEL = "kapsel-verify README example log key - public, never use for a real log";

const seconds = (iso: string): bigint => BigInt(Date.parse(iso) / 1000);

/** The delivery that the example bundle proves: attempt 2 of an event, after a 503. */
export const EXAMPLE_INDEX = 7;

export function buildExamples(): Map<string, string> {
  const key = new TestKey(EXAMPLE_ORIGIN, sha256(Buffer.from(EXAMPLE_SEED_LABEL)));
  const body = '{"type":"invoice.paid","data":{"invoice":"inv_1042","amount":4200,"currency":"EUR"}}\n';
  const receipts: Record<string, unknown>[] = [];
  for (let i = 0; i < 12; i++) {
    const showcased = i === EXAMPLE_INDEX || i === EXAMPLE_INDEX - 1;
    const payload = showcased ? body : `{"type":"demo.event","n":${i}}`;
    const firstTry = showcased ? i === EXAMPLE_INDEX - 1 : i % 4 === 1;
    receipts.push({
      v: 1,
      attempt_id: uuid(`example attempt ${i}`),
      event_id: uuid(`example event ${showcased ? "invoice" : i}`),
      tenant_id: uuid(`example tenant ${showcased ? "acme" : i % 3}`),
      endpoint_id: uuid(`example endpoint ${showcased ? "acme" : i % 3}`),
      url: showcased ? "https://hooks.acme.example/kapsel" : `https://tenant${i % 3}.example.net/webhooks`,
      attempt: showcased ? (i === EXAMPLE_INDEX ? 2 : 1) : 1,
      payload_sha256: sha256(Buffer.from(payload)).toString("hex"),
      started_at: new Date(Date.parse("2026-11-22T10:30:00.000Z") + i * 3_517).toISOString(),
      duration_ms: 95 + ((i * 37) % 200),
      outcome: firstTry ? "http_error" : "delivered",
      status_code: firstTry ? 503 : 200,
      response_sha256: sha256(Buffer.from(firstTry ? "Service Unavailable" : "ok")).toString("hex"),
    });
  }
  const leaves = receipts.map((r) => Buffer.from(canonical(r), "utf8"));
  const tree = new ReferenceTree(leaves);
  const checkpoint = (size: number, time: string): string =>
    signCheckpoint(key, `${EXAMPLE_ORIGIN}\n${size}\n${b64(tree.mth(0, size))}\n`, {
      time: seconds(time),
      extraLines: [],
    });
  const checkpoint8 = checkpoint(8, "2026-11-22T10:31:00Z");
  const checkpoint12 = checkpoint(12, "2026-11-22T10:32:00Z");

  // Two demo witnesses (keys as public as the log's); only the first cosigned checkpoint 12.
  const witnessA = new TestKey("witness-a.example", sha256(Buffer.from("kapsel-verify README example witness A - public")));
  const witnessB = new TestKey("witness-b.example", sha256(Buffer.from("kapsel-verify README example witness B - public")));
  const cosigned12 = cosign(checkpoint12, witnessA, seconds("2026-11-22T10:32:05Z"));

  // The same bundle with the receipt's outcome rewritten: what a forger would have to produce.
  const forged = { ...receipts[EXAMPLE_INDEX - 1]!, outcome: "delivered", status_code: 200 };

  return new Map([
    ["log.vkey", `# The example log's public key (obtain a real log's key out of band).\n${key.vkey}\n`],
    ["payload.json", body],
    ["attempt.tlog-proof", bundleText(leaves[EXAMPLE_INDEX]!, EXAMPLE_INDEX, tree.path(EXAMPLE_INDEX, 12), checkpoint12)],
    [
      "forged.tlog-proof",
      bundleText(Buffer.from(canonical(forged)), EXAMPLE_INDEX - 1, tree.path(EXAMPLE_INDEX - 1, 12), checkpoint12),
    ],
    ["checkpoint-8.txt", checkpoint8],
    ["checkpoint-12.txt", checkpoint12],
    ["consistency-8-12.txt", tree.consistency(8, 12).map((h) => `${b64(h)}\n`).join("")],
    ["witnesses.vkeys", `# Two demo witnesses (obtain real witnesses' keys from their operators).\n${witnessA.witnessVkey}\n${witnessB.witnessVkey}\n`],
    ["checkpoint-12-cosigned.txt", cosigned12],
  ]);
}
