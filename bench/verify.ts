// `npm run bench -- verify`: time to verify one proof bundle with @kapsel/verify at tree sizes
// 2^10, 2^20 and 2^30 (target ≤ 4 ms per verification).
//
// How the bundles are built: trees this large are not materialised. Each bundle is an honest
// RFC 6962 inclusion proof in a *synthetic* tree (verifier/test/support/synthetic-tree.ts) in
// which every complete subtree off the leaf's path has a pseudo-random hash, which is exactly
// what a real tree with unknown leaves looks like to a verifier. The checkpoint is signed with
// node:crypto Ed25519 (log signature plus signed-time line), and the leaf is a real canonical
// receipt. Verification cost depends only on the proof length (10, 20, 30 hashes), the receipt
// and the two Ed25519 checks, so these figures are what a verifier of a real log that size pays.
import { randomBytes } from "node:crypto";
import { cpus, loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import { verifyInclusionProof, verifyProofBundle, leafHash } from "../verifier/src/index.ts";
import { SyntheticTree } from "../verifier/test/support/synthetic-tree.ts";
import { TestKey, b64, bundleText, canonical, receiptFor, seedOf, signCheckpoint } from "../verifier/test/support/test-log.ts";

const TARGET_MS = 4;
const WARMUP = 300;
const ITERATIONS = 2_000;

interface Figures {
  readonly median: number;
  readonly p99: number;
  readonly mean: number;
}

function measure(iterations: number, once: () => void): Figures {
  for (let i = 0; i < WARMUP; i++) once();
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const start = performance.now();
    once();
    samples.push(performance.now() - start);
  }
  samples.sort((a, b) => a - b);
  return {
    median: samples[Math.floor(samples.length / 2)]!,
    p99: samples[Math.min(samples.length - 1, Math.ceil(samples.length * 0.99) - 1)]!,
    mean: samples.reduce((sum, x) => sum + x, 0) / samples.length,
  };
}

const ms = (x: number): string => `${x.toFixed(3)} ms`;

export default async function run(): Promise<void> {
  const key = new TestKey("kapsel.example.com/log", seedOf("bench log key"));
  const payload = Buffer.from('{"type":"invoice.paid","data":{"invoice":"inv_1042","amount":4200}}');
  const leaf = Buffer.from(canonical(receiptFor(1, payload)));

  console.log(`@kapsel/verify: verifyProofBundle, ${ITERATIONS} runs per size after ${WARMUP} warm-up runs`);
  console.log(
    `node ${process.version}, ${cpus()[0]?.model ?? "unknown CPU"} (${cpus().length} cores), load average ${loadavg()[0]!.toFixed(2)}`,
  );
  console.log("proofs: honest RFC 6962 paths in synthetic trees (random hashes for off-path subtrees)\n");
  console.log("tree size  proof  full bundle median  p99       mean      | inclusion only median  p99");

  let worstMedian = 0;
  let worstP99 = 0;
  for (const exponent of [10, 20, 30]) {
    const size = 1n << BigInt(exponent);
    const index = BigInt(`0x${randomBytes(8).toString("hex")}`) % size;
    const tree = new SyntheticTree(size, index, leaf, randomBytes(32));
    const proof = tree.inclusionProof();
    const root = tree.root();
    const text = `${key.name}\n${size}\n${b64(root)}\n`;
    const checkpoint = signCheckpoint(key, text, { time: 1_795_343_520n, extraLines: [] });
    const bundle = bundleText(leaf, index, proof, checkpoint);
    const options = { trustedKeys: [key.vkey], requireTimestamp: true, payload };

    const check = verifyProofBundle(bundle, options);
    if (!check.ok) throw new Error(`bench bundle does not verify: ${check.code} ${check.message}`);

    const full = measure(ITERATIONS, () => {
      if (!verifyProofBundle(bundle, options).ok) throw new Error("verification failed");
    });
    const hash = leafHash(leaf);
    const inclusion = measure(ITERATIONS * 5, () => {
      if (!verifyInclusionProof(index, size, hash, proof, root).ok) throw new Error("inclusion failed");
    });
    worstMedian = Math.max(worstMedian, full.median);
    worstP99 = Math.max(worstP99, full.p99);
    console.log(
      `2^${exponent}`.padEnd(11) +
        `${proof.length}`.padEnd(7) +
        ms(full.median).padEnd(20) +
        ms(full.p99).padEnd(10) +
        ms(full.mean).padEnd(10) +
        "| " +
        ms(inclusion.median).padEnd(23) +
        ms(inclusion.p99),
    );
  }
  console.log(
    `\ntarget ≤ ${TARGET_MS} ms per verification: median ${worstMedian <= TARGET_MS ? "meets it" : "MISSES it"} ` +
      `(worst median ${ms(worstMedian)}); p99 ${worstP99 <= TARGET_MS ? "meets it" : "misses it"} (worst p99 ${ms(worstP99)})`,
  );
  console.log("almost all of the time is the two Ed25519 checks (log signature and signed time); see 'inclusion only'");
}
