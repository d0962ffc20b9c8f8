// Locates the Debian `chromium` browser for headless browser tests, installing it on first use.
// Playwright's own browser downloads are not used: the distribution package is reproducible from
// the image's apt sources, and playwright-core drives it through `executablePath`.
import { execFile } from "node:child_process";
import { access, constants } from "node:fs/promises";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Where Debian's `chromium` package puts the browser. */
export const CHROMIUM_PATH = "/usr/bin/chromium";

/**
 * Flags for a quiet, deterministic headless run: no sandbox (tests run as root in containers),
 * no GPU, and none of the background traffic (QUIC, sync, component updates) that would reach
 * out to the network while a test expects only loopback.
 */
export const CHROMIUM_ARGS: readonly string[] = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

let pending: Promise<string> | undefined;

/**
 * Returns the path of an installed Chromium, running `apt-get install chromium` once when it is
 * missing. Requires root (or an existing install) and, for the install, working apt sources.
 * Concurrent callers in one process share a single install.
 */
export function chromiumPath(): Promise<string> {
  pending ??= ensureInstalled().catch((error: unknown) => {
    pending = undefined;
    throw error;
  });
  return pending;
}

async function ensureInstalled(): Promise<string> {
  if (await isExecutable(CHROMIUM_PATH)) return CHROMIUM_PATH;
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const options = { env, maxBuffer: 64 * 1024 * 1024 };
  await run("apt-get", ["update"], options);
  await run("apt-get", ["install", "-y", "--no-install-recommends", "chromium"], options);
  if (!(await isExecutable(CHROMIUM_PATH))) {
    throw new Error(`apt-get installed chromium but ${CHROMIUM_PATH} is not executable`);
  }
  return CHROMIUM_PATH;
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
