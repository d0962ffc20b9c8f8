// The HTTP sender's connect-time address check. DNS is the one seam: an injected `lookup` plays a
// resolver whose answer changed to a private address after the endpoint was validated (DNS
// rebinding). Everything else is real: undici, a loopback sink, real sockets.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HttpSender, type Lookup } from "../src/delivery/http-sender.ts";
import { startSink, type Sink } from "../../test/support/sink.ts";

let sink: Sink;
beforeAll(async () => {
  sink = await startSink();
});
afterAll(async () => {
  await sink?.close();
});

const body = Buffer.from('{"type":"rebinding"}');

function sender(lookup: Lookup, policy = { allowPrivate: false, allowList: [] as string[] }): HttpSender {
  return new HttpSender({ policy, connectTimeoutMs: 2_000, connectionsPerOrigin: 4, lookup });
}

describe("destination check at connect time", () => {
  it("a host name that now resolves to a private address is refused before any connection, and the error names the address", async () => {
    const lookups: string[] = [];
    const s = sender(async (host) => {
      lookups.push(host);
      return [{ address: "127.0.0.1", family: 4 }];
    });
    const before = sink.requests.length;
    const result = await s.send({ url: `http://hooks.example.com:${sink.port}/hook`, body, headers: {}, timeoutMs: 2_000 });
    await s.close();
    expect(lookups).toEqual(["hooks.example.com"]);
    expect(result.outcome).toBe("network_error");
    expect(result.statusCode).toBeUndefined();
    expect(result.error).toBe("destination hooks.example.com resolves to 127.0.0.1, which is not a public address");
    expect(sink.requests.length).toBe(before);
  });

  it("one private address among several answers is enough to refuse", async () => {
    const s = sender(async () => [
      { address: "93.184.216.34", family: 4 },
      { address: "169.254.169.254", family: 4 },
    ]);
    const result = await s.send({ url: `http://metadata.example.com:${sink.port}/hook`, body, headers: {}, timeoutMs: 2_000 });
    await s.close();
    expect(result.outcome).toBe("network_error");
    expect(result.error).toContain("169.254.169.254");
  });

  it("a private IP literal in the URL is refused without a lookup", async () => {
    const lookups: string[] = [];
    const s = sender(async (host) => {
      lookups.push(host);
      return [];
    });
    const before = sink.requests.length;
    const result = await s.send({ url: `http://[::1]:${sink.port}/hook`, body, headers: {}, timeoutMs: 2_000 });
    const v4 = await s.send({ url: `http://127.0.0.1:${sink.port}/hook`, body, headers: {}, timeoutMs: 2_000 });
    await s.close();
    expect(lookups).toEqual([]);
    expect(result.error).toContain("::1");
    expect(v4.error).toContain("127.0.0.1");
    expect(sink.requests.length).toBe(before);
  });

  it("an allow-listed range is let through, and the connection goes to the address that was checked", async () => {
    // The host name does not exist in real DNS: reaching the sink proves the socket went to the
    // looked-up (and checked) address rather than to a second resolution.
    const s = sender(async () => [{ address: "127.0.0.1", family: 4 }], { allowPrivate: false, allowList: ["127.0.0.0/8"] });
    const result = await s.send({ url: `http://kapsel-rebinding.invalid:${sink.port}/hook`, body, headers: { "webhook-id": "allowed" }, timeoutMs: 2_000 });
    await s.close();
    expect(result.outcome).toBe("delivered");
    expect(result.statusCode).toBe(200);
    const [req] = sink.forEvent("allowed");
    expect(req!.headers.host).toBe(`kapsel-rebinding.invalid:${sink.port}`);
    expect(req!.body.equals(body)).toBe(true);
  });
});

describe("failures before anything is sent", () => {
  const loopback = () => sender(async () => [{ address: "127.0.0.1", family: 4 }], { allowPrivate: true, allowList: [] });

  it("a destination refused by the policy is marked as refused locally (destination), so it is no sign of the destination's health", async () => {
    const s = sender(async () => [{ address: "10.1.2.3", family: 4 }]);
    const result = await s.send({ url: `http://internal.example.com:${sink.port}/hook`, body, headers: {}, timeoutMs: 2_000 });
    await s.close();
    expect(result.outcome).toBe("network_error");
    expect(result.refusedLocally).toBe("destination");
  });

  it.each([
    ["an expect header", { expect: "100-continue" }],
    ["a value beyond Latin-1", { "x-note": "price in \u20ac" }],
    ["a control character in a value", { "x-note": "a\u0001b" }],
    ["a transfer-encoding header", { "transfer-encoding": "chunked" }],
    ["an upgrade header", { upgrade: "websocket" }],
  ])("a request with %s is refused by the client before any connection and marked as refused locally (request)", async (_kind, headers) => {
    const s = loopback();
    const before = sink.requests.length;
    const result = await s.send({ url: `${sink.url}`, body, headers, timeoutMs: 2_000 });
    await s.close();
    expect(result.outcome).toBe("network_error");
    expect(result.refusedLocally).toBe("request");
    expect(result.error).toMatch(/^not sent: the request cannot be written as HTTP/);
    expect(sink.requests.length).toBe(before);
  });

  it("a refused connection and a reset are the destination's failures, not local ones", async () => {
    const s = loopback();
    const closed = await s.send({ url: "http://127.0.0.1:1/hook", body, headers: {}, timeoutMs: 2_000 });
    const behaviour = sink.behaviour;
    sink.behaviour = () => ({ reset: true });
    try {
      const reset = await s.send({ url: sink.url, body, headers: {}, timeoutMs: 2_000 });
      expect(reset.outcome).toBe("network_error");
      expect(reset.refusedLocally).toBeUndefined();
    } finally {
      sink.behaviour = behaviour;
      await s.close();
    }
    expect(closed.outcome).toBe("network_error");
    expect(closed.error).toMatch(/ECONNREFUSED/);
    expect(closed.refusedLocally).toBeUndefined();
  });
});
