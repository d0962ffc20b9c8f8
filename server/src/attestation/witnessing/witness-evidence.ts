// When a witness says it cosigned a larger tree than the database holds (409 with a bigger size)
// or refuses our consistency proof (422), either the database lost history — a restore, a copy —
// or the witness is wrong. A witness's word alone must not stop the log (a broken or hostile
// witness would halt it), so the claim is checked: kapsel-witness serves the checkpoint it last
// cosigned at GET <prefix>/<hex SHA-256(origin)>/checkpoint. If that checkpoint carries a valid
// signature of this log's own key and the witness's cosignature, and the database's tree does not
// contain it, the log provably published a history this database does not hold: proof enough to
// stop signing. Witnesses without that endpoint leave the claim unproven (a failure, not a stop).
import { createHash } from "node:crypto";
import { openCheckpoint, parseVerifierKey, quorumPolicy, VerifyError } from "@kapsel/verify";
import { sql, type DatabasePool } from "slonik";
import { z } from "zod";
import { rootAt } from "../merkle.ts";
import { publishedKeys } from "../signing-keys.ts";
import { LogStorageDamaged, TileReader, TileSubtrees } from "../tiles.ts";
import { fetchText } from "./witness-client.ts";
import type { ConfiguredWitness } from "./witness-config.ts";

export type Evidence =
  | { readonly proven: true; readonly reason: string; readonly checkpoint: string }
  | { readonly proven: false; readonly detail: string };

/** Asks `witness` for the checkpoint it cosigned and checks it against the database's tree. */
export async function witnessEvidence(pool: DatabasePool, witness: ConfiguredWitness, origin: string, timeoutMs: number): Promise<Evidence> {
  const url = `${witness.url}/${createHash("sha256").update(origin).digest("hex")}/checkpoint`;
  const text = await fetchText(url, timeoutMs);
  if (text === undefined) return { proven: false, detail: "the witness does not serve the checkpoint it cosigned" };
  const keys = (await publishedKeys(pool)).map((k) => parseVerifierKey(k.vkey));
  let size: bigint;
  let root: Uint8Array;
  try {
    const opened = openCheckpoint(text, keys, { witnesses: quorumPolicy([witness.key]) });
    size = opened.checkpoint.size;
    root = opened.checkpoint.rootHash;
  } catch (error) {
    if (error instanceof VerifyError) return { proven: false, detail: `the checkpoint the witness serves does not verify: ${error.message}` };
    throw error;
  }
  const held = Number(await pool.oneFirst(sql.type(z.object({ tree_size: z.string() }))`SELECT tree_size FROM log_state`));
  if (size > BigInt(held)) {
    return {
      proven: true,
      reason: `witness ${witness.name} holds the log's signed checkpoint of size ${size}, cosigned, but the database's tree has only ${held} leaves: ` +
        "the log published a history this database does not hold (restored from a backup, or another database)",
      checkpoint: text,
    };
  }
  let ours: Buffer;
  try {
    ours = await rootAt(new TileSubtrees(new TileReader(pool)), Number(size));
  } catch (err) {
    if (!(err instanceof LogStorageDamaged)) throw err;
    return { proven: false, detail: err.message };
  }
  if (!ours.equals(root)) {
    return {
      proven: true,
      reason: `witness ${witness.name} holds the log's signed checkpoint of size ${size} with root ${Buffer.from(root).toString("base64")}, ` +
        `but the database's tree of that size has root ${ours.toString("base64")}: the log signed two histories`,
      checkpoint: text,
    };
  }
  return { proven: false, detail: `the witness's checkpoint of size ${size} is in the database's tree` };
}
