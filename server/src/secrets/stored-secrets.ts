// SQL over every stored secret (SECRET_TABLES): which master keys they are sealed with, sealing
// the values written before sealing existed, and re-sealing them under a new master key. These are
// the only writes to the secret columns outside their owners (management/endpoints.ts,
// management/sources.ts, attestation/signing-keys.ts), and they change only the encoding of a
// value, never the value: each row is updated with a compare-and-set on the bytes it was read
// with, so a concurrent change by an owner wins and the row is simply read again.
import { sql, type CommonQueryMethods, type DatabasePool, type FragmentSqlToken, type IdentifierSqlToken, type SqlToken } from "slonik";
import { z } from "zod";
import { SECRET_TABLES, type SecretTable } from "./secret-columns.ts";
import { isSealed, sealedKeyId, type SecretBox, type SecretSlot } from "./secret-box.ts";

const BATCH = 500;

/** A column holds a sealed value (see secret-box.ts for the layout). */
function sealedSql(column: IdentifierSqlToken) {
  return sql.fragment`(octet_length(${column}) >= 38 AND substring(${column} FROM 1 FOR 2) = '\\x0001'::bytea)`;
}

const col = (name: string) => sql.identifier([name]);

function rowId(table: SecretTable, id: unknown): string {
  return table.idType === "bytea" ? (id as Buffer).toString("hex") : String(id);
}

function idParam(table: SecretTable, id: unknown) {
  return table.idType === "bytea" ? sql.binary(id as Buffer) : sql.fragment`${String(id)}::uuid`;
}

/** How many stored values are sealed with each master key id (hex). */
export async function sealedKeyIds(db: CommonQueryMethods): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const t of SECRET_TABLES) {
    for (const c of t.columns) {
      const rows = await db.any(sql.type(z.object({ id: z.string(), n: z.number() }))`
        SELECT encode(substring(${col(c)} FROM 3 FOR 8), 'hex') AS id, count(*)::int AS n
        FROM ${col(t.table)} WHERE ${col(c)} IS NOT NULL AND ${sealedSql(col(c))} GROUP BY 1`);
      for (const r of rows) counts.set(r.id, (counts.get(r.id) ?? 0) + r.n);
    }
  }
  return counts;
}

/** Rewrites, row by row, every value that `change` gives a new encoding for (undefined: keep),
 * among the rows `where` selects. Returns how many values were rewritten. */
async function rewrite(
  pool: DatabasePool,
  t: SecretTable,
  where: SqlToken,
  change: (stored: Buffer, slot: SecretSlot) => Buffer | undefined,
): Promise<number> {
  const rowShape = z.object({ id: z.unknown() }).catchall(z.instanceof(Buffer).nullable());
  let rewritten = 0;
  for (;;) {
    let progress = false;
    const rows = await pool.any(sql.type(rowShape)`
      SELECT ${col(t.idColumn)} AS id, ${sql.join(t.columns.map(col), sql.fragment`, `)}
      FROM ${col(t.table)} WHERE ${where} ORDER BY ${col(t.idColumn)} LIMIT ${BATCH}`);
    if (rows.length === 0) return rewritten;
    for (const row of rows) {
      const id = rowId(t, row.id);
      const updates: FragmentSqlToken[] = [];
      const unchanged: FragmentSqlToken[] = [];
      for (const c of t.columns) {
        const stored = row[c] as Buffer | null;
        unchanged.push(stored === null ? sql.fragment`${col(c)} IS NULL` : sql.fragment`${col(c)} = ${sql.binary(stored)}`);
        const next = stored === null ? undefined : change(stored, { table: t.table, column: c, rowId: id });
        if (next !== undefined) updates.push(sql.fragment`${col(c)} = ${sql.binary(next)}`);
      }
      if (updates.length === 0) continue;
      progress = true;
      // Compare-and-set: only if no owner changed the row since it was read (else read it again).
      const done = await pool.query(sql.unsafe`
        UPDATE ${col(t.table)} SET ${sql.join(updates, sql.fragment`, `)}
        WHERE ${col(t.idColumn)} = ${idParam(t, row.id)} AND ${sql.join(unchanged, sql.fragment` AND `)}`);
      if (done.rowCount === 1) rewritten += updates.length;
    }
    // Rows the query selects but `change` leaves alone would be selected forever.
    if (!progress) return rewritten;
  }
}

/** Seals, in place, every value written before sealing existed (a start-up step: the first
 * start after migration 0010 seals what was stored in plain text; later starts find nothing).
 * Returns how many values it sealed. */
export async function sealUnsealed(pool: DatabasePool, box: SecretBox): Promise<number> {
  let sealed = 0;
  for (const t of SECRET_TABLES) {
    const unsealed = sql.join(t.columns.map((c) => sql.fragment`(${col(c)} IS NOT NULL AND NOT ${sealedSql(col(c))})`), sql.fragment` OR `);
    sealed += await rewrite(pool, t, unsealed, (stored, slot) => (isSealed(stored) ? undefined : box.seal(stored, slot)));
  }
  return sealed;
}

/** Re-seals every value sealed with `from` under `to`, one row at a time; values already under
 * `to` are left alone, so an interrupted run is finished by running it again. Returns how many
 * values it re-sealed. */
export async function reseal(pool: DatabasePool, from: SecretBox, to: SecretBox): Promise<number> {
  let resealed = 0;
  const fromId = Buffer.from(from.keyId, "hex");
  for (const t of SECRET_TABLES) {
    const underFrom = sql.join(t.columns.map((c) => sql.fragment`(${col(c)} IS NOT NULL AND ${sealedSql(col(c))} AND substring(${col(c)} FROM 3 FOR 8) = ${sql.binary(fromId)})`), sql.fragment` OR `);
    resealed += await rewrite(pool, t, underFrom, (stored, slot) =>
      isSealed(stored) && sealedKeyId(stored) === from.keyId ? to.seal(from.open(stored, slot), slot) : undefined);
  }
  return resealed;
}
