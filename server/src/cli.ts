// `kapsel`: the server (`serve`, what `npm start` runs) and the operator's commands. Every command
// has --help and starts nothing then; data commands take --json; what goes wrong is one line.
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { toJson } from "@bufbuild/protobuf";
import { TenantSchema } from "@kapsel/contracts/management";
import { ConfigError, environmentHelp, loadConfig, type Config } from "./config.ts";
import { openDatabase, type Database } from "./db/database.ts";
import { fileName } from "./db/migrate.ts";
import { createLogger, type Logger } from "./logger.ts";
import { startServer } from "./main.ts";
import { ApiKeyStore } from "./auth/api-keys.ts";
import { Tenants } from "./management/tenants.ts";
import { auditLog } from "./attestation/log-audit.ts";
import { logStatus } from "./attestation/log-status.ts";
import { currentKey, publishedKeys, rotateKey } from "./attestation/signing-keys.ts";
import { describeFatal, type FatalContext } from "./cli/fatal-error.ts";
import { operator } from "./cli/operator.ts";
import { MasterKeyError, parseMasterKey, resolveMasterKey } from "./secrets/master-key.ts";
import { openSecrets } from "./secrets/open-secrets.ts";
import { rotateMasterKey } from "./secrets/rotate-master.ts";
import { SecretUnreadable, type SecretBox } from "./secrets/secret-box.ts";

const VERSION = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;

interface Command {
  usage: string;
  summary: string;
  /** Options besides --help and --json (parseArgs shape). */
  options?: Record<string, { type: "string" | "boolean" }>;
  /** Words after the command's own (positionals), at least this many. */
  positionals?: number;
  json?: boolean;
  run(ctx: CommandContext): Promise<number>;
}

interface CommandContext {
  config: Config;
  log: Logger;
  args: string[];
  options: Record<string, string | boolean | undefined>;
  json: boolean;
  /** Opens the database (embedded or DATABASE_URL, migrated) for the command's duration. */
  withDatabase<T>(run: (db: Database) => Promise<T>): Promise<T>;
  /** The stored secrets' box: the master key checked against the database, plain values sealed. */
  openSecrets(db: Database): Promise<SecretBox>;
}

const out = (text: string) => process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
const printJson = (value: unknown) => out(JSON.stringify(value, null, 2));

const COMMANDS: Record<string, Command> = {
  serve: {
    usage: "kapsel serve",
    summary: "run the server (the default command)",
    run: ({ config, log }) => serve(config, log),
  },
  migrate: {
    usage: "kapsel migrate",
    summary: "apply database migrations and say which, then exit",
    json: true,
    run: ({ withDatabase, openSecrets, json }) => withDatabase(async (db) => {
      // Secrets stored before sealing existed are sealed now rather than at the next start.
      await openSecrets(db);
      const applied = db.applied.map(fileName);
      if (json) printJson({ applied, current: db.migrations.length });
      else if (applied.length === 0) out(`database is up to date (${db.migrations.length} migrations)`);
      else out(`applied ${applied.join(", ")}`);
      return 0;
    }),
  },
  "tenant create": {
    usage: "kapsel tenant create NAME",
    summary: "create a tenant and print its first API key (shown once)",
    positionals: 1,
    json: true,
    run: ({ config, withDatabase, args, json }) => withDatabase(async (db) => {
      const tenants = new Tenants(db.pool, new ApiKeyStore(db.pool), config.ingest.rateLimit);
      const { tenant, apiKey } = await tenants.create(args[0]!);
      if (json) printJson({ tenant: toJson(TenantSchema, tenant), apiKey });
      else out(`tenant ${tenant.id} (${tenant.name})\napi key (shown once): ${apiKey}`);
      return 0;
    }),
  },
  "tenant list": {
    usage: "kapsel tenant list",
    summary: "list tenants with their ids and rate limits",
    json: true,
    run: ({ json, withDatabase, openSecrets, config, log }) => withDatabase(async (db) => {
      const op = operator(config, db, log, await openSecrets(db));
      const page = (await op.json("listTenants", { pageSize: 500 })) as { tenants?: { id: string; name: string; rateLimitPerSecond?: number; rateLimitBurst?: number }[] };
      if (json) printJson(page);
      else for (const t of page.tenants ?? []) out(`${t.id}  ${t.name}  ${t.rateLimitPerSecond ?? 0}/s burst ${t.rateLimitBurst ?? 0}`);
      return 0;
    }),
  },
  "endpoint list": {
    usage: "kapsel endpoint list --tenant ID",
    summary: "list a tenant's endpoints",
    options: { tenant: { type: "string" } },
    json: true,
    run: (ctx) => tenantCall(ctx, "listEndpoints", { pageSize: 500 }, (page: { endpoints?: { id: string; url: string; enabled?: boolean; eventTypes?: string[] }[] }) => {
      for (const e of page.endpoints ?? []) out(`${e.id}  ${e.enabled ? "enabled " : "disabled"}  ${e.url}${e.eventTypes?.length ? `  types ${e.eventTypes.join(",")}` : ""}`);
    }),
  },
  "event list": {
    usage: "kapsel event list --tenant ID [--status pending|delivering|delivered|failed] [--endpoint ID] [--type TYPE] [--limit N]",
    summary: "list a tenant's events, newest first",
    options: { tenant: { type: "string" }, status: { type: "string" }, endpoint: { type: "string" }, type: { type: "string" }, limit: { type: "string" } },
    json: true,
    run: (ctx) => {
      const status = ctx.options.status === undefined ? undefined : `EVENT_STATUS_${String(ctx.options.status).toUpperCase()}`;
      return tenantCall(ctx, "listEvents", {
        pageSize: Number(ctx.options.limit ?? 50),
        endpointId: (ctx.options.endpoint as string | undefined) ?? "",
        eventType: (ctx.options.type as string | undefined) ?? "",
        status: status === undefined ? 0 : (STATUS_NUMBERS[status] ?? -1),
      }, (page: { events?: { id: string; status: string; endpointId: string; eventType?: string; attemptCount?: number; receivedAt: string }[] }) => {
        for (const e of page.events ?? []) out(`${e.id}  ${e.status.replace("EVENT_STATUS_", "").toLowerCase().padEnd(10)}  ${e.receivedAt}  attempts ${e.attemptCount ?? 0}  ${e.eventType ?? ""}  → ${e.endpointId}`);
      });
    },
  },
  "event retry": {
    usage: "kapsel event retry EVENT_ID --tenant ID",
    summary: "put a failed event back in the queue (a new round of attempts)",
    options: { tenant: { type: "string" } },
    positionals: 1,
    json: true,
    run: (ctx) => tenantCall(ctx, "retryEvent", { eventId: ctx.args[0]! }, (r: { event?: { id: string; status: string } }) => out(`event ${r.event?.id} is ${r.event?.status.replace("EVENT_STATUS_", "").toLowerCase()}`)),
  },
  "event recover": {
    usage: "kapsel event recover --tenant ID (--endpoint ID | --type TYPE) --since TIME [--until TIME]",
    summary: "put the failed events of an endpoint or a type received in a window back in the queue",
    options: { tenant: { type: "string" }, endpoint: { type: "string" }, type: { type: "string" }, since: { type: "string" }, until: { type: "string" } },
    json: true,
    run: (ctx) => {
      const time = (name: string) => {
        const v = ctx.options[name] as string | undefined;
        if (v === undefined) return undefined;
        const ms = Date.parse(v);
        if (Number.isNaN(ms)) throw new ConfigError(`--${name} ${JSON.stringify(v)}: expected a time such as 2026-12-01T10:00:00Z`);
        return { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 };
      };
      return tenantCall(ctx, "recoverEvents", {
        endpointId: (ctx.options.endpoint as string | undefined) ?? "",
        eventType: (ctx.options.type as string | undefined) ?? "",
        since: time("since"),
        until: time("until"),
      }, (r: { count?: number }) => out(`${r.count ?? 0} failed events put back in the queue`));
    },
  },
  "keys rotate": {
    usage: "kapsel keys rotate",
    summary: "start a new log signing key (old checkpoints keep their signatures)",
    run: ({ config, withDatabase, openSecrets }) => {
      if (config.attestation.signingKey !== undefined) throw new ConfigError("KAPSEL_SIGNING_KEY is set; rotate by setting a new key there instead");
      return withDatabase(async (db) => {
        const secrets = await openSecrets(db);
        // Make sure the key being retired exists first, so its period is recorded.
        await currentKey(db.pool, config.attestation.origin, undefined, secrets);
        const key = await rotateKey(db.pool, config.attestation.origin, secrets);
        out(`new log key, valid from ${key.validFrom.toISOString()}:\n${key.vkey}`);
        return 0;
      });
    },
  },
  "keys rotate-master": {
    usage: "kapsel keys rotate-master (--new-key-file FILE | --new-key BASE64)",
    summary: "re-seal every stored secret under a new master key (stop the servers first; the old key is the configured one)",
    options: { "new-key-file": { type: "string" }, "new-key": { type: "string" } },
    run: ({ config, log, options }) => rotateMaster(config, log, options),
  },
  "keys list": {
    usage: "kapsel keys list",
    summary: "print the log's verifier keys (vkeys) with their validity periods",
    json: true,
    run: ({ withDatabase, json }) => withDatabase(async (db) => {
      const keys = await publishedKeys(db.pool);
      if (json) printJson(keys.map((k) => ({ vkey: k.vkey, keyId: k.keyId, validFrom: k.validFrom.toISOString(), validUntil: k.validUntil?.toISOString() ?? null })));
      else for (const k of keys) out(`${k.vkey}  ${k.validFrom.toISOString()} → ${k.validUntil?.toISOString() ?? "now"}`);
      return 0;
    }),
  },
  "log verify": {
    usage: "kapsel log verify",
    summary: "audit the stored log: recompute the tree, check every checkpoint",
    json: true,
    run: ({ withDatabase, json }) => withDatabase(async (db) => {
      const report = await auditLog(db.pool, json ? () => {} : (m) => process.stderr.write(`${m}\n`));
      if (json) printJson(report);
      else if (report.ok) out(`log verified: ${report.leaves} leaves, ${report.tiles} tiles, ${report.checkpoints} checkpoints`);
      else out(`log verification FAILED: ${report.problem}`);
      return report.ok ? 0 : 1;
    }),
  },
  "log status": {
    usage: "kapsel log status",
    summary: "the log's size, its latest checkpoint, what waits to be sequenced, and its keys",
    json: true,
    run: ({ withDatabase, json }) => withDatabase(async (db) => {
      const status = { ...(await logStatus(db.pool)), keys: (await publishedKeys(db.pool)).filter((k) => !k.validUntil).map((k) => k.vkey) };
      if (json) printJson(status);
      else {
        const c = status.latestCheckpoint;
        out(`tree size ${status.treeSize}`);
        out(c ? `latest checkpoint: size ${c.treeSize}, signed ${c.signedAt} (${c.ageSeconds} s ago)` : "no checkpoint signed yet");
        out(`waiting to be sequenced: ${status.queued} attempts (oldest ${status.oldestQueuedSeconds} s)`);
        for (const k of status.keys) out(`signing key: ${k}`);
      }
      return 0;
    }),
  },
};

const STATUS_NUMBERS: Record<string, number> = { EVENT_STATUS_PENDING: 1, EVENT_STATUS_DELIVERING: 2, EVENT_STATUS_DELIVERED: 3, EVENT_STATUS_FAILED: 4 };

/** Runs a ManagementService call for the tenant named by --tenant; prints JSON or `text(answer)`. */
function tenantCall<T>(ctx: CommandContext, method: Parameters<ReturnType<typeof operator>["json"]>[0], request: object, text: (answer: T) => void): Promise<number> {
  const tenantId = ctx.options.tenant as string | undefined;
  if (!tenantId) throw new ConfigError("--tenant ID is required (kapsel tenant list shows the ids)");
  return ctx.withDatabase(async (db) => {
    const op = operator(ctx.config, db, ctx.log, await ctx.openSecrets(db));
    const answer = (await op.json(method, request as never, tenantId)) as T;
    await op.close();
    if (ctx.json) printJson(answer);
    else text(answer);
    return 0;
  });
}

function usage(): string {
  const width = Math.max(...Object.values(COMMANDS).map((c) => c.usage.length));
  return `kapsel ${VERSION} — webhook reliability with verifiable delivery

Usage:
${Object.values(COMMANDS).map((c) => `  ${c.usage.padEnd(width)}  ${c.summary}`).join("\n")}
  kapsel --version
  kapsel COMMAND --help      what a command does and takes (starts nothing)

Data commands take --json for one JSON document on stdout.

Environment:
${environmentHelp()}
`;
}

function commandHelp(c: Command): string {
  return `Usage: ${c.usage}${c.json ? " [--json]" : ""}\n\n${c.summary}.\n\nIt reads the same environment as \`kapsel serve\` (DATABASE_URL or the embedded Postgres in KAPSEL_DATA_DIR); \`kapsel --help\` lists it.\n`;
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === "--version" || argv[0] === "-v" || argv[0] === "version") {
    out(VERSION);
    return 0;
  }
  if (argv.length === 0 || argv[0] === "--help" || argv[0] === "-h" || argv[0] === "help") {
    if (argv.length === 0) return run(COMMANDS.serve!, "serve", []);
    process.stdout.write(usage());
    return 0;
  }
  const name = COMMANDS[`${argv[0]} ${argv[1]}`] ? `${argv[0]} ${argv[1]}` : argv[0]!;
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`kapsel: unknown command ${argv.slice(0, 2).join(" ")}\n\n${usage()}`);
    return 2;
  }
  return run(command, name, argv.slice(name.split(" ").length));
}

let fatalContext: FatalContext | undefined;

async function run(command: Command, name: string, rest: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: true,
      options: { help: { type: "boolean", short: "h" }, ...(command.json ? { json: { type: "boolean" } } : {}), ...command.options },
    });
  } catch (err) {
    process.stderr.write(`kapsel ${name}: ${(err as Error).message}\n\n${commandHelp(command)}`);
    return 2;
  }
  if (parsed.values.help) {
    process.stdout.write(commandHelp(command));
    return 0;
  }
  if (parsed.positionals.length < (command.positionals ?? 0)) {
    process.stderr.write(commandHelp(command));
    return 2;
  }
  const config = loadConfig();
  fatalContext = { databaseUrl: config.database.url, host: config.http.host, port: config.http.port, dataDir: config.dataDir };
  const log = createLogger(config.logLevel ?? (name === "serve" ? "info" : "warn"));
  return command.run({
    config,
    log,
    args: parsed.positionals,
    options: parsed.values as Record<string, string | boolean | undefined>,
    json: parsed.values.json === true,
    openSecrets: (db) => openSecrets(config.secrets, config.dataDir, db.pool, log),
    async withDatabase(use) {
      const db = await openDatabase(config.database, config.dataDir, log);
      try {
        return await use(db);
      } finally {
        await db.close();
      }
    },
  });
}

/** `kapsel keys rotate-master`: the new key from a file (preferred: an argument shows in the
 * process list and the shell's history) or an argument. */
async function rotateMaster(config: Config, log: Logger, options: Record<string, string | boolean | undefined>): Promise<number> {
  const file = options["new-key-file"] as string | undefined;
  const given = options["new-key"] as string | undefined;
  if ((file === undefined) === (given === undefined)) throw new ConfigError("give the new key with exactly one of --new-key-file FILE or --new-key BASE64");
  const next = file === undefined
    ? parseMasterKey(given!, "--new-key")
    : parseMasterKey(await readFile(file, "utf8").catch((err: NodeJS.ErrnoException) => {
      throw new MasterKeyError(`${file}: cannot read the new key (${err.code ?? err.message})`);
    }), file);
  const db = await openDatabase(config.database, config.dataDir, log);
  try {
    const current = await resolveMasterKey(config.secrets.masterKey, config.dataDir);
    const r = await rotateMasterKey(db.pool, current, next).catch((err: unknown) => {
      if (!(err instanceof SecretUnreadable)) throw err;
      throw new MasterKeyError(`${err.message}; give it a new secret (RotateEndpointSecret or RotateSourceSecret, or kapsel keys rotate for the log key) and run this again: the values already re-sealed stay so`);
    });
    process.stdout.write(`re-sealed ${r.resealed} secret(s) under master key ${r.toKeyId}; key ${r.fromKeyId} no longer opens any of them\n`);
    process.stdout.write(r.replacedFile !== undefined
      ? `the new key replaced ${r.replacedFile}\n`
      : "set KAPSEL_MASTER_KEY to the new key before starting Kapsel again\n");
    return 0;
  } finally {
    await db.close();
  }
}

async function serve(config: Config, log: Logger): Promise<number> {
  const server = await startServer(config, log);
  process.stderr.write(`Kapsel console: ${server.url}/console/\n`);
  return new Promise<number>((resolve) => {
    const onSignal = (signal: string) => {
      log.info({ signal }, "signal received");
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
      server.stop().then(() => resolve(0), (err: unknown) => {
        log.error({ err }, "error during shutdown");
        resolve(1);
      });
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const fatal = describeFatal(err, fatalContext);
    process.stderr.write(`kapsel: ${fatal ? fatal.line : (err as Error)?.stack ?? String(err)}\n`);
    process.exit(fatal?.code ?? 1);
  },
);
