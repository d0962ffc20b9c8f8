// Secrets at rest: endpoint signing secrets (current and previous), endpoint and source
// verification secrets and the generated log signing seed are stored sealed under the master key.
// A dump of every table — and the database's own files on disk — holds none of them, while
// deliveries still verify with Standard Webhooks and senders' signatures still verify. A value
// moved into another row does not open. `kapsel keys rotate-master` re-seals everything (and
// finishes an interrupted run), after which the old key opens nothing and a server started with it
// stops with one line saying so. Rows stored in plain text before migration 0010 are sealed in place
// at start-up, keeping their values.
import { createHmac, randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, readdir, readFile, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { logKeyFromSeed, generateSeed, vkey } from "../src/attestation/log-key.ts";
import { createDatabasePool } from "../src/db/pool.ts";
import { migrate, readMigrations } from "../src/db/migrate.ts";
import { MasterKeyError, parseMasterKey, resolveMasterKey } from "../src/secrets/master-key.ts";
import { rotateMasterKey } from "../src/secrets/rotate-master.ts";
import { isSealed, sealedKeyId, SecretBox, SecretUnreadable } from "../src/secrets/secret-box.ts";
import { endpointSecret, SECRET_TABLES, signingSeed, sourceSecret } from "../src/secrets/secret-columns.ts";
import { connect, createTestDatabase } from "../../test/support/database.ts";
import { addEndpoint, eventReaching, ingest } from "../../test/support/delivery.ts";
import { runCli } from "../../test/support/kapsel-cli.ts";
import { createTenant, errorCode, rpc } from "../../test/support/rpc.ts";
import { TEST_MASTER_KEY, testSecretBox } from "../../test/support/secrets.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";
import { startSink, type Sink } from "../../test/support/sink.ts";

const OTHER_KEY = Buffer.alloc(32, 0x17).toString("base64");
const hex = (n: number) => randomBytes(n).toString("hex");
const hmacHex = (secret: string, body: string) => createHmac("sha256", secret).update(body).digest("hex");

let sink: Sink;
const servers: TestServer[] = [];
beforeAll(async () => {
  sink = await startSink();
});
afterAll(async () => {
  for (const s of servers) await s.stop().catch(() => {});
  await sink?.close();
});

async function server(env: Record<string, string>): Promise<TestServer> {
  const s = await startTestServer(env);
  servers.push(s);
  return s;
}

async function stop(s: TestServer): Promise<void> {
  await s.stop();
  servers.splice(servers.indexOf(s), 1);
}

/** Every row of every table of the database, as Postgres prints it (bytea as \x hex): what a
 * logical dump holds. */
async function dumpTables(db: pg.Client): Promise<string> {
  const tables = (await db.query<{ name: string }>("SELECT quote_ident(tablename) AS name FROM pg_tables WHERE schemaname = 'public'")).rows;
  const parts: string[] = [];
  for (const t of tables) parts.push(...(await db.query<{ row: string }>(`SELECT t::text AS row FROM ${t.name} t`)).rows.map((r) => r.row));
  return parts.join("\n");
}

/** The database's files on disk (its tables, indexes and TOAST, after a checkpoint) and the WAL
 * written since `since`; undefined when the test runs against a server whose files it cannot read. */
async function diskBytes(db: pg.Client, since: number): Promise<Buffer[] | undefined> {
  await db.query("CHECKPOINT");
  const dataDir = (await db.query<{ data_directory: string }>("SHOW data_directory")).rows[0]!.data_directory;
  try {
    await stat(dataDir);
  } catch {
    return undefined;
  }
  const files = (await db.query<{ f: string }>(
    "SELECT pg_relation_filepath(c.oid) AS f FROM pg_class c WHERE c.relkind IN ('r', 't', 'i') AND pg_relation_filepath(c.oid) IS NOT NULL",
  )).rows.map((r) => path.join(dataDir, r.f));
  const wal = path.join(dataDir, "pg_wal");
  for (const name of await readdir(wal)) {
    const file = path.join(wal, name);
    const info = await stat(file);
    if (info.isFile() && info.mtimeMs >= since - 1000) files.push(file);
  }
  const contents: Buffer[] = [];
  for (const file of files) {
    // Relations grow in 1 GB segments: file, file.1, …
    for (let segment = 0; ; segment++) {
      const name = segment === 0 ? file : `${file}.${segment}`;
      const bytes = await readFile(name).catch(() => undefined);
      if (!bytes) break;
      contents.push(bytes);
    }
  }
  return contents;
}

describe("SecretBox", () => {
  const box = testSecretBox();
  const a = endpointSecret(randomUUID(), "signing_secret");
  const b = endpointSecret(randomUUID(), "signing_secret");

  it("seals a value so that only its own row and column open it, with a fresh nonce each time", () => {
    const sealed = box.seal("whsec_abc", a);
    expect(isSealed(sealed)).toBe(true);
    expect(sealed.includes(Buffer.from("whsec_abc"))).toBe(false);
    expect(box.openText(sealed, a)).toBe("whsec_abc");
    expect(box.seal("whsec_abc", a).equals(sealed)).toBe(false);
    expect(() => box.open(sealed, b)).toThrow(SecretUnreadable);
    expect(() => box.open(sealed, b)).toThrow(/does not authenticate/);
    expect(() => box.open(sealed, { ...a, column: "previous_signing_secret" })).toThrow(/does not authenticate/);
  });

  it("tells a value sealed under another master key, a damaged value and a plain one apart", () => {
    const sealed = box.seal("whsec_abc", a);
    const other = testSecretBox(OTHER_KEY);
    expect(() => other.open(sealed, a)).toThrow(new RegExp(`sealed with master key ${box.keyId}, not with ${other.keyId}`));
    const damaged = Buffer.from(sealed);
    damaged[damaged.length - 20]! ^= 1;
    expect(() => box.open(damaged, a)).toThrow(/does not authenticate/);
    expect(() => box.open(Buffer.from("whsec_abc"), a)).toThrow(/not sealed/);
    // A bare 32-byte seed is never taken for a sealed value, whatever its first bytes.
    expect(isSealed(Buffer.concat([Buffer.from([0, 1]), randomBytes(30)]))).toBe(false);
  });

  it("the master key file of the embedded default is made once, mode 0600, and a malformed one is refused", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "kapsel-master-"));
    const first = await resolveMasterKey(undefined, dir);
    const again = await resolveMasterKey(undefined, dir);
    expect(first.key.equals(again.key)).toBe(true);
    expect(first.file).toBe(path.join(dir, "master-key"));
    expect((await stat(first.file!)).mode & 0o777).toBe(0o600);
    await writeFile(first.file!, "not a key\n");
    await expect(resolveMasterKey(undefined, dir)).rejects.toThrow(MasterKeyError);
    await expect(resolveMasterKey(undefined, dir)).rejects.toThrow(/expected the base64 of 32 random bytes/);
  });
});

describe("stored secrets", () => {
  let s: TestServer;
  let apiKey: string;
  let endpointId: string;
  let sourceId: string;
  const inbound = `inbound-${hex(12)}`;
  const sourceFirst = `source-${hex(12)}`;
  const sourceNow = `source-${hex(12)}`;
  let signingOld: string;
  let signingNow: string;
  let startedAt: number;

  beforeAll(async () => {
    startedAt = Date.now();
    s = await server({ KAPSEL_CHECKPOINT_INTERVAL_MS: "100" });
    ({ apiKey } = await createTenant(s.url, ADMIN_TOKEN));
    ({ endpointId, signingSecret: signingOld } = await addEndpoint(s.url, apiKey, sink.url, { sourceScheme: "SOURCE_SCHEME_HMAC_SHA256", sourceSecret: inbound }));
    signingNow = (await rpc(s.url, "RotateEndpointSecret", { endpointId }, apiKey)).body.signingSecret;
    const created = await rpc(s.url, "CreateSource", { name: "billing", scheme: "SOURCE_SCHEME_HMAC_SHA256", secret: sourceFirst }, apiKey);
    sourceId = created.body.source.id;
    expect((await rpc(s.url, "RotateSourceSecret", { sourceId, secret: sourceNow }, apiKey)).status).toBe(200);
  });

  it("still verify senders and sign deliveries: inbound HMAC with the endpoint's and the source's secrets (the previous one too), Standard Webhooks with the current and previous signing secrets", async () => {
    const body = '{"type":"sealed.check"}';
    const eventId = await ingest(s.url, endpointId, body, { "x-signature": hmacHex(inbound, body) });
    const wrong = await fetch(`${s.url}/ingest/${endpointId}`, { method: "POST", body, headers: { "x-signature": hmacHex("guess", body) } });
    expect(wrong.status).toBe(401);
    for (const secret of [sourceNow, sourceFirst]) {
      const viaSource = await fetch(`${s.url}/ingest/sources/${sourceId}`, { method: "POST", body, headers: { "x-signature": hmacHex(secret, body) } });
      expect(viaSource.status, secret === sourceNow ? "current" : "previous").toBe(202);
    }
    await eventReaching(s.url, apiKey, eventId, "EVENT_STATUS_DELIVERED");
    const headers = sink.forEvent(eventId)[0]!.headers as Record<string, string>;
    expect(new Webhook(signingNow).verify(body, headers)).toEqual({ type: "sealed.check" });
    expect(new Webhook(signingOld).verify(body, headers)).toEqual({ type: "sealed.check" });
  });

  it("a dump of every table, and the database's files and WAL on disk, hold none of them", async () => {
    // Let a checkpoint be signed, so the generated log key is in use.
    await eventReaching(s.url, apiKey, await ingest(s.url, endpointId, "{}", { "x-signature": hmacHex(inbound, "{}") }), "EVENT_STATUS_DELIVERED");
    const db = await connect(s.databaseUrl);
    try {
      const seeds = (await db.query<{ key_id: Buffer; private_seed: Buffer }>("SELECT key_id, private_seed FROM signing_keys WHERE private_seed IS NOT NULL")).rows;
      expect(seeds.length).toBeGreaterThan(0);
      const seedValues = seeds.map((r) => testSecretBox().open(r.private_seed, signingSeed(r.key_id)));
      const published = (await rpc(s.url, "GetPublicKeys", {}, apiKey)).body.keys.map((k: { vkey: string }) => k.vkey);
      for (const seed of seedValues) expect(published).toContain(vkey("kapsel.localhost/log", logKeyFromSeed("kapsel.localhost/log", seed).publicKey));

      const texts = [inbound, sourceFirst, sourceNow, signingOld, signingNow];
      const secrets = [...texts.map((t) => Buffer.from(t)), ...texts.map((t) => Buffer.from(t.replace(/^whsec_/, ""), t.startsWith("whsec_") ? "base64" : "utf8")), ...seedValues];
      const dump = await dumpTables(db);
      // The dump and the files are read right: what is stored in the clear is found in them.
      expect(dump).toContain(sink.url);
      for (const secret of secrets) {
        for (const form of [secret.toString("utf8"), secret.toString("hex"), secret.toString("base64")]) {
          if (form.length >= 16) expect(dump.includes(form), "a secret in the dump").toBe(false);
        }
      }
      // Each secret column holds sealed values only.
      for (const t of SECRET_TABLES) {
        for (const c of t.columns) {
          const values = (await db.query<{ v: Buffer }>(`SELECT ${c} AS v FROM ${t.table} WHERE ${c} IS NOT NULL`)).rows.map((r) => r.v);
          for (const v of values) expect(isSealed(v), `${t.table}.${c}`).toBe(true);
        }
      }
      const disk = await diskBytes(db, startedAt);
      expect(disk, "the test database's files are readable here").toBeDefined();
      expect(disk!.some((b) => b.includes(Buffer.from(sink.url)))).toBe(true);
      for (const secret of secrets) expect(disk!.some((b) => b.includes(secret)), "a secret on disk").toBe(false);
    } finally {
      await db.end();
    }
  });

  it("a sealed value moved into another row does not open: that endpoint's deliveries wait unsent and unsigned, the others go on", async () => {
    const { endpointId: victim } = await addEndpoint(s.url, apiKey, sink.url);
    const { endpointId: thief } = await addEndpoint(s.url, apiKey, sink.url);
    const db = await connect(s.databaseUrl);
    try {
      // Someone with write access to the database copies the victim's sealed secret into the thief's row.
      await db.query("UPDATE endpoints SET signing_secret = (SELECT signing_secret FROM endpoints WHERE id = $1) WHERE id = $2", [victim, thief]);
      const stolen = await ingest(s.url, thief, '{"steal":1}');
      const fine = await ingest(s.url, victim, '{"fine":1}');
      await eventReaching(s.url, apiKey, fine, "EVENT_STATUS_DELIVERED");
      const job = await (async () => {
        for (let i = 0; i < 200; i++) {
          const r = await db.query("SELECT attempt, lease_until, run_at > now() + interval '30 seconds' AS later FROM delivery_jobs WHERE event_id = $1", [stolen]);
          if (r.rows[0]?.later) return r.rows[0];
          await new Promise((resolve) => setTimeout(resolve, 25));
        }
        return undefined;
      })();
      expect(job, "the job put back for later").toMatchObject({ attempt: 0, lease_until: null, later: true });
      expect(sink.forEvent(stolen)).toEqual([]);
      expect((await db.query("SELECT 1 FROM delivery_attempts WHERE event_id = $1", [stolen])).rowCount).toBe(0);
      // The way back for the endpoint that holds what it cannot open: a new secret.
      const fixed = await rpc(s.url, "RotateEndpointSecret", { endpointId: thief }, apiKey);
      expect(fixed.status).toBe(200);
      const row = (await db.query("SELECT signing_secret, previous_signing_secret FROM endpoints WHERE id = $1", [thief])).rows[0];
      expect(testSecretBox().openText(row.signing_secret, endpointSecret(thief, "signing_secret"))).toBe(fixed.body.signingSecret);
      expect(row.previous_signing_secret).toBeNull();
    } finally {
      await db.end();
    }
  });

  it("a verification secret that cannot be opened: senders get E1002 (never a 500), API-key ingest goes on, updates that need it say how to replace it, and a new one verifies again", async () => {
    const secret = `inbound-${hex(12)}`;
    const { endpointId: target } = await addEndpoint(s.url, apiKey, sink.url, { sourceScheme: "SOURCE_SCHEME_HMAC_SHA256", sourceSecret: secret });
    const source = (await rpc(s.url, "CreateSource", { name: "damaged", scheme: "SOURCE_SCHEME_HMAC_SHA256", secret }, apiKey)).body.source.id;
    const db = await connect(s.databaseUrl);
    try {
      // Damaged in the database (one bit of the ciphertext), before the server has read either.
      const flip = (column: string) => `${column} = set_byte(${column}, length(${column}) - 20, get_byte(${column}, length(${column}) - 20) # 1)`;
      await db.query(`UPDATE endpoints SET ${flip("source_secret")} WHERE id = $1`, [target]);
      await db.query(`UPDATE sources SET ${flip("secret")} WHERE id = $1`, [source]);
    } finally {
      await db.end();
    }
    const body = '{"type":"damaged.check"}';
    const post = (path: string, key: string) => fetch(`${s.url}/ingest/${path}`, { method: "POST", body, headers: { "x-signature": hmacHex(key, body) } });
    // Past the failed-signature burst (20 per sender and target): our side's failure is not
    // counted against the sender, whose signature is right.
    for (const path of [target, `sources/${source}`]) {
      for (let i = 0; i < 25; i++) {
        const refused = await post(path, secret);
        expect(refused.status, `${path} #${i}`).toBe(401);
        expect((await refused.json()).code).toBe("E1002");
      }
    }
    // A tenant's own RPC needs no sender's signature.
    const viaRpc = await rpc(s.url, "Ingest", { endpointId: target, payload: Buffer.from(body).toString("base64") }, apiKey);
    expect(viaRpc.status).toBe(200);

    const header = await rpc(s.url, "UpdateEndpoint", { endpointId: target, sourceHeader: "x-other-signature" }, apiKey);
    expect(header.status).toBe(400);
    expect(errorCode(header.body)).toBe("E1006");
    expect(header.body.message).toMatch(/cannot be read.*source_secret/);
    const sourceHeader = await rpc(s.url, "UpdateSource", { sourceId: source, header: "x-other-signature" }, apiKey);
    expect(sourceHeader.status).toBe(400);
    expect(errorCode(sourceHeader.body)).toBe("E1006");
    expect(sourceHeader.body.message).toMatch(/cannot be read.*RotateSourceSecret/);

    const fresh = `inbound-${hex(12)}`;
    expect((await rpc(s.url, "UpdateEndpoint", { endpointId: target, sourceSecret: fresh }, apiKey)).status).toBe(200);
    expect((await rpc(s.url, "RotateSourceSecret", { sourceId: source, secret: fresh }, apiKey)).status).toBe(200);
    expect((await post(target, fresh)).status).toBe(202);
    expect((await post(`sources/${source}`, fresh)).status).toBe(202);
  });

  it("kapsel keys rotate-master re-seals everything (finishing an interrupted run); the old key then opens nothing and stops a server in one line", async () => {
    await stop(s);
    const oldBox = testSecretBox();
    const newKey = randomBytes(32).toString("base64");
    const newBox = testSecretBox(newKey);
    const db = await connect(s.databaseUrl);
    try {
      // An earlier run that stopped half-way: one row already under the new key.
      const row = (await db.query<{ signing_secret: Buffer }>("SELECT signing_secret FROM endpoints WHERE id = $1", [endpointId])).rows[0]!;
      const slot = endpointSecret(endpointId, "signing_secret");
      await db.query("UPDATE endpoints SET signing_secret = $2 WHERE id = $1", [endpointId, newBox.seal(oldBox.open(row.signing_secret, slot), slot)]);

      // The wrong current key changes nothing.
      const wrong = await runCli(["keys", "rotate-master", "--new-key", newKey], { DATABASE_URL: s.databaseUrl, KAPSEL_MASTER_KEY: OTHER_KEY });
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toMatch(/^kapsel: KAPSEL_MASTER_KEY is not the master key the stored secrets are sealed with/);

      const keyFile = path.join(await mkdtemp(path.join(os.tmpdir(), "kapsel-newkey-")), "new-master-key");
      await writeFile(keyFile, `${newKey}\n`, { mode: 0o600 });
      const rotated = await runCli(["keys", "rotate-master", "--new-key-file", keyFile], { DATABASE_URL: s.databaseUrl });
      expect(rotated.code, rotated.stderr).toBe(0);
      expect(rotated.stdout).toContain(`under master key ${newBox.keyId}; key ${oldBox.keyId} no longer opens any of them`);
      expect(rotated.stdout).toContain("set KAPSEL_MASTER_KEY to the new key");

      for (const t of SECRET_TABLES) {
        for (const c of t.columns) {
          const rows = (await db.query<{ id: string | Buffer; v: Buffer }>(`SELECT ${t.idColumn} AS id, ${c} AS v FROM ${t.table} WHERE ${c} IS NOT NULL`)).rows;
          for (const r of rows) {
            const at = { table: t.table, column: c, rowId: Buffer.isBuffer(r.id) ? r.id.toString("hex") : r.id };
            expect(sealedKeyId(r.v)).toBe(newBox.keyId);
            expect(() => oldBox.open(r.v, at)).toThrow(SecretUnreadable);
            expect(() => newBox.open(r.v, at)).not.toThrow();
          }
        }
      }
      expect(newBox.openText((await db.query("SELECT source_secret FROM endpoints WHERE id = $1", [endpointId])).rows[0].source_secret, endpointSecret(endpointId, "source_secret"))).toBe(inbound);
      expect(newBox.openText((await db.query("SELECT secret FROM sources WHERE id = $1", [sourceId])).rows[0].secret, sourceSecret(sourceId, "secret"))).toBe(sourceNow);

      // The old key no longer starts a server: one line, no stack.
      const refused = await runCli(["serve"], { DATABASE_URL: s.databaseUrl, KAPSEL_PORT: "0", KAPSEL_HOST: "127.0.0.1", KAPSEL_ADMIN_TOKEN: ADMIN_TOKEN });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(new RegExp(`^kapsel: KAPSEL_MASTER_KEY is not the master key the stored secrets are sealed with: \\d+ secret\\(s\\) are sealed with key ${newBox.keyId}, this key is ${oldBox.keyId}\\n$`));
      // No key at all: one line too.
      const missing = await runCli(["serve"], { DATABASE_URL: s.databaseUrl, KAPSEL_MASTER_KEY: "", KAPSEL_PORT: "0", KAPSEL_HOST: "127.0.0.1", KAPSEL_ADMIN_TOKEN: ADMIN_TOKEN });
      expect(missing.code).toBe(2);
      expect(missing.stderr).toMatch(/^kapsel: configuration error: KAPSEL_MASTER_KEY: required with DATABASE_URL[^\n]*\n$/);
      // Neither key is ever printed.
      for (const r of [wrong, rotated, refused, missing]) {
        for (const key of [newKey, TEST_MASTER_KEY, OTHER_KEY]) expect(r.stdout + r.stderr).not.toContain(key);
      }
    } finally {
      await db.end();
    }

    // The new key does, and everything still verifies.
    const after = await server({ DATABASE_URL: s.databaseUrl, KAPSEL_MASTER_KEY: newKey });
    const body = '{"type":"after.rotate-master"}';
    const eventId = await ingest(after.url, endpointId, body, { "x-signature": hmacHex(inbound, body) });
    await eventReaching(after.url, apiKey, eventId, "EVENT_STATUS_DELIVERED");
    expect(new Webhook(signingNow).verify(body, sink.forEvent(eventId)[0]!.headers as Record<string, string>)).toEqual({ type: "after.rotate-master" });
    const viaSource = await fetch(`${after.url}/ingest/sources/${sourceId}`, { method: "POST", body, headers: { "x-signature": hmacHex(sourceNow, body) } });
    expect(viaSource.status).toBe(202);
  });

  it("the data folder's key file is replaced by rotate-master, last", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "kapsel-master-file-"));
    await writeFile(path.join(dir, "master-key"), `${TEST_MASTER_KEY}\n`, { mode: 0o600 });
    const databaseUrl = await createTestDatabase();
    const pool = await createDatabasePool(databaseUrl, { maximumPoolSize: 2 });
    try {
      const current = await resolveMasterKey(undefined, dir);
      const id = randomUUID();
      const db = await connect(databaseUrl);
      try {
        const tenant = (await db.query("INSERT INTO tenants (name) VALUES ('file') RETURNING id")).rows[0].id;
        await db.query("INSERT INTO endpoints (id, tenant_id, url, signing_secret, source_secret) VALUES ($1, $2, 'https://93.184.216.34/', $3, $4)",
          [id, tenant, testSecretBox().seal("whsec_file", endpointSecret(id, "signing_secret")), testSecretBox().seal("", endpointSecret(id, "source_secret"))]);
      } finally {
        await db.end();
      }
      const next = parseMasterKey(OTHER_KEY, "test");
      const r = await rotateMasterKey(pool, current, next);
      expect(r).toMatchObject({ resealed: 2, replacedFile: path.join(dir, "master-key") });
      const replaced = await resolveMasterKey(undefined, dir);
      expect(replaced.key.equals(next.key)).toBe(true);
      expect((await stat(path.join(dir, "master-key"))).mode & 0o777).toBe(0o600);
      await expect(rotateMasterKey(pool, replaced, next)).rejects.toThrow(/the new master key is the current one/);
    } finally {
      await pool.end();
    }
  });
});

describe("secrets stored before migration 0010", () => {
  it("are sealed in place at start-up, keep their values (signatures, inbound checks, the log key), and a second start changes nothing", async () => {
    // A database as the previous release left it: migrations up to 0009, secrets in plain text.
    const databaseUrl = await createTestDatabase({ migrated: false });
    const old = await mkdtemp(path.join(os.tmpdir(), "kapsel-0009-"));
    for (const m of (await readMigrations()).filter((m) => m.version <= 9)) await writeFile(path.join(old, `${String(m.version).padStart(4, "0")}_${m.name}.sql`), m.text);
    // Also proves migration 0010 converts rows that exist (text to bytes, values kept).
    await migrate(databaseUrl, old);
    const signing = `whsec_${randomBytes(24).toString("base64")}`;
    const inbound = `inbound-${hex(8)}`;
    const sourceNow = `source-now-${hex(8)}`;
    const sourceBefore = `source-before-${hex(8)}`;
    const sourceId = randomUUID();
    const seed = generateSeed();
    const origin = "kapsel.localhost/log";
    const logKey = logKeyFromSeed(origin, seed);
    const endpointId = randomUUID();
    const db = await connect(databaseUrl);
    let apiKey: string;
    try {
      const tenant = (await db.query("INSERT INTO tenants (name) VALUES ('legacy') RETURNING id")).rows[0].id;
      await db.query(`INSERT INTO endpoints (id, tenant_id, url, allow_http, source_scheme, source_secret, signing_secret)
        VALUES ($1, $2, $3, true, 'hmac_sha256', $4, $5)`, [endpointId, tenant, sink.url, inbound, signing]);
      await db.query(`INSERT INTO sources (id, tenant_id, name, scheme, secret, previous_secret, previous_secret_expires_at)
        VALUES ($1, $2, 'legacy', 'hmac_sha256', $3, $4, now() + interval '1 hour')`, [sourceId, tenant, sourceNow, sourceBefore]);
      await db.query("INSERT INTO signing_keys (key_id, name, public_key, private_seed, valid_from) VALUES ($1, $2, $3, $4, now())",
        [logKey.keyId, origin, logKey.publicKey, seed]);
      const s = await server({ DATABASE_URL: databaseUrl, KAPSEL_CHECKPOINT_INTERVAL_MS: "100" });
      const row = (await db.query("SELECT signing_secret, source_secret FROM endpoints WHERE id = $1", [endpointId])).rows[0];
      expect(isSealed(row.signing_secret) && isSealed(row.source_secret)).toBe(true);
      const storedSeed = (await db.query("SELECT private_seed FROM signing_keys")).rows[0].private_seed as Buffer;
      expect(isSealed(storedSeed)).toBe(true);
      const source = (await db.query("SELECT secret, previous_secret FROM sources WHERE id = $1", [sourceId])).rows[0];
      expect(isSealed(source.secret) && isSealed(source.previous_secret)).toBe(true);
      for (const stored of [row.signing_secret, row.source_secret, storedSeed, source.secret, source.previous_secret] as Buffer[]) {
        for (const plain of [...[signing, inbound, sourceNow, sourceBefore].map((t) => Buffer.from(t)), seed] as Buffer[]) expect(stored.includes(plain)).toBe(false);
      }

      // The tenant's key: made through the API, since the legacy tenant has none.
      const created = await rpc(s.url, "CreateApiKey", { tenantId: tenant, name: "k", scopes: ["SCOPE_MANAGE", "SCOPE_INGEST", "SCOPE_READ"] }, ADMIN_TOKEN);
      apiKey = created.body.secret;
      expect(apiKey, JSON.stringify(created.body)).toBeTruthy();
      const body = '{"type":"legacy"}';
      const eventId = await ingest(s.url, endpointId, body, { "x-signature": hmacHex(inbound, body) });
      await eventReaching(s.url, apiKey, eventId, "EVENT_STATUS_DELIVERED");
      expect(new Webhook(signing).verify(body, sink.forEvent(eventId)[0]!.headers as Record<string, string>)).toEqual({ type: "legacy" });
      for (const secret of [sourceNow, sourceBefore]) {
        const viaSource = await fetch(`${s.url}/ingest/sources/${sourceId}`, { method: "POST", body, headers: { "x-signature": hmacHex(secret, body) } });
        expect(viaSource.status, secret).toBe(202);
      }
      const keys = (await rpc(s.url, "GetPublicKeys", {}, apiKey)).body.keys.map((k: { vkey: string }) => k.vkey);
      expect(keys).toEqual([vkey(origin, logKey.publicKey)]);
      await stop(s);

      const again = await server({ DATABASE_URL: databaseUrl });
      const unchanged = (await db.query("SELECT signing_secret FROM endpoints WHERE id = $1", [endpointId])).rows[0];
      expect(unchanged.signing_secret.equals(row.signing_secret)).toBe(true);
      await stop(again);
    } finally {
      await db.end();
    }
  });
});
