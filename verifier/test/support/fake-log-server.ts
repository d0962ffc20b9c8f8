// A log server made of test data: it serves a checkpoint and C2SP tlog-tiles hash tiles for
// whatever tree the test puts in it, as a Kapsel server does at /log/checkpoint and /log/tile/….
// Tests use it to show a monitor a history of their choosing — a forged one, signed with the
// log's real key, included.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** What the fake log serves right now. */
export interface FakeLogView {
  /** The checkpoint text to serve (undefined: 404). */
  checkpoint: string | undefined;
  /** MTH of leaves [start, end) of the served tree, for tiles. */
  mth: (start: number, end: number) => Uint8Array;
  /** Size of the served tree (tiles beyond it do not exist). */
  size: number;
  /** Answers Connect JSON RPCs (`POST /kapsel.v1.<Service>/<Method>`), if the test wants them. */
  rpc?: (method: string, request: any, authorization: string | undefined) => { status: number; body: unknown };
}

export interface FakeLogServer {
  readonly url: string;
  view: FakeLogView;
  /** Paths requested, in order. */
  readonly requests: string[];
  close(): Promise<void>;
}

const TILE = /^\/log\/tile\/(\d+)\/((?:x\d{3}\/)*\d{3})(?:\.p\/(\d+))?$/;

export async function startFakeLog(view: FakeLogView): Promise<FakeLogServer> {
  const requests: string[] = [];
  const fake: { view: FakeLogView } = { view };
  const server: Server = createServer((request, response) => {
    const path = request.url ?? "/";
    requests.push(path);
    const current = fake.view;
    if (path === "/log/checkpoint" && current.checkpoint !== undefined) {
      response.writeHead(200, { "content-type": "text/plain; charset=utf-8" }).end(current.checkpoint);
      return;
    }
    const rpc = /^\/kapsel\.v1\.\w+\/(\w+)$/.exec(path);
    if (rpc !== null && request.method === "POST" && current.rpc !== undefined) {
      const chunks: Buffer[] = [];
      request.on("data", (chunk: Buffer) => chunks.push(chunk));
      request.on("end", () => {
        const answer = current.rpc!(rpc[1]!, JSON.parse(Buffer.concat(chunks).toString("utf8")), request.headers.authorization);
        response.writeHead(answer.status, { "content-type": "application/json" }).end(JSON.stringify(answer.body));
      });
      return;
    }
    const tile = TILE.exec(path);
    if (tile !== null) {
      const level = Number(tile[1]);
      const index = Number(tile[2]!.replaceAll("x", "").replaceAll("/", ""));
      const width = tile[3] === undefined ? 256 : Number(tile[3]);
      const span = 256 ** level;
      if ((index * 256 + width) * span <= current.size) {
        const hashes = Array.from({ length: width }, (_, i) => current.mth((index * 256 + i) * span, (index * 256 + i + 1) * span));
        response.writeHead(200, { "content-type": "application/octet-stream" }).end(Buffer.concat(hashes));
        return;
      }
    }
    response.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get view() {
      return fake.view;
    },
    set view(next: FakeLogView) {
      fake.view = next;
    },
    requests,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
