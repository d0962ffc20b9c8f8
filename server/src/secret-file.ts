// Secrets the server makes for itself (the admin token, the embedded Postgres password) live in
// files only their owner can read, created once and read back on every start.
import { chmod, readFile, writeFile } from "node:fs/promises";

/** Reads a secret file, or creates it (mode 0600) with a fresh value. */
export async function readOrCreateSecret(file: string, make: () => string): Promise<string> {
  try {
    return (await readFile(file, "utf8")).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const value = make();
  await writeFile(file, value + "\n", { mode: 0o600, flag: "wx" }).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== "EEXIST") throw err;
  });
  await chmod(file, 0o600);
  return (await readFile(file, "utf8")).trim();
}
