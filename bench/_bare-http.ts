// The machine's own limit for answering at all: a Node HTTP/1.1 server that does nothing but
// answer every request with the same small 503 JSON Kapsel refuses with (no routing, no metrics,
// no logs), run as its own process by bench/ingest.ts's overload section. Prints its port.
import http from "node:http";
import { randomUUID } from "node:crypto";

const server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  const text = JSON.stringify({ code: "E9002", message: "overloaded: the ingest queue is full; nothing was accepted, retry after the hint", request_id: randomUUID() });
  res.writeHead(503, { "content-type": "application/json", "content-length": Buffer.byteLength(text), "retry-after": "1" });
  res.end(text);
});
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${(server.address() as { port: number }).port}\n`);
});
process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));
