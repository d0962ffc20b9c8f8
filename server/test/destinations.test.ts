// Destination validation as a tenant sees it: CreateEndpoint and UpdateEndpoint on servers with
// production settings (no private destinations) refuse anything but a public https address with
// E2001, and the operator's switches (allow-list, allow-private) open exactly what they say.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTenant, errorCode, rpc } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";

const servers: TestServer[] = [];
async function server(env: Record<string, string>): Promise<{ url: string; key: string }> {
  const s = await startTestServer(env);
  servers.push(s);
  return { url: s.url, key: (await createTenant(s.url, ADMIN_TOKEN)).apiKey };
}
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});

async function create(target: { url: string; key: string }, url: string, extra: Record<string, unknown> = {}) {
  const r = await rpc(target.url, "CreateEndpoint", { url, ...extra }, target.key);
  return { status: r.status, code: r.body.code as string | undefined, kapsel: errorCode(r.body), body: r.body };
}

describe("with KAPSEL_ALLOW_PRIVATE_DESTINATIONS=false", () => {
  let strict: { url: string; key: string };
  beforeAll(async () => {
    strict = await server({ KAPSEL_ALLOW_PRIVATE_DESTINATIONS: "false" });
  });

  it.each([
    ["https://10.0.0.1/hook", "private 10/8"],
    ["https://192.168.1.1/hook", "private 192.168/16"],
    ["https://172.16.0.1/hook", "private 172.16/12"],
    ["https://127.0.0.1/hook", "loopback"],
    ["https://[::1]/hook", "IPv6 loopback"],
    ["https://localhost/hook", "a name that resolves to loopback"],
    ["https://169.254.169.254/latest/meta-data/", "link-local cloud metadata"],
    ["https://[::ffff:127.0.0.1]/hook", "IPv4-mapped IPv6 loopback"],
    ["https://[fd00::1]/hook", "IPv6 unique local"],
    ["https://0.0.0.0/hook", "unspecified"],
    ["https://2130706433/hook", "loopback as one decimal number"],
    ["http://93.184.216.34/hook", "plain http without allow_http"],
    ["ftp://93.184.216.34/hook", "not http at all"],
    ["https://user:secret@93.184.216.34/hook", "credentials in the URL"],
    ["not a url", "unparsable"],
  ])("%s (%s) is refused with E2001 InvalidArgument", async (url) => {
    const r = await create(strict, url);
    expect([r.status, r.code, r.kapsel]).toEqual([400, "invalid_argument", "E2001"]);
  });

  it("a public IP literal over https is accepted and stored normalised", async () => {
    const r = await create(strict, "https://93.184.216.34/hook");
    expect(r.status).toBe(200);
    expect(r.body.endpoint.url).toBe("https://93.184.216.34/hook");
  });

  it("plain http is accepted when the endpoint sets allow_http", async () => {
    const r = await create(strict, "http://93.184.216.34/plain", { allowHttp: true });
    expect(r.status).toBe(200);
    expect(r.body.endpoint).toMatchObject({ url: "http://93.184.216.34/plain", allowHttp: true });
  });

  it("allow_http does not open private addresses", async () => {
    const r = await create(strict, "http://127.0.0.1:9/hook", { allowHttp: true });
    expect([r.status, r.kapsel]).toEqual([400, "E2001"]);
  });

  it("UpdateEndpoint to a private URL is refused with E2001 and the stored URL stays", async () => {
    const id = (await create(strict, "https://93.184.216.34/before")).body.endpoint.id;
    for (const url of ["https://10.0.0.1/after", "https://169.254.169.254/", "https://[::1]/"]) {
      const r = await rpc(strict.url, "UpdateEndpoint", { endpointId: id, url }, strict.key);
      expect([url, r.status, errorCode(r.body)]).toEqual([url, 400, "E2001"]);
    }
    const read = await rpc(strict.url, "GetEndpoint", { endpointId: id }, strict.key);
    expect(read.body.endpoint.url).toBe("https://93.184.216.34/before");
  });

  it("turning allow_http off again re-checks the stored http URL", async () => {
    const id = (await create(strict, "http://93.184.216.34/plain", { allowHttp: true })).body.endpoint.id;
    const r = await rpc(strict.url, "UpdateEndpoint", { endpointId: id, allowHttp: false }, strict.key);
    expect([r.status, errorCode(r.body)]).toEqual([400, "E2001"]);
  });
});

describe("operator switches", () => {
  it("KAPSEL_DESTINATION_ALLOWLIST=127.0.0.0/8 admits IPv4 loopback but nothing else private", async () => {
    const s = await server({ KAPSEL_ALLOW_PRIVATE_DESTINATIONS: "false", KAPSEL_DESTINATION_ALLOWLIST: "127.0.0.0/8" });
    expect((await create(s, "https://127.0.0.1:8443/hook")).status).toBe(200);
    expect((await create(s, "https://127.9.9.9/hook")).status).toBe(200);
    expect((await create(s, "https://10.0.0.1/hook")).kapsel).toBe("E2001");
    expect((await create(s, "https://[::1]/hook")).kapsel).toBe("E2001");
    expect((await create(s, "https://169.254.169.254/")).kapsel).toBe("E2001");
  });

  it("an allow-listed host name admits that name", async () => {
    const s = await server({ KAPSEL_ALLOW_PRIVATE_DESTINATIONS: "false", KAPSEL_DESTINATION_ALLOWLIST: "localhost" });
    expect((await create(s, "https://localhost:8443/hook")).status).toBe(200);
    expect((await create(s, "https://127.0.0.1/hook")).kapsel).toBe("E2001");
  });

  it("KAPSEL_ALLOW_PRIVATE_DESTINATIONS=true admits loopback and private addresses (still not plain http)", async () => {
    const s = await server({ KAPSEL_ALLOW_PRIVATE_DESTINATIONS: "true" });
    expect((await create(s, "https://127.0.0.1/hook")).status).toBe(200);
    expect((await create(s, "https://localhost/hook")).status).toBe(200);
    expect((await create(s, "https://10.0.0.1/hook")).status).toBe(200);
    expect((await create(s, "http://127.0.0.1/hook")).kapsel).toBe("E2001");
    expect((await create(s, "http://127.0.0.1/hook", { allowHttp: true })).status).toBe(200);
  });
});
