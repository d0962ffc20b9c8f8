// `kapsel` command line: serve (what `npm start` runs), migrate, tenant create, and help.
import { ConfigError, environmentHelp, loadConfig, type Config } from "./config.ts";
import { DurabilityError, openDatabase } from "./db/database.ts";
import { MigrationError } from "./db/migrate.ts";
import { createLogger } from "./logger.ts";
import { startServer } from "./main.ts";
import { ApiKeyStore } from "./auth/api-keys.ts";
import { Tenants } from "./management/tenants.ts";
import { auditLog } from "./attestation/log-audit.ts";
import { currentKey, publishedKeys, rotateKey } from "./attestation/signing-keys.ts";

const USAGE = `kapsel — webhook reliability with verifiable delivery

Usage:
  kapsel serve                 run the server (default when no command is given)
  kapsel migrate               apply database migrations and exit
  kapsel tenant create NAME    create a tenant and print its first API key
  kapsel keys rotate           start a new log signing key (old checkpoints keep their signatures)
  kapsel keys list             print the log's verifier keys (vkeys) with validity periods
  kapsel log verify            audit the stored log: recompute the tree, check every checkpoint
  kapsel --help                this text

Environment:
${environmentHelp()}
`;

async function main(argv: string[]): Promise<number> {
  const [command = "serve", ...rest] = argv;
  if (command === "--help" || command === "-h" || command === "help") {
    process.stdout.write(USAGE);
    return 0;
  }
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`kapsel: configuration error: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const log = createLogger(config.logLevel ?? (command === "serve" ? "info" : "warn"));

  switch (command) {
    case "serve":
      return serve(config, log);
    case "migrate": {
      const db = await openDatabase(config.database, config.dataDir, log);
      await db.close();
      process.stdout.write("migrations applied\n");
      return 0;
    }
    case "tenant": {
      const name = rest[1];
      if (rest[0] !== "create" || !name) {
        process.stderr.write("usage: kapsel tenant create NAME\n");
        return 2;
      }
      const db = await openDatabase(config.database, config.dataDir, log);
      try {
        const tenants = new Tenants(db.pool, new ApiKeyStore(db.pool), config.ingest.rateLimit);
        const { tenant, apiKey } = await tenants.create(name);
        process.stdout.write(`tenant ${tenant.id} (${tenant.name})\napi key (shown once): ${apiKey}\n`);
      } finally {
        await db.close();
      }
      return 0;
    }
    case "keys": {
      if (rest[0] !== "rotate" && rest[0] !== "list") {
        process.stderr.write("usage: kapsel keys rotate|list\n");
        return 2;
      }
      if (rest[0] === "rotate" && config.attestation.signingKey !== undefined) {
        process.stderr.write("kapsel: KAPSEL_SIGNING_KEY is set; rotate by setting a new key there instead\n");
        return 2;
      }
      const db = await openDatabase(config.database, config.dataDir, log);
      try {
        if (rest[0] === "rotate") {
          // Make sure the key being retired exists first, so its period is recorded.
          await currentKey(db.pool, config.attestation.origin, undefined);
          const key = await rotateKey(db.pool, config.attestation.origin);
          process.stdout.write(`new log key, valid from ${key.validFrom.toISOString()}:\n${key.vkey}\n`);
        } else {
          for (const k of await publishedKeys(db.pool)) {
            process.stdout.write(`${k.vkey}  ${k.validFrom.toISOString()} → ${k.validUntil?.toISOString() ?? "now"}\n`);
          }
        }
      } finally {
        await db.close();
      }
      return 0;
    }
    case "log": {
      if (rest[0] !== "verify") {
        process.stderr.write("usage: kapsel log verify\n");
        return 2;
      }
      const db = await openDatabase(config.database, config.dataDir, log);
      try {
        const report = await auditLog(db.pool, (m) => process.stderr.write(`${m}\n`));
        if (report.ok) {
          process.stdout.write(`log verified: ${report.leaves} leaves, ${report.tiles} tiles, ${report.checkpoints} checkpoints\n`);
          return 0;
        }
        process.stdout.write(`log verification FAILED: ${report.problem}\n`);
        return 1;
      } finally {
        await db.close();
      }
    }
    default:
      process.stderr.write(`kapsel: unknown command ${command}\n\n${USAGE}`);
      return 2;
  }
}

async function serve(config: Config, log: ReturnType<typeof createLogger>): Promise<number> {
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
    const known = err instanceof MigrationError || err instanceof ConfigError || err instanceof DurabilityError;
    process.stderr.write(`kapsel: ${known ? (err as Error).message : (err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
