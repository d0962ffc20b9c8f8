// Plain HTTP reads of the log: the C2SP tlog-tiles paths (ATTESTATION.md §7) for monitors and
// mirrors, and `GET /v1/attempts/{id}/proof` for curl users with an API key. With witnesses
// configured, /log/checkpoint is the witnessed checkpoint, cosignatures included: as in Tessera,
// the log publishes a checkpoint once its witness policy is met, so monitors that demand the
// quorum (`kapsel-verify monitor --witness …`) can follow it.
import { authorize } from "../auth/access.ts";
import type { Authenticator } from "../auth/authenticator.ts";
import { bearerToken } from "../auth/bearer-token.ts";
import { KapselError } from "../errors.ts";
import { decodePathSegment, type PlainRoute } from "../http/plain-route.ts";
import type { DatabasePool } from "slonik";
import type { WitnessedSource } from "./attestation-service.ts";
import { latestCheckpoint } from "./checkpoints.ts";
import type { Proofs } from "./proofs.ts";
import { parseTilePath, tilePath } from "./tiles.ts";

const TILE = /^\/log\/tile\/(0|[1-9]\d?)\/((?:x\d{3}\/)*\d{3})(?:\.p\/([1-9]\d{0,2}))?$/;
const PROOF = /^\/v1\/attempts\/([^/]+)\/proof$/;

/**
 * A hash tile path in its one canonical spelling (C2SP tlog-tiles: no leading zeros in L or W, N
 * in the shortest 3-digit groups), so each tile has exactly one URL for caches to hold; entry
 * bundles never match, since receipts belong to tenants (ATTESTATION.md §7).
 */
function parseTileRequest(path: string): { level: number; n: number; width: number | undefined } | undefined {
  const match = TILE.exec(path);
  if (!match) return undefined;
  const level = Number(match[1]);
  const n = parseTilePath(match[2]!);
  const width = match[3] === undefined ? undefined : Number(match[3]);
  if (level > 63 || n === undefined || tilePath(n) !== match[2] || (width !== undefined && width > 255)) return undefined;
  return { level, n, width };
}


export function logRoutes(pool: DatabasePool, proofs: Proofs, witnessed: WitnessedSource, auth: Authenticator): PlainRoute[] {
  return [
    {
      name: "/log/checkpoint",
      match: (m, p) => (m === "GET" && p === "/log/checkpoint" ? [] : undefined),
      async handle(_req, res) {
        const c = witnessed.configured ? await witnessed.latest() : await latestCheckpoint(pool);
        if (!c) {
          res.writeHead(404, { "content-type": "text/plain" }).end(witnessed.configured ? "no witnessed checkpoint yet\n" : "no checkpoint yet\n");
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
        const tile = parseTileRequest(path!);
        if (!tile) {
          res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
          return;
        }
        const bytes = await proofs.tile(tile.level, tile.n, tile.width);
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
        // Decoded in the handler: a throw here would escape the request handler and end the process.
        return r ? [r[1]!] : undefined;
      },
      async handle(req, res, [rawId]) {
        const attemptId = decodePathSegment(rawId!);
        const token = bearerToken(req.headers.authorization);
        const caller = token === undefined ? undefined : await auth.authenticate(token);
        authorize("read-or-manage", caller);
        if (caller?.kind !== "tenant") throw new KapselError("E1004", "this call needs a tenant API key", { forbidden: true });
        const bundle = await proofs.bundle(caller.tenantId, attemptId);
        res.writeHead(200, {
          "content-type": "text/plain; charset=utf-8",
          "content-disposition": `attachment; filename="${attemptId}.tlog-proof"`,
        }).end(bundle);
      },
    },
  ];
}
