// The log's Ed25519 key and C2SP signed-note encoding (ATTESTATION.md §3): key IDs, vkeys, and
// checkpoints carrying the 0x01 log signature plus the 0x04 signed-time line.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from "node:crypto";

const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

export interface LogKey {
  name: string;
  publicKey: Buffer;
  privateKey: KeyObject;
  keyId: Buffer;
  timeKeyId: Buffer;
}

export function keyId(name: string, type: number, publicKey: Buffer): Buffer {
  return createHash("sha256").update(name).update(Buffer.of(0x0a, type)).update(publicKey).digest().subarray(0, 4);
}

export function logKeyFromSeed(name: string, seed: Buffer): LogKey {
  if (seed.length !== 32) throw new Error("an Ed25519 seed is 32 bytes");
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: "der", type: "pkcs8" });
  const publicKey = Buffer.from(createPublicKey(privateKey).export({ format: "jwk" }).x!, "base64url");
  return { name, publicKey, privateKey, keyId: keyId(name, 0x01, publicKey), timeKeyId: keyId(name, 0x04, publicKey) };
}

export function generateSeed(): Buffer {
  const { privateKey } = generateKeyPairSync("ed25519");
  return Buffer.from(privateKey.export({ format: "jwk" }).d!, "base64url");
}

/** The C2SP verifier key string: `<name>+<hex key id>+<base64(0x01 || public key)>`. */
export function vkey(name: string, publicKey: Buffer): string {
  return `${name}+${keyId(name, 0x01, publicKey).toString("hex")}+${Buffer.concat([Buffer.of(0x01), publicKey]).toString("base64")}`;
}

export function checkpointBody(origin: string, size: number, root: Buffer): string {
  return `${origin}\n${size}\n${root.toString("base64")}\n`;
}

/** Signs a checkpoint body: the log signature line, then the signed-time cosignature line. */
export function signCheckpoint(key: LogKey, body: string, timeSeconds: number): string {
  const text = Buffer.from(body);
  const logSig = sign(null, text, key.privateKey);
  const time = Buffer.alloc(8);
  time.writeBigUInt64BE(BigInt(timeSeconds));
  const timeSig = sign(null, Buffer.concat([Buffer.from(`cosignature/v1\ntime ${timeSeconds}\n`), text]), key.privateKey);
  return (
    `${body}\n` +
    `— ${key.name} ${Buffer.concat([key.keyId, logSig]).toString("base64")}\n` +
    `— ${key.name} ${Buffer.concat([key.timeKeyId, time, timeSig]).toString("base64")}\n`
  );
}
