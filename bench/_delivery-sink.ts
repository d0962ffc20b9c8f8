// The webhook receiver for bench/delivery.ts, run as its own process (child_process.fork) so its CPU
// is not the benchmark's: answers every request with 200 at once and keeps, for the parent, the
// arrival time of every request and the first arrival of each webhook-id. Times are wall-clock
// milliseconds with sub-millisecond resolution (timeOrigin + performance.now()), comparable with
// the parent's.
import http from "node:http";
import type { AddressInfo } from "node:net";

export type SinkCommand = { type: "reset" } | { type: "stats" } | { type: "arrivals" } | { type: "firsts" };
export interface SinkStats {
  requests: number;
  unique: number;
}

const now = () => performance.timeOrigin + performance.now();
let arrivals: number[] = [];
let firsts = new Map<string, number>();

const server = http.createServer((req, res) => {
  const at = now();
  req.on("data", () => {});
  req.on("end", () => {
    arrivals.push(at);
    const id = req.headers["webhook-id"];
    if (typeof id === "string" && !firsts.has(id)) firsts.set(id, at);
    res.writeHead(200, { "content-type": "text/plain", "content-length": "2" });
    res.end("ok");
  });
});
server.keepAliveTimeout = 120_000;
server.maxRequestsPerSocket = 0;

process.on("message", (cmd: SinkCommand) => {
  switch (cmd.type) {
    case "reset":
      arrivals = [];
      firsts = new Map();
      process.send!({ type: "reset" });
      break;
    case "stats":
      process.send!({ type: "stats", requests: arrivals.length, unique: firsts.size } satisfies SinkStats & { type: string });
      break;
    case "arrivals":
      process.send!({ type: "arrivals", arrivals });
      break;
    case "firsts":
      process.send!({ type: "firsts", firsts: [...firsts] });
      break;
  }
});
process.on("disconnect", () => process.exit(0));

server.listen(0, "127.0.0.1", () => process.send!({ type: "listening", port: (server.address() as AddressInfo).port }));
