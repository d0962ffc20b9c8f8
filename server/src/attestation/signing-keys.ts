// Where the log key lives: KAPSEL_SIGNING_KEY (a base64 Ed25519 seed, never stored), or a key
// generated on first start and stored in signing_keys, its seed sealed (secrets/secret-box.ts). `kapsel keys rotate` starts a new key; old
// checkpoints keep their old signatures and the old key stays listed with its validity period.
import { sql, type DatabasePool } from "slonik";
import { z } from "zod";
import type { SecretBox } from "../secrets/secret-box.ts";
import { signingSeed } from "../secrets/secret-columns.ts";
import { generateSeed, logKeyFromSeed, vkey, type LogKey } from "./log-key.ts";

const keyRow = z.object({
  key_id: z.instanceof(Buffer),
  name: z.string(),
  public_key: z.instanceof(Buffer),
  private_seed: z.instanceof(Buffer).nullable(),
  valid_from: z.date(),
  valid_until: z.date().nullable(),
});

export interface PublishedKey {
  vkey: string;
  keyId: string;
  validFrom: Date;
  validUntil: Date | undefined;
}

/** Reads the environment's seed; throws with the variable's name when it is not one. */
export function seedFromEnv(value: string): Buffer {
  const seed = Buffer.from(value, "base64");
  if (seed.length !== 32) throw new Error("KAPSEL_SIGNING_KEY must be the base64 of a 32-byte Ed25519 seed");
  return seed;
}

/** Makes sure the current key exists and matches configuration; returns it. A generated seed is
 * stored sealed by `secrets`. */
export async function currentKey(pool: DatabasePool, origin: string, envSeed: Buffer | undefined, secrets: SecretBox): Promise<LogKey> {
  return pool.transaction(async (tx) => {
    await tx.query(sql.unsafe`LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE`);
    const current = await tx.maybeOne(sql.type(keyRow)`
      SELECT key_id, name, public_key, private_seed, valid_from, valid_until FROM signing_keys WHERE valid_until IS NULL`);
    if (envSeed) {
      const key = logKeyFromSeed(origin, envSeed);
      if (current && current.key_id.equals(key.keyId)) return key;
      await retireAndInsert(tx, key, null);
      return key;
    }
    if (current && current.name === origin && current.private_seed) {
      return logKeyFromSeed(origin, secrets.open(current.private_seed, signingSeed(current.key_id)));
    }
    const seed = generateSeed();
    const key = logKeyFromSeed(origin, seed);
    await retireAndInsert(tx, key, secrets.seal(seed, signingSeed(key.keyId)));
    return key;
  });
}

/** Starts a new generated key now (the `kapsel keys rotate` command); its seed is stored sealed. */
export async function rotateKey(pool: DatabasePool, origin: string, secrets: SecretBox): Promise<PublishedKey> {
  const seed = generateSeed();
  const key = logKeyFromSeed(origin, seed);
  await pool.transaction(async (tx) => {
    await tx.query(sql.unsafe`LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE`);
    await retireAndInsert(tx, key, secrets.seal(seed, signingSeed(key.keyId)));
  });
  return (await publishedKeys(pool)).at(-1)!;
}

/** `sealedSeed`: the seed as stored (sealed), or null when it comes from the environment. */
async function retireAndInsert(tx: Pick<DatabasePool, "query">, key: LogKey, sealedSeed: Buffer | null): Promise<void> {
  await tx.query(sql.unsafe`UPDATE signing_keys SET valid_until = now() WHERE valid_until IS NULL`);
  await tx.query(sql.unsafe`
    INSERT INTO signing_keys (key_id, name, public_key, private_seed, valid_from)
    VALUES (${sql.binary(key.keyId)}, ${key.name}, ${sql.binary(key.publicKey)}, ${sealedSeed ? sql.binary(sealedSeed) : null}, now())
    ON CONFLICT (key_id) DO UPDATE SET valid_until = NULL, valid_from = now()`);
}

/** Every key with its validity period, oldest first. Never includes private material. */
export async function publishedKeys(pool: Pick<DatabasePool, "any">): Promise<PublishedKey[]> {
  const rows = await pool.any(sql.type(keyRow)`
    SELECT key_id, name, public_key, NULL::bytea AS private_seed, valid_from, valid_until FROM signing_keys ORDER BY valid_from`);
  return rows.map((r) => ({
    vkey: vkey(r.name, r.public_key),
    keyId: r.key_id.toString("hex"),
    validFrom: r.valid_from,
    validUntil: r.valid_until ?? undefined,
  }));
}
