// The admin token: KAPSEL_ADMIN_TOKEN, or one generated into <data dir>/admin-token (0600) on the
// first start and printed once, with a hint for what to do with it.
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "../logger.ts";
import { readOrCreateSecret } from "../secret-file.ts";

export async function adminToken(configured: string | undefined, dataDir: string, log: Logger): Promise<string> {
  if (configured !== undefined) return configured;
  await mkdir(dataDir, { recursive: true });
  const file = path.resolve(dataDir, "admin-token");
  const isNew = !existsSync(file);
  const token = await readOrCreateSecret(file, () => `kadm_${randomBytes(32).toString("base64url")}`);
  if (isNew) {
    log.info({ file }, "generated an admin token (printed once below; kept in this 0600 file)");
    process.stderr.write(
      `\nKapsel admin token: ${token}\n` +
      `Create a tenant:   npx kapsel tenant create my-team   (or ManagementService.CreateTenant with\n` +
      `                   Authorization: Bearer <admin token>)\n\n`,
    );
  }
  return token;
}
