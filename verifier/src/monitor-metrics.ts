// Prometheus text-format counters for a monitor running continuously, served on
// `--metrics-listen` at GET /metrics. Only numbers about the public log are exposed, so the
// endpoint needs no credential; nothing is read from the request but its method and path.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** What the monitor counts. Counters only grow; gauges hold the latest value. */
export class MonitorMetrics {
  rounds = { ok: 0, unreachable: 0, misbehaved: 0 };
  checkpointsVerified = 0;
  consistencyProofsVerified = 0;
  inclusionProofsVerified = 0;
  inclusionPending = 0;
  treeSize = 0n;
  checkpointTime = 0n;
  lastSuccess = 0;
  cosignatures = 0;

  /** The Prometheus text exposition of every metric. */
  render(): string {
    const lines: string[] = [];
    const metric = (name: string, type: "counter" | "gauge", help: string, samples: readonly [string, number | bigint][]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
    };
    metric("kapsel_monitor_rounds_total", "counter", "Monitoring rounds by result.", [
      ['{result="ok"}', this.rounds.ok],
      ['{result="unreachable"}', this.rounds.unreachable],
      ['{result="misbehaved"}', this.rounds.misbehaved],
    ]);
    metric("kapsel_monitor_checkpoints_verified_total", "counter", "Checkpoints fetched whose signatures and witness quorum verified.", [["", this.checkpointsVerified]]);
    metric("kapsel_monitor_consistency_proofs_verified_total", "counter", "Consistency proofs between accepted checkpoints that verified.", [["", this.consistencyProofsVerified]]);
    metric("kapsel_monitor_inclusion_proofs_verified_total", "counter", "Recent tenant attempts proven to be leaves of an accepted tree.", [["", this.inclusionProofsVerified]]);
    metric("kapsel_monitor_inclusion_pending_total", "counter", "Recent tenant attempts not yet in the accepted tree when checked.", [["", this.inclusionPending]]);
    metric("kapsel_monitor_tree_size", "gauge", "Size of the latest accepted tree.", [["", this.treeSize]]);
    metric("kapsel_monitor_checkpoint_timestamp_seconds", "gauge", "Signed time of the latest accepted checkpoint (0 if it has none).", [["", this.checkpointTime]]);
    metric("kapsel_monitor_witness_cosignatures", "gauge", "Verified witness cosignatures on the latest accepted checkpoint.", [["", this.cosignatures]]);
    metric("kapsel_monitor_last_success_timestamp_seconds", "gauge", "When a round last completed without finding a problem.", [["", this.lastSuccess]]);
    return `${lines.join("\n")}\n`;
  }
}

/** Serves `metrics` at http://HOST:PORT/metrics; resolves once listening. */
export async function serveMetrics(listen: { host: string; port: number }, metrics: MonitorMetrics): Promise<{ server: Server; url: string }> {
  const server = createServer((request, response) => {
    if (request.method !== "GET" || request.url !== "/metrics") {
      response.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    response.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }).end(metrics.render());
  });
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listen.port, listen.host, () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;
  return { server, url: `http://${address.includes(":") ? `[${address}]` : address}:${port}/metrics` };
}
