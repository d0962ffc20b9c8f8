// `kapsel keys rotate-master`: every stored secret re-sealed under a new master key, one row at a
// time (each row's update is atomic, and compare-and-set against concurrent changes). An
// interrupted run is finished by running it again with the same keys: values already under the new
// key are left alone. The old key opens nothing afterwards. When the old key was the data folder's
// generated one, the file is replaced last (written beside it, then renamed over it), so a crash
// before that point leaves the old key in place for the re-run.
import { chmod, rename, writeFile } from "node:fs/promises";
import type { DatabasePool } from "slonik";
import { MasterKeyError, type MasterKey } from "./master-key.ts";
import { assertSealedWith } from "./open-secrets.ts";
import { SecretBox } from "./secret-box.ts";
import { reseal, sealedKeyIds, sealUnsealed } from "./stored-secrets.ts";

export interface MasterKeyRotation {
  resealed: number;
  fromKeyId: string;
  toKeyId: string;
  /** Set when the data folder's key file now holds the new key. */
  replacedFile: string | undefined;
}

export async function rotateMasterKey(pool: DatabasePool, current: MasterKey, next: MasterKey): Promise<MasterKeyRotation> {
  if (current.id.equals(next.id)) throw new MasterKeyError("the new master key is the current one");
  // Everything must be under one of the two keys: anything else means the current key is wrong.
  await assertSealedWith(pool, current, [next.id.toString("hex")]);
  const from = new SecretBox(current);
  const to = new SecretBox(next);
  // Values never sealed (no start since migration 0010) go straight under the new key.
  let resealed = await sealUnsealed(pool, to);
  resealed += await reseal(pool, from, to);
  const left = [...(await sealedKeyIds(pool)).keys()].filter((id) => id !== to.keyId);
  if (left.length > 0) throw new MasterKeyError(`secrets sealed with ${left.join(", ")} remain (changed while rotating?); run the command again`);
  let replacedFile: string | undefined;
  if (current.file !== undefined) {
    const temporary = `${current.file}.new`;
    await writeFile(temporary, `${next.key.toString("base64")}\n`, { mode: 0o600 });
    await chmod(temporary, 0o600);
    await rename(temporary, current.file);
    replacedFile = current.file;
  }
  return { resealed, fromKeyId: from.keyId, toKeyId: to.keyId, replacedFile };
}
