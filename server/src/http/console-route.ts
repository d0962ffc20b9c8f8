// Serves the Kapsel Console (console/dist, built by `npm ci`) under /console/. Every built file is
// read into memory at start, so a request can only ever name a file that exists in that listing:
// no path from a request reaches the file system, which makes traversal impossible by
// construction. Client-side routes answer with index.html so a link can be opened directly.
import { createHash } from "node:crypto";
import { lstat, readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import type { PlainRoute, Req, Res } from "./plain-route.ts";

/** Where the console is: in the installed package, the `console/` its prepack copied beside
 * `dist/`; in this workspace, where `npm run build -w console` writes it. */
export const CONSOLE_DIRS = [
  fileURLToPath(new URL("../../console/", import.meta.url)),
  fileURLToPath(new URL("../../../console/dist/", import.meta.url)),
];

/**
 * The page may load scripts, styles and images only from this server, talk only to this server
 * (so an API key typed into it cannot be sent elsewhere), and never be framed. No inline script
 * or style is allowed, and DOM sinks that turn strings into script need Trusted Types.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "object-src 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join("; ");

const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
  "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
};

/**
 * The console's client-side routes (console/src/router/routes.ts keeps the same list; a test
 * checks they agree). Parameters are UUIDs.
 */
const UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}";
export const CLIENT_ROUTES: readonly RegExp[] = [
  "/console/",
  "/console/sign-in",
  "/console/events",
  `/console/events/${UUID}`,
  "/console/messages",
  `/console/messages/${UUID}`,
  "/console/endpoints",
  `/console/endpoints/${UUID}`,
  "/console/sources",
  `/console/sources/${UUID}`,
  "/console/alerts",
  "/console/keys",
  "/console/log",
  "/console/admin",
  `/console/admin/tenants/${UUID}`,
].map((p) => new RegExp(`^${p}$`));

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".json": "application/json",
  ".txt": "text/plain; charset=utf-8",
  ".woff2": "font/woff2",
};
const COMPRESSIBLE = new Set([".html", ".js", ".css", ".svg", ".json", ".txt"]);
/** Asset names as Vite writes them (`index-BxRZxE-f.js`); anything else is not looked up. */
const ASSET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;
const MAX_FILES = 500;
const MAX_FILE_BYTES = 16 * 1024 * 1024;

interface StaticFile {
  body: Buffer;
  gzip: Buffer | undefined;
  type: string;
  etag: string;
}

export interface ConsoleFiles {
  index: StaticFile;
  /** By file name, from the assets/ folder only. */
  assets: ReadonlyMap<string, StaticFile>;
}

function toStatic(name: string, body: Buffer): StaticFile {
  const ext = path.extname(name).toLowerCase();
  const gzip = COMPRESSIBLE.has(ext) && body.length > 512 ? gzipSync(body, { level: 9 }) : undefined;
  return {
    body,
    gzip: gzip && gzip.length < body.length ? gzip : undefined,
    type: TYPES[ext] ?? "application/octet-stream",
    etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`,
  };
}

/** Reads a built console (from the first of `dirs` that holds one); undefined when none does. */
export async function loadConsole(dirs: readonly string[] = CONSOLE_DIRS): Promise<ConsoleFiles | undefined> {
  for (const dir of dirs) {
    const index = await readFile(path.join(dir, "index.html")).catch(() => undefined);
    if (index) return loadConsoleFrom(dir, index);
  }
  return undefined;
}

async function loadConsoleFrom(dir: string, index: Buffer): Promise<ConsoleFiles> {
  const assets = new Map<string, StaticFile>();
  const assetDir = path.join(dir, "assets");
  const names = await readdir(assetDir).catch(() => [] as string[]);
  for (const name of names.slice(0, MAX_FILES)) {
    if (!ASSET_NAME.test(name)) continue;
    const file = path.join(assetDir, name);
    // lstat: a symbolic link in the build output is skipped, never followed out of the folder.
    const info = await lstat(file);
    if (!info.isFile() || info.size > MAX_FILE_BYTES) continue;
    assets.set(name, toStatic(name, await readFile(file)));
  }
  return { index: toStatic("index.html", index), assets };
}

function send(req: Req, res: Res, file: StaticFile, cacheControl: string): void {
  const headers: Record<string, string> = { ...SECURITY_HEADERS, "cache-control": cacheControl, etag: file.etag, vary: "accept-encoding" };
  if (req.headers["if-none-match"] === file.etag) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  const accepts = /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
  const body = accepts && file.gzip ? file.gzip : file.body;
  if (body === file.gzip) headers["content-encoding"] = "gzip";
  res.writeHead(200, { ...headers, "content-type": file.type, "content-length": String(body.length) });
  res.end(req.method === "HEAD" ? undefined : body);
}

function sendText(req: Req, res: Res, status: number, text: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { ...SECURITY_HEADERS, "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", "content-length": String(Buffer.byteLength(text)), ...extra });
  res.end(req.method === "HEAD" ? undefined : text);
}

/**
 * The routes: `/` and `/console` redirect to `/console/`; under `/console/`, hashed assets are
 * cached for a year, index.html (for every client-side route) is revalidated each time, and
 * anything else is 404. Only GET and HEAD are allowed.
 */
export function consoleRoutes(files: ConsoleFiles | undefined): PlainRoute[] {
  const redirect = (from: string): PlainRoute => ({
    name: from,
    match: (_m, p) => (p === from ? [] : undefined),
    handle(req, res) {
      if (req.method !== "GET" && req.method !== "HEAD") return sendText(req, res, 405, "method not allowed\n", { allow: "GET, HEAD" });
      sendText(req, res, 302, "see /console/\n", { location: "/console/" });
    },
  });
  const app: PlainRoute = {
    name: "/console/{path}",
    match: (_m, p) => (p.startsWith("/console/") ? [p] : undefined),
    handle(req, res, [pathname]) {
      if (req.method !== "GET" && req.method !== "HEAD") return sendText(req, res, 405, "method not allowed\n", { allow: "GET, HEAD" });
      if (!files) {
        return sendText(req, res, 503, "The console is not built. Run `npm run build -w console` (npm ci does it), then restart.\n");
      }
      if (pathname!.startsWith("/console/assets/")) {
        const name = pathname!.slice("/console/assets/".length);
        const file = ASSET_NAME.test(name) ? files.assets.get(name) : undefined;
        if (!file) return sendText(req, res, 404, "not found\n");
        return send(req, res, file, "public, max-age=31536000, immutable");
      }
      if (CLIENT_ROUTES.some((r) => r.test(pathname!))) return send(req, res, files.index, "no-cache");
      sendText(req, res, 404, "not found\n");
    },
  };
  return [redirect("/"), redirect("/console"), app];
}
