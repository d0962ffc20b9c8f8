// The console's static serving: the built app under /console/ with a strict Content-Security-
// Policy, hashed assets cached for a year and index.html revalidated, every client-side route
// answered with the app, only GET and HEAD, and no way to reach a file outside the build.
import http from "node:http";
import { mkdtemp, mkdir, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROUTES } from "../../console/src/router/routes.ts";
import { CONTENT_SECURITY_POLICY, consoleRoutes, loadConsole } from "../src/http/console-route.ts";
import type { PlainRoute } from "../src/http/plain-route.ts";
import { startTestServer, type TestServer } from "../../test/support/server.ts";

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** A request with the path exactly as given: fetch would normalise `..` and `%2e` away. */
function raw(base: string, rawPath: string, options: { method?: string; headers?: Record<string, string> } = {}): Promise<RawResponse> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path: rawPath, method: options.method ?? "GET", headers: options.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end();
  });
}

const UUID = "0190a3b4-1c2d-7e8f-9a0b-1c2d3e4f5a6b";

describe("the built console served by a real Kapsel server", () => {
  let server: TestServer;
  let index: string;
  let assets: string[];
  beforeAll(async () => {
    server = await startTestServer();
    index = (await raw(server.url, "/console/")).body.toString();
    assets = [...index.matchAll(/(?:src|href)="(\/console\/assets\/[^"]+)"/g)].map((m) => m[1]!);
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("/console/ is the app, with the security headers and no caching", async () => {
    const res = await raw(server.url, "/console/");
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(res.headers["content-security-policy"]).toBe(CONTENT_SECURITY_POLICY);
    expect(res.headers["cache-control"]).toBe("no-cache");
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
    expect(res.headers["x-frame-options"]).toBe("DENY");
    expect(res.headers["referrer-policy"]).toBe("no-referrer");
    expect(index).toContain('<div id="root"></div>');
    expect(assets.some((a) => a.endsWith(".js"))).toBe(true);
    expect(assets.some((a) => a.endsWith(".css"))).toBe(true);
  });

  it("the policy allows only this origin, no inline script or style, and no framing", () => {
    const directives = Object.fromEntries(CONTENT_SECURITY_POLICY.split("; ").map((d) => [d.split(" ")[0], d.split(" ").slice(1).join(" ")]));
    expect(directives).toMatchObject({
      "default-src": "'none'",
      "script-src": "'self'",
      "style-src": "'self'",
      "connect-src": "'self'",
      "frame-ancestors": "'none'",
      "base-uri": "'none'",
      "object-src": "'none'",
    });
    expect(CONTENT_SECURITY_POLICY).not.toMatch(/unsafe-inline|unsafe-eval|\*|https?:/);
  });

  it("the built page has no inline script, no external URL and no web font", () => {
    expect(index).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(index).not.toMatch(/https?:\/\//);
    expect(index).not.toMatch(/fonts\.|\.woff/);
  });

  it("every client-side route the app defines is answered with the app, so links open directly", async () => {
    for (const route of ROUTES) {
      const res = await raw(server.url, route.replace(/:[a-zA-Z]+/g, UUID));
      expect({ route, status: res.status, body: res.body.toString() }).toEqual({ route, status: 200, body: index });
      expect(res.headers["cache-control"]).toBe("no-cache");
    }
    for (const route of ["/console/endpoints", "/console/events", `/console/events/${UUID}`]) {
      expect((await raw(server.url, route)).status).toBe(200);
    }
  });

  it("hashed assets are cached for a year, with their type, and gzip when asked", async () => {
    for (const asset of assets) {
      const plain = await raw(server.url, asset);
      expect(plain.status).toBe(200);
      expect(plain.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
      expect(plain.headers["content-security-policy"]).toBe(CONTENT_SECURITY_POLICY);
      const ext = path.extname(asset);
      expect(plain.headers["content-type"]).toBe({ ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml" }[ext]);
      const zipped = await raw(server.url, asset, { headers: { "accept-encoding": "gzip, br" } });
      if (zipped.headers["content-encoding"] === "gzip") expect(gunzipSync(zipped.body).equals(plain.body)).toBe(true);
      else expect(zipped.body.equals(plain.body)).toBe(true);
    }
    const js = assets.find((a) => a.endsWith(".js"))!;
    expect((await raw(server.url, js, { headers: { "accept-encoding": "gzip" } })).headers["content-encoding"]).toBe("gzip");
  });

  it("a matching ETag answers 304 without a body", async () => {
    const first = await raw(server.url, "/console/events");
    const again = await raw(server.url, "/console/events", { headers: { "if-none-match": String(first.headers.etag) } });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
  });

  it("HEAD answers the headers only", async () => {
    const res = await raw(server.url, "/console/", { method: "HEAD" });
    expect(res.status).toBe(200);
    expect(Number(res.headers["content-length"])).toBe(Buffer.byteLength(index));
    expect(res.body.length).toBe(0);
  });

  it("only GET and HEAD: anything else is 405 with Allow", async () => {
    for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
      for (const p of ["/console/", "/console/events", assets[0]!, "/"]) {
        const res = await raw(server.url, p, { method });
        expect({ method, p, status: res.status, allow: res.headers.allow }).toEqual({ method, p, status: 405, allow: "GET, HEAD" });
      }
    }
  });

  it("/ and /console redirect to /console/", async () => {
    for (const p of ["/", "/console"]) {
      const res = await raw(server.url, p);
      expect(res.status).toBe(302);
      expect(res.headers.location).toBe("/console/");
    }
  });

  it("unknown paths under /console/ are 404, including malformed ids", async () => {
    for (const p of ["/console/nope", "/console/events/not-a-uuid", `/console/events/${UUID}/x`, "/console/assets/missing.js", "/console/index.html"]) {
      expect({ p, status: (await raw(server.url, p)).status }).toEqual({ p, status: 404 });
    }
  });

  it("path traversal reaches nothing outside the build", async () => {
    const attempts = [
      "/console/assets/../index.html",
      "/console/assets/../../../package.json",
      "/console/assets/..%2f..%2f..%2fpackage.json",
      "/console/assets/%2e%2e/%2e%2e/%2e%2e/package.json",
      "/console/assets/..%5c..%5c..%5cpackage.json",
      "/console/assets/%252e%252e%252fpackage.json",
      "/console/../package.json",
      "/console/assets//etc/passwd",
      "/console/assets/.env",
      "/console/%2e%2e/%2e%2e/server/src/config.ts",
      "/console/assets/x%00.js",
    ];
    for (const p of attempts) {
      const res = await raw(server.url, p);
      expect({ p, status: res.status }).toEqual({ p, status: 404 });
      expect(res.body.toString()).toBe("not found\n");
    }
  });

  it("the RPC API is unaffected", async () => {
    const res = await fetch(`${server.url}/kapsel.v1.ManagementService/ListEndpoints`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(res.status).toBe(401);
  });
});

describe("serving a build folder", () => {
  let base: string;
  let site: http.Server;
  const serve = async (routes: PlainRoute[]) => {
    site = http.createServer((req, res) => {
      const pathname = (req.url ?? "/").split("?")[0]!;
      const route = routes.find((r) => r.match(req.method ?? "GET", pathname));
      if (!route) return res.writeHead(418).end();
      void route.handle(req, res, route.match(req.method ?? "GET", pathname)!, { requestId: "t", log: undefined as never, connection: req.socket });
    });
    await new Promise<void>((r) => site.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(site.address() as { port: number }).port}`;
  };
  afterAll(async () => {
    await new Promise((r) => site?.close(r));
  });

  it("a symbolic link in the build is not followed, and files beside the build are unreachable", async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), "kapsel-console-"));
    const dist = path.join(root, "dist");
    await mkdir(path.join(dist, "assets"), { recursive: true });
    await writeFile(path.join(root, "secret.txt"), "SECRET");
    await writeFile(path.join(dist, "index.html"), "<!doctype html><title>t</title>");
    await writeFile(path.join(dist, "assets", "app-abc123.js"), "console.log(1)");
    await symlink(path.join(root, "secret.txt"), path.join(dist, "assets", "leak-abc123.js"));
    const files = await loadConsole([dist]);
    expect([...files!.assets.keys()]).toEqual(["app-abc123.js"]);
    await serve(consoleRoutes(files));
    expect((await raw(base, "/console/assets/app-abc123.js")).body.toString()).toBe("console.log(1)");
    for (const p of ["/console/assets/leak-abc123.js", "/console/assets/../../secret.txt", "/console/../secret.txt", "/console/assets/%2e%2e/%2e%2e/secret.txt"]) {
      const res = await raw(base, p);
      expect({ p, status: res.status }).toEqual({ p, status: 404 });
      expect(res.body.toString()).not.toContain("SECRET");
    }
  });

  it("without a build, the console answers 503 saying how to build it", async () => {
    expect(await loadConsole([path.join(os.tmpdir(), "kapsel-no-such-build")])).toBeUndefined();
    await new Promise((r) => site.close(r));
    await serve(consoleRoutes(undefined));
    const res = await raw(base, "/console/events");
    expect(res.status).toBe(503);
    expect(res.body.toString()).toContain("npm run build -w console");
  });
});
