// The master key (key-encryption key) that seals the secrets Kapsel stores: KAPSEL_MASTER_KEY, or
// on the embedded default a key generated once into KAPSEL_DATA_DIR/master-key (mode 0600, like
// the admin token), beside the embedded database it protects. With DATABASE_URL the key must come
// from the environment (config.ts refuses to start without it): several processes share such a
// database, and a key made up in each one's data folder would differ between them, or be lost with
// a container's disk and take every secret with it.
import { createHmac, randomBytes } from "node:crypto";
import path from "node:path";
import { readOrCreateSecret } from "../secret-file.ts";

export const MASTER_KEY_FILE = "master-key";

/** A master key that cannot be used (malformed, or not the key the database's secrets were
 * sealed with). Its message is one line for the operator, naming what to fix. */
export class MasterKeyError extends Error {}

export interface MasterKey {
  readonly key: Buffer;
  /** 8 bytes derived from the key, stored with every sealed value so that a wrong key is
   * recognised before anything is decrypted. It does not reveal the key. */
  readonly id: Buffer;
  /** Where it came from, for messages: "KAPSEL_MASTER_KEY" or the file's path. */
  readonly source: string;
  /** The data folder's key file, when the key came from there. */
  readonly file?: string;
}

/** The key's id: the first 8 bytes of HMAC-SHA256(key, "kapsel master key id"). */
export function masterKeyId(key: Buffer): Buffer {
  return createHmac("sha256", key).update("kapsel master key id").digest().subarray(0, 8);
}

/** Reads a base64 master key; `source` names where it came from in the error. */
export function parseMasterKey(base64: string, source: string): MasterKey {
  const trimmed = base64.trim();
  const key = Buffer.from(trimmed, "base64");
  if (!/^[A-Za-z0-9+/]{43}=$/.test(trimmed) || key.length !== 32) {
    throw new MasterKeyError(`${source}: expected the base64 of 32 random bytes (make one with: openssl rand -base64 32)`);
  }
  return { key, id: masterKeyId(key), source };
}

/** A fresh key, base64. */
export function generateMasterKey(): string {
  return randomBytes(32).toString("base64");
}

/** The configured key, or (embedded database only) the data folder's, made on first use. */
export async function resolveMasterKey(configured: Buffer | undefined, dataDir: string): Promise<MasterKey> {
  if (configured !== undefined) return { key: configured, id: masterKeyId(configured), source: "KAPSEL_MASTER_KEY" };
  const file = path.resolve(dataDir, MASTER_KEY_FILE);
  return { ...parseMasterKey(await readOrCreateSecret(file, generateMasterKey), file), file };
}
