// The start-up step for stored secrets: find the master key, make sure it is the one the
// database's secrets are sealed with (a wrong key stops the process with one line saying so,
// before anything is served), and seal any value still stored in plain text — the first start
// after migration 0010, or a row an older process wrote during an upgrade.
import type { DatabasePool } from "slonik";
import type { SecretsConfig } from "../config.ts";
import type { Logger } from "../logger.ts";
import { MasterKeyError, resolveMasterKey, type MasterKey } from "./master-key.ts";
import { SecretBox } from "./secret-box.ts";
import { sealedKeyIds, sealUnsealed } from "./stored-secrets.ts";

/** Fails unless every sealed value in the database is sealed with `key` (or with one of
 * `alsoAccepted`, hex ids, while a rotation to it is under way). */
export async function assertSealedWith(pool: DatabasePool, key: MasterKey, alsoAccepted: readonly string[] = []): Promise<void> {
  const ids = await sealedKeyIds(pool);
  const ours = key.id.toString("hex");
  const foreign = [...ids].filter(([id]) => id !== ours && !alsoAccepted.includes(id));
  if (foreign.length === 0) return;
  const [[id, count]] = foreign as [[string, number]];
  const under = ids.get(ours) ?? 0;
  throw new MasterKeyError(
    `${key.source} is not the master key the stored secrets are sealed with: ${count} secret(s) are sealed with key ${id}, ` +
    `this key is ${ours}${under > 0 ? ` (${under} secret(s) are sealed with it: an unfinished \`kapsel keys rotate-master\`? run it again with the old key)` : ""}`,
  );
}

/** Resolves the master key, checks it against the database and seals what is not yet sealed. */
export async function openSecrets(config: SecretsConfig, dataDir: string, pool: DatabasePool, log: Logger): Promise<SecretBox> {
  const key = await resolveMasterKey(config.masterKey, dataDir);
  await assertSealedWith(pool, key);
  const box = new SecretBox(key);
  const sealed = await sealUnsealed(pool, box);
  if (sealed > 0) {
    log.warn({ sealed, master_key_id: box.keyId }, "sealed secrets that were stored in plain text; their old row versions stay on disk until VACUUM reclaims them (README: Secrets at rest)");
  }
  return box;
}
