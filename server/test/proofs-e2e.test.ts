// Proofs issued by a running server for real deliveries (ingest → loopback sink → recorded attempt
// → sequenced leaf → signed checkpoint), checked with the test's own RFC 6962 code and node:crypto,
// and with the standalone verifier @kapsel/verify; plus the plain-HTTP reads of the log.
import { verifyConsistency, verifyProofBundle } from "@kapsel/verify";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  attestationClient, bundleFor, checkBundle, checkCheckpoint, createDestination, deliver, firstAttempt, ingest,
  insertSyntheticAttempts, sha256, startLoopbackSink, treeSize, until, vkeysOf, type Destination, type LoopbackSink,
} from "../../test/support/attestation.ts";
import { connect } from "../../test/support/database.ts";
import { ReferenceTree, refRootFromInclusion, refLeafHash, refVerifyConsistency } from "../../test/support/rfc6962-reference.ts";
import { errorCode, rpc } from "../../test/support/rpc.ts";
import { startTestServer, type TestServer } from "../../test/support/server.ts";

const ORIGIN = "proofs.test.example/log";

let server: TestServer;
let sink: LoopbackSink;
let dest: Destination;
let db: pg.Client;
let keys: string[];
let attempts: any[];

beforeAll(async () => {
  server = await startTestServer({ KAPSEL_CHECKPOINT_INTERVAL_MS: "100", KAPSEL_LOG_ORIGIN: ORIGIN });
  sink = await startLoopbackSink();
  dest = await createDestination(server.url, sink.url);
  db = await connect(server.databaseUrl);
  attempts = await deliver(server.url, dest, 12);
  keys = await vkeysOf(server.url, dest.apiKey);
});
afterAll(async () => {
  await db?.end();
  await server?.stop();
  await sink?.close();
});

/** Waits until every recorded attempt is in the log and no new checkpoint is coming. */
async function settled(): Promise<number> {
  return until("the log to catch up with the recorded attempts", async () => {
    const { rows } = await db.query<{ a: string; q: string }>("SELECT (SELECT count(*) FROM delivery_attempts) AS a, (SELECT count(*) FROM log_queue) AS q");
    const size = await treeSize(db);
    return rows[0]!.q === "0" && Number(rows[0]!.a) === size ? size : undefined;
  });
}

async function storedReference(): Promise<ReferenceTree> {
  const { rows } = await db.query<{ receipt: Buffer }>("SELECT receipt FROM log_leaves ORDER BY idx");
  return new ReferenceTree(rows.map((r) => r.receipt));
}

describe("proof bundles", () => {
  it("verify with the test's reference and with @kapsel/verify, and bind the receipt to the delivery", async () => {
    expect(keys).toHaveLength(1);
    const indexes = new Set<bigint>();
    for (const [i, a] of attempts.entries()) {
      const text = await bundleFor(server.url, dest.apiKey, a.id);
      const { bundle, checkpoint, receipt } = checkBundle(text, keys);
      indexes.add(bundle.index);
      expect(checkpoint.origin).toBe(ORIGIN);
      expect(receipt).toMatchObject({ v: 1, attempt_id: a.id, tenant_id: dest.tenantId, endpoint_id: dest.endpointId, url: sink.url, attempt: 1, outcome: "delivered", status_code: 200 });
      const body = sink.bodies.find((b) => sha256(b).toString("hex") === receipt.payload_sha256);
      expect(body && JSON.parse(body.toString())).toEqual({ type: "test", tag: "e", i });
      expect(receipt.response_sha256).toBe(sha256("ok").toString("hex"));

      const verified = verifyProofBundle(text, { trustedKeys: keys, requireTimestamp: true, payload: body });
      expect(verified).toMatchObject({ ok: true, index: bundle.index, treeSize: checkpoint.size, timestamp: checkpoint.time, payloadVerified: true });
      // The verifier must also reject what the reference rejects: another payload.
      expect(verifyProofBundle(text, { trustedKeys: keys, payload: Buffer.from("{}") })).toMatchObject({ ok: false, code: "PAYLOAD_MISMATCH" });
    }
    expect(indexes.size).toBe(attempts.length);
  });

  it("are served the same by GET /v1/attempts/{id}/proof", async () => {
    await settled();
    for (const a of attempts.slice(0, 4)) {
      const viaRpc = await rpc(server.url, "GetProofBundle", { attemptId: a.id }, dest.apiKey);
      const res = await fetch(`${server.url}/v1/attempts/${a.id}/proof`, { headers: { authorization: `Bearer ${dest.apiKey}` } });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
      expect(res.headers.get("content-disposition")).toBe(`attachment; filename="${a.id}.tlog-proof"`);
      expect(await res.text()).toBe(viaRpc.body.bundle);
    }
  });

  it("GetInclusionProof at an older signed size proves against that checkpoint", async () => {
    const first = await settled();
    const old = (await rpc(server.url, "GetCheckpoint", {}, dest.apiKey)).body;
    expect(Number(old.treeSize)).toBe(first);
    await deliver(server.url, dest, 3, "later");
    const latest = await settled();
    expect(latest).toBe(first + 3);

    const a = attempts[2];
    const atOld = await rpc(server.url, "GetInclusionProof", { attemptId: a.id, treeSize: String(first) }, dest.apiKey);
    expect(atOld.status).toBe(200);
    expect(atOld.body.treeSize).toBe(String(first));
    expect(atOld.body.checkpoint).toBe(old.checkpoint);
    const opened = checkCheckpoint(atOld.body.checkpoint, keys);
    const leaf = refLeafHash(Buffer.from(atOld.body.receipt, "base64"));
    const proof = (atOld.body.proof as string[]).map((p) => Buffer.from(p, "base64"));
    expect(refRootFromInclusion(BigInt(atOld.body.leafIndex), opened.size, leaf, proof)?.equals(opened.root)).toBe(true);

    const now = await rpc(server.url, "GetInclusionProof", { attemptId: a.id }, dest.apiKey);
    expect(now.body).toMatchObject({ leafIndex: atOld.body.leafIndex, treeSize: String(latest), receipt: atOld.body.receipt });
    const ref = await storedReference();
    expect(now.body.proof).toEqual(ref.path(Number(now.body.leafIndex), latest).map((h) => h.toString("base64")));

    // A size the leaf is not in, and a size never signed.
    const index = Number(atOld.body.leafIndex);
    const before = await rpc(server.url, "GetInclusionProof", { attemptId: attempts[attempts.length - 1].id, treeSize: String(index + 1) }, dest.apiKey);
    expect(errorCode(before.body)).toBe("E3002");
    const beyond = await rpc(server.url, "GetInclusionProof", { attemptId: a.id, treeSize: String(latest + 10) }, dest.apiKey);
    expect(beyond.status).toBe(400);
    expect(errorCode(beyond.body)).toBe("E3002");
  });
});

describe("consistency proofs", () => {
  it("between two checkpoints verify with the reference and with @kapsel/verify", async () => {
    const oldSize = await settled();
    const old = (await rpc(server.url, "GetCheckpoint", {}, dest.apiKey)).body;
    await deliver(server.url, dest, 5, "more");
    const newSize = await settled();
    const cur = (await rpc(server.url, "GetCheckpoint", {}, dest.apiKey)).body;
    expect([Number(old.treeSize), Number(cur.treeSize)]).toEqual([oldSize, newSize]);

    const r = await rpc(server.url, "GetConsistencyProof", { oldSize: old.treeSize, newSize: cur.treeSize }, dest.apiKey);
    expect(r.status).toBe(200);
    const proof = (r.body.proof as string[]).map((p) => Buffer.from(p, "base64"));
    const a = checkCheckpoint(old.checkpoint, keys);
    const b = checkCheckpoint(cur.checkpoint, keys);
    expect(refVerifyConsistency(a.size, b.size, a.root, b.root, proof)).toBe(true);
    expect(Buffer.from(old.rootHash, "base64").equals(a.root)).toBe(true);
    expect(verifyConsistency(old.checkpoint, cur.checkpoint, proof, keys)).toMatchObject({ ok: true });
    // A proof for other sizes does not link these checkpoints.
    const wrong = (await rpc(server.url, "GetConsistencyProof", { oldSize: String(oldSize - 1), newSize: cur.treeSize }, dest.apiKey)).body.proof;
    expect(refVerifyConsistency(a.size, b.size, a.root, b.root, wrong.map((p: string) => Buffer.from(p, "base64")))).toBe(false);

    const same = await rpc(server.url, "GetConsistencyProof", { oldSize: cur.treeSize, newSize: cur.treeSize }, dest.apiKey);
    expect(same.status).toBe(200);
    expect(same.body.proof ?? []).toEqual([]);
  });

  it("answer E3002 for sizes out of range", async () => {
    const latest = await settled();
    for (const [oldSize, newSize] of [[0, latest], [latest, latest - 1], [1, latest + 1], [latest + 1, latest + 1], ["18446744073709551615", "18446744073709551615"]]) {
      const r = await rpc(server.url, "GetConsistencyProof", { oldSize: String(oldSize), newSize: String(newSize) }, dest.apiKey);
      expect(r.status, `${oldSize} → ${newSize}`).toBe(400);
      expect(r.body.code).toBe("invalid_argument");
      expect(errorCode(r.body)).toBe("E3002");
    }
  });
});

describe("WatchCheckpoints", () => {
  it("streams the latest checkpoint, then each larger one as it is signed", async () => {
    const start = await settled();
    const abort = new AbortController();
    const seen: { size: bigint; note: string; root: Uint8Array; origin: string }[] = [];
    const client = attestationClient(server.url, dest.apiKey);
    const watching = (async () => {
      for await (const m of client.watchCheckpoints({}, { signal: abort.signal })) {
        const c = m.checkpoint!;
        seen.push({ size: c.treeSize, note: c.checkpoint, root: c.rootHash, origin: c.origin });
        if (seen.length === 4) break;
      }
    })();
    await until("the first streamed checkpoint", () => (seen.length > 0 ? true : undefined));
    for (let i = 0; seen.length < 4; i++) {
      await deliver(server.url, dest, 1, `watch ${i}`);
      await new Promise((r) => setTimeout(r, 150));
    }
    await watching;
    abort.abort();
    expect(seen[0]!.size).toBe(BigInt(start));
    for (const [i, c] of seen.entries()) {
      const opened = checkCheckpoint(c.note, keys);
      expect(opened.size).toBe(c.size);
      expect(Buffer.from(c.root).equals(opened.root)).toBe(true);
      expect(c.origin).toBe(ORIGIN);
      if (i > 0) expect(c.size > seen[i - 1]!.size).toBe(true);
    }
  });
});

describe("the tiles read API", () => {
  it("serves the latest checkpoint and hash tiles equal to the leaf hashes; entry bundles are not public", async () => {
    await insertSyntheticAttempts(db, 300 - (await settled()) + 17);
    const size = await settled();
    expect(size).toBe(317);
    const ref = await storedReference();
    const latest = (await rpc(server.url, "GetCheckpoint", {}, dest.apiKey)).body;

    const cp = await fetch(`${server.url}/log/checkpoint`);
    expect(cp.status).toBe(200);
    expect(cp.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(await cp.text()).toBe(latest.checkpoint);

    const tile = async (path: string) => {
      const res = await fetch(`${server.url}/log/tile/${path}`);
      return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()), cache: res.headers.get("cache-control") };
    };
    const full = await tile("0/000");
    expect(full.status).toBe(200);
    expect(full.bytes.equals(Buffer.concat(ref.leafHashes.slice(0, 256)))).toBe(true);
    expect(full.cache).toContain("immutable");
    const partial = await tile("0/001.p/61");
    expect(partial.status).toBe(200);
    expect(partial.bytes.equals(Buffer.concat(ref.leafHashes.slice(256, 317)))).toBe(true);
    expect((await tile("0/001.p/5")).bytes.equals(Buffer.concat(ref.leafHashes.slice(256, 261)))).toBe(true);
    expect((await tile("1/000.p/1")).bytes.equals(ref.mth(0, 256))).toBe(true);

    // Every signed size has its partial tile.
    const { rows } = await db.query<{ s: string }>("SELECT tree_size AS s FROM checkpoints WHERE tree_size % 256 <> 0");
    for (const s of rows.map((r) => Number(r.s))) {
      const t = await tile(`0/00${Math.floor(s / 256)}.p/${s % 256}`);
      expect(t.status, `partial tile for size ${s}`).toBe(200);
      expect(t.bytes.equals(Buffer.concat(ref.leafHashes.slice(s - (s % 256), s)))).toBe(true);
    }

    for (const missing of ["0/001", "0/001.p/62", "0/002.p/1", "1/000", "0/000.p/0", "0/000.p/256", "entries/000", "entries/000.p/5", "entries/001.p/61", "0/00", "0/x000/000", "00/000", "0/000.p/05", "x/000"]) {
      expect((await tile(missing)).status, missing).toBe(404);
    }
  });
});

describe("before an attempt is sequenced", () => {
  it("GetProofBundle answers E3001 FailedPrecondition with RetryInfo; the last checkpoint at shutdown covers it", async () => {
    // A long interval: the recorded attempt waits for the sequencer.
    const slow = await startTestServer({ KAPSEL_CHECKPOINT_INTERVAL_MS: "3600000", KAPSEL_LOG_ORIGIN: ORIGIN });
    let restarted: TestServer | undefined;
    try {
      const d = await createDestination(slow.url, sink.url, "slow");
      // The sequencer's first pass (at start) signs the empty tree; after it, nothing until stop.
      await until("the first checkpoint", async () => ((await rpc(slow.url, "GetCheckpoint", {}, d.apiKey)).status === 200 ? true : undefined));
      const attempt = await firstAttempt(slow.url, d.apiKey, await ingest(slow.url, d.endpointId, '{"type":"slow"}'));

      for (const method of ["GetProofBundle", "GetInclusionProof"]) {
        const r = await rpc(slow.url, method, { attemptId: attempt.id }, d.apiKey);
        expect(r.status, method).toBe(400);
        expect(r.body.code).toBe("failed_precondition");
        expect(errorCode(r.body)).toBe("E3001");
        expect(r.body.details.map((x: { type: string }) => x.type)).toContain("google.rpc.RetryInfo");
      }
      const curl = await fetch(`${slow.url}/v1/attempts/${attempt.id}/proof`, { headers: { authorization: `Bearer ${d.apiKey}` } });
      expect(curl.status).toBe(409);
      expect(curl.headers.get("retry-after")).not.toBeNull();
      expect((await curl.json()).code).toBe("E3001");

      await slow.stop();
      restarted = await startTestServer({ DATABASE_URL: slow.databaseUrl, KAPSEL_CHECKPOINT_INTERVAL_MS: "3600000", KAPSEL_LOG_ORIGIN: ORIGIN });
      const text = (await rpc(restarted.url, "GetProofBundle", { attemptId: attempt.id }, d.apiKey)).body.bundle;
      expect(checkBundle(text, await vkeysOf(restarted.url, d.apiKey)).receipt.attempt_id).toBe(attempt.id);
    } finally {
      await slow.stop();
      await restarted?.stop();
    }
  });
});
