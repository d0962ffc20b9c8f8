// Signed checkpoints checked with node:crypto alone, independently of the server's signing code:
// the note layout, the 0x01 log signature, the 0x04 signed-time line, key ids and vkeys exactly as
// ATTESTATION.md §3 states them, for a generated key and for one from KAPSEL_SIGNING_KEY.
import { createPrivateKey, createPublicKey, randomBytes, verify } from "node:crypto";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  checkCheckpoint, createDestination, deliver, expectedKeyId, parseVkey, splitNote, startLoopbackSink, until, type LoopbackSink,
} from "../../test/support/attestation.ts";
import { connect } from "../../test/support/database.ts";
import { rpc } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";

const ORIGIN = "signing.test.example/log";

let sink: LoopbackSink;
beforeAll(async () => {
  sink = await startLoopbackSink();
});
afterAll(async () => sink?.close());

/** Starts a server, delivers a few events and returns it with its latest checkpoint and keys. */
async function signingServer(env: Record<string, string> = {}) {
  const server = await startTestServer({ KAPSEL_CHECKPOINT_INTERVAL_MS: "100", KAPSEL_LOG_ORIGIN: ORIGIN, ...env });
  const d = await createDestination(server.url, sink.url);
  await deliver(server.url, d, 3);
  const cp = await until("a checkpoint with the deliveries", async () => {
    const r = await rpc(server.url, "GetCheckpoint", {}, ADMIN_TOKEN);
    return Number(r.body.treeSize) >= 3 ? r.body : undefined;
  });
  const keys = (await rpc(server.url, "GetPublicKeys", {}, ADMIN_TOKEN)).body.keys;
  return { server, cp, keys };
}

describe("a checkpoint signed with a generated key", () => {
  let server: TestServer;
  let db: pg.Client;
  let cp: any;
  let keys: any[];
  beforeAll(async () => {
    ({ server, cp, keys } = await signingServer());
    db = await connect(server.databaseUrl);
  });
  afterAll(async () => {
    await db?.end();
    await server?.stop();
  });

  it("is three lines — origin, decimal size, base64 root — then an empty line and two signature lines", () => {
    const lines = (cp.checkpoint as string).split("\n");
    expect(lines.slice(0, 3)).toEqual([ORIGIN, cp.treeSize, cp.rootHash]);
    expect(lines[1]).toMatch(/^[1-9]\d*$/);
    expect(Buffer.from(lines[2]!, "base64")).toHaveLength(32);
    expect(lines[3]).toBe("");
    expect(lines[4]).toMatch(new RegExp(`^\u2014 ${ORIGIN.replaceAll(".", "\\.")} [A-Za-z0-9+/]+=*$`));
    expect(lines[5]).toMatch(new RegExp(`^\u2014 ${ORIGIN.replaceAll(".", "\\.")} [A-Za-z0-9+/]+=*$`));
    expect(lines.slice(6)).toEqual([""]);
    expect(cp.origin).toBe(ORIGIN);
  });

  it("carries a 0x01 Ed25519 signature over the note text that node:crypto verifies with the published key", () => {
    expect(keys).toHaveLength(1);
    const key = parseVkey(keys[0].vkey);
    expect(key.name).toBe(ORIGIN);
    expect(key.keyId.equals(expectedKeyId(ORIGIN, 0x01, key.publicKey))).toBe(true);
    expect(keys[0].keyId).toBe(key.keyId.toString("hex"));
    expect(keys[0].vkey).toBe(`${ORIGIN}+${key.keyId.toString("hex")}+${Buffer.concat([Buffer.of(1), key.publicKey]).toString("base64")}`);

    const { text, signatures } = splitNote(cp.checkpoint);
    expect(text).toBe(`${ORIGIN}\n${cp.treeSize}\n${cp.rootHash}\n`);
    const log = signatures.find((s) => s.payload.subarray(0, 4).equals(key.keyId))!;
    expect(log.payload).toHaveLength(4 + 64);
    expect(verify(null, Buffer.from(text), key.key, log.payload.subarray(4))).toBe(true);
    // The same signature does not cover another size.
    expect(verify(null, Buffer.from(`${ORIGIN}\n${Number(cp.treeSize) + 1}\n${cp.rootHash}\n`), key.key, log.payload.subarray(4))).toBe(false);
  });

  it("carries a 0x04 signed-time line: key id, big-endian seconds, and a signature over cosignature/v1", () => {
    const key = parseVkey(keys[0].vkey);
    const timeId = expectedKeyId(ORIGIN, 0x04, key.publicKey);
    const { text, signatures } = splitNote(cp.checkpoint);
    const line = signatures.find((s) => s.payload.subarray(0, 4).equals(timeId))!;
    expect(line.name).toBe(ORIGIN);
    expect(line.payload).toHaveLength(4 + 8 + 64);
    const seconds = line.payload.readBigUInt64BE(4);
    expect(seconds).toBe(BigInt(Math.floor(Date.parse(cp.timestamp) / 1000)));
    const message = Buffer.concat([Buffer.from(`cosignature/v1\ntime ${seconds}\n`), Buffer.from(text)]);
    expect(verify(null, message, key.key, line.payload.subarray(12))).toBe(true);
    const otherTime = Buffer.concat([Buffer.from(`cosignature/v1\ntime ${seconds + 1n}\n`), Buffer.from(text)]);
    expect(verify(null, otherTime, key.key, line.payload.subarray(12))).toBe(false);
  });

  it("every stored checkpoint verifies, and sizes never go down in signing order", async () => {
    const vkeys = keys.map((k) => k.vkey);
    const { rows } = await db.query<{ tree_size: string; root_hash: Buffer; note: string }>("SELECT tree_size, root_hash, note FROM checkpoints ORDER BY signed_at, tree_size");
    expect(rows.length).toBeGreaterThan(1);
    let last = -1n;
    for (const r of rows) {
      const c = checkCheckpoint(r.note, vkeys);
      expect(c.size).toBe(BigInt(r.tree_size));
      expect(c.root.equals(r.root_hash)).toBe(true);
      expect(c.size > last).toBe(true);
      last = c.size;
    }
    expect(await (await fetch(`${server.url}/log/checkpoint`)).text()).toBe(rows.at(-1)!.note);
  });
});

describe("a checkpoint signed with KAPSEL_SIGNING_KEY", () => {
  it("uses the configured key, which is never stored nor returned", async () => {
    const seed = randomBytes(32);
    const pkcs8 = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]);
    const publicKey = Buffer.from(createPublicKey(createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" })).export({ format: "jwk" }).x!, "base64url");
    const { server, cp, keys } = await signingServer({ KAPSEL_SIGNING_KEY: seed.toString("base64") });
    const db = await connect(server.databaseUrl);
    try {
      const expected = `${ORIGIN}+${expectedKeyId(ORIGIN, 0x01, publicKey).toString("hex")}+${Buffer.concat([Buffer.of(1), publicKey]).toString("base64")}`;
      expect(keys.map((k: { vkey: string }) => k.vkey)).toEqual([expected]);
      expect(checkCheckpoint(cp.checkpoint, [expected]).size).toBe(BigInt(cp.treeSize));
      const stored = (await db.query("SELECT private_seed FROM signing_keys")).rows;
      expect(stored).toEqual([{ private_seed: null }]);
      const everything = JSON.stringify([cp, keys]);
      for (const form of [seed.toString("base64"), seed.toString("base64url"), seed.toString("hex")]) expect(everything).not.toContain(form);
    } finally {
      await db.end();
      await server.stop();
    }
  });
});
