// The admin token: KAPSEL_ADMIN_TOKEN, or one generated into <data dir>/admin-token (0600) on the
// first start. It is printed once, and only to an interactive terminal: a process whose stderr is
// a pipe or a file (a service manager, a container, CI) usually has its output collected into
// logs that more people can read than the data folder; there it says where the file is instead.
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "../logger.ts";
import { readOrCreateSecret } from "../secret-file.ts";

export async function adminToken(
  configured: string | undefined,
  dataDir: string,
  log: Logger,
  terminal: boolean = process.stderr.isTTY === true,
): Promise<string> {
  if (configured !== undefined) return configured;
  await mkdir(dataDir, { recursive: true });
  const file = path.resolve(dataDir, "admin-token");
  const isNew = !existsSync(file);
  const token = await readOrCreateSecret(file, () => `kadm_${randomBytes(32).toString("base64url")}`);
  if (!isNew) return token;
  const createTenant =
    `Create a tenant:   npx kapsel tenant create my-team   (or ManagementService.CreateTenant with\n` +
    `                   Authorization: Bearer <admin token>)\n\n`;
  if (terminal) {
    log.info({ file }, "generated an admin token (printed once below; kept in this 0600 file)");
    process.stderr.write(`\nKapsel admin token: ${token}\n${createTenant}`);
  } else {
    log.info({ file }, "generated an admin token, kept in this 0600 file (not printed: stderr is not a terminal)");
    process.stderr.write(`\nKapsel admin token: in ${file} (not printed: stderr is not a terminal)\n${createTenant}`);
  }
  return token;
}
