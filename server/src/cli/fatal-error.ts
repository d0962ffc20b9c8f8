// What the `kapsel` command prints when it cannot go on: one line that says what is wrong and what
// to do, not a stack trace — for the mistakes an operator makes (a bad variable, no database, a
// taken port, a folder it may not write) and the errors the API would answer with a code.
import { ConfigError } from "../config.ts";
import { DurabilityError } from "../db/database.ts";
import { MigrationError } from "../db/migrate.ts";
import { isDatabaseUnavailable, KapselError } from "../errors.ts";
import { MasterKeyError } from "../secrets/master-key.ts";

export interface FatalContext {
  databaseUrl: string | undefined;
  host: string;
  port: number;
  dataDir: string;
}

/** The line to print and the exit code; undefined for an error nobody foresaw (print its stack). */
export function describeFatal(err: unknown, ctx: FatalContext | undefined): { line: string; code: number } | undefined {
  if (err instanceof ConfigError) return { line: `configuration error: ${err.message}`, code: 2 };
  if (err instanceof MigrationError || err instanceof DurabilityError || err instanceof MasterKeyError) return { line: err.message, code: 1 };
  if (err instanceof KapselError) return { line: `${err.code}: ${err.message}`, code: 1 };
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
  if (e?.code === "EADDRINUSE") {
    return { line: `port ${e.port ?? ctx?.port} on ${e.address ?? ctx?.host} is in use by another program; choose another with KAPSEL_PORT (several kapsel processes share one port when each sets KAPSEL_HTTP_REUSE_PORT=true)`, code: 1 };
  }
  if (isDatabaseUnavailable(err)) {
    const where = ctx?.databaseUrl ? hostOf(ctx.databaseUrl) : "the embedded Postgres";
    return { line: `cannot reach the database (${where}): ${reason(err)}; is it running? Check DATABASE_URL`, code: 1 };
  }
  if ((e?.code === "EACCES" || e?.code === "EPERM" || e?.code === "ENOENT" || e?.code === "ENOTDIR" || e?.code === "EROFS") && e.path) {
    return { line: `cannot use ${e.path} (${e.code}): check KAPSEL_DATA_DIR (now ${ctx?.dataDir ?? "?"}) and its permissions`, code: 1 };
  }
  return undefined;
}

/** host:port/database of a Postgres URL, without the credentials. */
function hostOf(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || 5432}${u.pathname}`;
  } catch {
    return "DATABASE_URL";
  }
}

function reason(err: unknown): string {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^[A-Z]/.test(code)) return code;
  }
  return (err as Error).message.split("\n")[0]!;
}
