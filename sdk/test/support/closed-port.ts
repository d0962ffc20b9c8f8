// A loopback URL nothing listens on: connecting is refused at once (ECONNREFUSED), which
// connect-es reports as Unavailable — the network failure retries are for.
import net from "node:net";
import type { AddressInfo } from "node:net";

export async function closedPortUrl(): Promise<string> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return `http://127.0.0.1:${port}`;
}
