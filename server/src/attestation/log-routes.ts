// Plain HTTP reads of the log: the C2SP tlog-tiles paths (ATTESTATION.md §7) for monitors and
// mirrors, and `GET /v1/attempts/{id}/proof` for curl users with an API key.
import type { Authenticator } from "../auth/auth-interceptor.ts";
import { authorize, bearerToken } from "../auth/auth-interceptor.ts";
import { KapselError } from "../errors.ts";
import type { PlainRoute } from "../http/app.ts";
import type { DatabasePool } from "slonik";
import { latestCheckpoint } from "./checkpoints.ts";
import type { Proofs } from "./proofs.ts";
import { parseTilePath } from "./tiles.ts";

const TILE = /^\/log\/tile\/(\d+)\/((?:x\d{3}\/)*\d{3})(?:\.p\/(\d{1,3}))?$/;
const PROOF = /^\/v1\/attempts\/([^/]+)\/proof$/;

export function logRoutes(pool: DatabasePool, proofs: Proofs, auth: Authenticator): PlainRoute[] {
  return [
    {
      name: "/log/checkpoint",
      match: (m, p) => (m === "GET" && p === "/log/checkpoint" ? [] : undefined),
      async handle(_req, res) {
        const c = await latestCheckpoint(pool);
        if (!c) {
          res.writeHead(404, { "content-type": "text/plain" }).end("no checkpoint yet\n");
          return;
        }
        res.writeHead(200, { "content-type": "text/plain; charset=utf-8", "cache-control": "public, max-age=1" }).end(c.note);
      },
    },
    {
      name: "/log/tile/{L}/{N}",
      quiet: true,
      match: (m, p) => (m === "GET" && p.startsWith("/log/tile/") ? [p] : undefined),
      async handle(_req, res, [path]) {
        const match = TILE.exec(path!);
        const level = match ? Number(match[1]) : NaN;
        const n = match ? parseTilePath(match[2]!) : undefined;
        const width = match?.[3] === undefined ? undefined : Number(match[3]);
        // Entry bundles are not public: receipts belong to tenants (ATTESTATION.md §7).
        if (!match || n === undefined || level > 63 || (width !== undefined && (width < 1 || width > 255))) {
          res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
          return;
        }
        const bytes = await proofs.tile(level, n, width);
        if (!bytes) {
          res.writeHead(404, { "content-type": "text/plain" }).end("no such tile\n");
          return;
        }
        res.writeHead(200, {
          "content-type": "application/octet-stream",
          "content-length": bytes.length,
          // A tile, full or partial at a given width, never changes once it exists.
          "cache-control": "public, max-age=31536000, immutable",
        }).end(bytes);
      },
    },
    {
      name: "/v1/attempts/{id}/proof",
      match: (m, p) => {
        if (m !== "GET") return undefined;
        const r = PROOF.exec(p);
        return r ? [decodeURIComponent(r[1]!)] : undefined;
      },
      async handle(req, res, [attemptId]) {
        const token = bearerToken(req.headers.authorization);
        const caller = token === undefined ? undefined : await auth.authenticate(token);
        authorize("read-or-manage", caller);
        if (caller?.kind !== "tenant") throw new KapselError("E1004", "this call needs a tenant API key", { forbidden: true });
        const bundle = await proofs.bundle(caller.tenantId, attemptId!);
        res.writeHead(200, {
          "content-type": "text/plain; charset=utf-8",
          "content-disposition": `attachment; filename="${attemptId}.tlog-proof"`,
        }).end(bundle);
      },
    },
  ];
}
