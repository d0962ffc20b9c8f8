// A hot backup and restore, the way an operator's dump would do it: every row of a live database,
// read in one consistent snapshot (REPEATABLE READ) while the server keeps writing, copied into a
// new database with the same schema, identity sequences included. The embedded Postgres ships no
// pg_dump, so rows travel as their text form (`row::text` and back), which every column type
// round-trips exactly.
import { connect, createTestDatabase } from "./database.ts";

/** Copies the current contents of the database at `sourceUrl` into a new database; returns its URL. */
export async function copyDatabase(sourceUrl: string): Promise<string> {
  const targetUrl = await createTestDatabase();
  const source = await connect(sourceUrl);
  const target = await connect(targetUrl);
  try {
    await source.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const tables = (await source.query<{ name: string }>(
      "SELECT quote_ident(tablename) AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")).rows.map((r) => r.name);
    const sequences = (await source.query<{ name: string; last_value: string | null }>(
      "SELECT quote_ident(sequencename) AS name, last_value::text FROM pg_sequences WHERE schemaname = 'public'")).rows;
    await target.query("BEGIN");
    // Rows arrive as they were: no triggers (the log queue's would queue attempts twice), no
    // foreign-key checks on the way (tables are copied in name order).
    await target.query("SET LOCAL session_replication_role = replica");
    await target.query(`TRUNCATE ${tables.join(", ")}`);
    for (const table of tables) {
      const rows = (await source.query<{ r: string }>(`SELECT t::text AS r FROM ${table} t`)).rows.map((row) => row.r);
      for (let i = 0; i < rows.length; i += 1000) {
        await target.query(`INSERT INTO ${table} OVERRIDING SYSTEM VALUE SELECT (r::${table}).* FROM unnest($1::text[]) AS r`, [rows.slice(i, i + 1000)]);
      }
    }
    for (const sequence of sequences) {
      if (sequence.last_value !== null) await target.query(`SELECT setval('${sequence.name}', $1::bigint)`, [sequence.last_value]);
    }
    await target.query("COMMIT");
    await source.query("COMMIT");
  } finally {
    await source.end();
    await target.end();
  }
  return targetUrl;
}
