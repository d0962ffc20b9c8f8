// `kapsel keys rotate` against a running `kapsel serve` process: new checkpoints carry the new key,
// both keys are listed with their validity periods, bundles issued before still verify with the old
// key, and the private keys appear in no RPC answer, no CLI output and no line the server logs.
import { verifyProofBundle } from "@kapsel/verify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  bundleFor, checkBundle, checkCheckpoint, createDestination, deliver, kapselCli, parseVkey, splitNote, startLoopbackSink, until, type LoopbackSink,
} from "../../test/support/attestation.ts";
import { connect, createTestDatabase } from "../../test/support/database.ts";
import { rpc } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, spawnServer, type ServerProcess } from "../../test/support/server.ts";
import { testSecretBox } from "../../test/support/secrets.ts";
import { signingSeed } from "../src/secrets/secret-columns.ts";
import { SEQUENCER_LOCK } from "../src/attestation/sequencer.ts";

const ORIGIN = "rotation.test.example/log";

let sink: LoopbackSink;
let server: ServerProcess | undefined;
beforeAll(async () => {
  sink = await startLoopbackSink();
});
afterAll(async () => {
  await server?.stop("SIGKILL");
  await sink?.close();
});

describe("kapsel keys rotate", () => {
  it("switches new checkpoints to a new key while old bundles keep verifying, and never reveals a private key", async () => {
    const url = await createTestDatabase();
    const env = { DATABASE_URL: url, KAPSEL_LOG_ORIGIN: ORIGIN };
    server = await spawnServer({ ...env, KAPSEL_CHECKPOINT_INTERVAL_MS: "100", KAPSEL_LOG_LEVEL: "debug" });
    const s = server;
    const dest = await createDestination(s.url, sink.url);
    const answers: string[] = [];
    const call = async (method: string, body: unknown) => {
      const r = await rpc(s.url, method, body, dest.apiKey);
      answers.push(JSON.stringify(r.body));
      return r;
    };

    const [before] = await deliver(s.url, dest, 3, "before");
    const oldBundle = await bundleFor(s.url, dest.apiKey, before.id);
    answers.push(oldBundle);
    const [oldKey] = (await call("GetPublicKeys", {})).body.keys;
    const oldCheckpoint = (await call("GetCheckpoint", {})).body;
    checkCheckpoint(oldCheckpoint.checkpoint, [oldKey.vkey]);

    const rotated = await kapselCli(["keys", "rotate"], env);
    expect(rotated.code).toBe(0);
    const newVkey = /^(\S+\+[0-9a-f]{8}\+\S+)$/m.exec(rotated.stdout)?.[1];
    expect(newVkey).toBeDefined();
    expect(newVkey).not.toBe(oldKey.vkey);
    expect(parseVkey(newVkey!).name).toBe(ORIGIN);

    const [after] = await deliver(s.url, dest, 3, "after");
    const latest = await until("a checkpoint signed with the new key", async () => {
      const cp = (await call("GetCheckpoint", {})).body;
      try {
        checkCheckpoint(cp.checkpoint, [newVkey!]);
        return cp;
      } catch {
        return undefined;
      }
    });
    // Only the new key signs it: no line of the old key.
    const oldIds = splitNote(oldCheckpoint.checkpoint).signatures.map((x) => x.payload.subarray(0, 4));
    expect(splitNote(latest.checkpoint).signatures.some((x) => oldIds.some((id) => x.payload.subarray(0, 4).equals(id)))).toBe(false);
    expect(() => checkCheckpoint(latest.checkpoint, [oldKey.vkey])).toThrow();

    const keys = (await call("GetPublicKeys", {})).body.keys;
    expect(keys.map((k: { vkey: string }) => k.vkey)).toEqual([oldKey.vkey, newVkey]);
    expect(keys[0].validUntil).toBeDefined();
    expect(keys[1].validUntil).toBeUndefined();
    expect(keys[0].validUntil).toBe(keys[1].validFrom);
    expect(Date.parse(keys[0].validFrom)).toBeLessThan(Date.parse(keys[1].validFrom));

    // The bundle issued before the rotation verifies with the old key alone, not the new one.
    expect(verifyProofBundle(oldBundle, { trustedKeys: [oldKey.vkey], requireTimestamp: true })).toMatchObject({ ok: true });
    expect(verifyProofBundle(oldBundle, { trustedKeys: [newVkey!] })).toMatchObject({ ok: false });
    expect(checkBundle(oldBundle, [oldKey.vkey]).receipt.attempt_id).toBe(before.id);
    // The old checkpoint is still served for proofs at its size, with its old signature.
    const atOld = (await call("GetInclusionProof", { attemptId: before.id, treeSize: oldCheckpoint.treeSize })).body;
    expect(atOld.checkpoint).toBe(oldCheckpoint.checkpoint);
    // A bundle made now is signed with the new key.
    const newBundle = await bundleFor(s.url, dest.apiKey, after.id);
    answers.push(newBundle);
    expect(verifyProofBundle(newBundle, { trustedKeys: [newVkey!] })).toMatchObject({ ok: true });
    expect(verifyProofBundle(newBundle, { trustedKeys: [oldKey.vkey] })).toMatchObject({ ok: false });
    expect(verifyProofBundle(newBundle, { trustedKeys: keys.map((k: { vkey: string }) => k.vkey) })).toMatchObject({ ok: true });

    const db = await connect(url);
    try {
      // Signing order: the old key until the rotation, the new one after, never back.
      const signers = (await db.query<{ note: string }>("SELECT note FROM checkpoints ORDER BY signed_at, tree_size")).rows.map(
        (r) => checkCheckpoint(r.note, [oldKey.vkey, newVkey!]).vkey,
      );
      const switchAt = signers.indexOf(newVkey!);
      expect(switchAt).toBeGreaterThan(0);
      expect(signers.slice(0, switchAt).every((v) => v === oldKey.vkey)).toBe(true);
      expect(signers.slice(switchAt).every((v) => v === newVkey)).toBe(true);

      const listed = await kapselCli(["keys", "list"], env);
      expect(listed.code).toBe(0);
      expect(listed.stdout).toContain(oldKey.vkey);
      expect(listed.stdout).toContain(newVkey);

      answers.push(await (await fetch(`${s.url}/log/checkpoint`)).text());
      const tile = Buffer.from(await (await fetch(`${s.url}/log/tile/0/000.p/6`)).arrayBuffer());
      await s.stop("SIGTERM");

      // Stored sealed under the master key: opened here to look for them everywhere else.
      const stored = (await db.query<{ key_id: Buffer; private_seed: Buffer }>("SELECT key_id, private_seed FROM signing_keys ORDER BY valid_from")).rows;
      const seeds = stored.map((r) => testSecretBox().open(r.private_seed, signingSeed(r.key_id)));
      expect(seeds).toHaveLength(2);
      for (const [i, r] of stored.entries()) expect(r.private_seed.includes(seeds[i]!)).toBe(false);
      // The debug log has plenty to search through.
      expect(s.output()).toContain("checkpoint signed");
      const everything = [s.output(), rotated.stdout, rotated.stderr, listed.stdout, listed.stderr, ...answers].join("\n");
      for (const seed of seeds) {
        expect(seed).toHaveLength(32);
        const pkcs8 = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]);
        for (const form of [seed.toString("base64"), seed.toString("base64url"), seed.toString("hex"), pkcs8.toString("base64")]) {
          expect(everything).not.toContain(form);
        }
        expect(tile.includes(seed)).toBe(false);
      }
    } finally {
      await db.end();
    }
  }, 120_000);

  it("refuses to rotate when the key comes from KAPSEL_SIGNING_KEY", async () => {
    const url = await createTestDatabase();
    const r = await kapselCli(["keys", "rotate"], { DATABASE_URL: url, KAPSEL_SIGNING_KEY: Buffer.alloc(32, 7).toString("base64") });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("KAPSEL_SIGNING_KEY");
  });
});

describe("the log key on a fresh database", () => {
  it("is listed by GetPublicKeys from the first request on, even while another process leads the log", async () => {
    const url = await createTestDatabase();
    // Another process holds the sequencer's lead (and never signs): the new server only serves.
    const leader = await connect(url);
    let fresh: ServerProcess | undefined;
    try {
      expect((await leader.query("SELECT pg_try_advisory_lock($1) AS ok", [SEQUENCER_LOCK])).rows[0].ok).toBe(true);
      fresh = await spawnServer({ DATABASE_URL: url, KAPSEL_LOG_ORIGIN: ORIGIN });
      const keys = (await rpc(fresh.url, "GetPublicKeys", {}, ADMIN_TOKEN)).body.keys;
      expect(keys).toHaveLength(1);
      expect(parseVkey(keys[0].vkey).name).toBe(ORIGIN);
    } finally {
      await fresh?.stop();
      await leader.end();
    }
  });
});
