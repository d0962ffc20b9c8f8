// Which addresses Kapsel may deliver to, without a server: the address table, allow-list matching
// and URL checks of server/src/delivery/destination-policy.ts.
import { describe, expect, it } from "vitest";
import { assertAddressAllowed, isPublicAddress, validateDestination, type DestinationPolicy } from "../src/delivery/destination-policy.ts";
import { KapselError } from "../src/errors.ts";

const STRICT: DestinationPolicy = { allowPrivate: false, allowList: [] };

describe("isPublicAddress", () => {
  it.each([
    ["0.0.0.0", "this network"],
    ["10.0.0.1", "private 10/8"],
    ["10.255.255.255", "private 10/8, last"],
    ["100.64.0.1", "carrier-grade NAT"],
    ["127.0.0.1", "loopback"],
    ["127.255.255.254", "loopback, far end"],
    ["169.254.169.254", "link-local: cloud metadata"],
    ["172.16.0.1", "private 172.16/12"],
    ["172.31.255.255", "private 172.16/12, last"],
    ["192.0.0.8", "IETF protocol assignments"],
    ["192.0.2.1", "TEST-NET-1"],
    ["192.168.1.1", "private 192.168/16"],
    ["198.18.0.1", "benchmarking"],
    ["198.51.100.7", "TEST-NET-2"],
    ["203.0.113.9", "TEST-NET-3"],
    ["224.0.0.1", "multicast"],
    ["240.0.0.1", "reserved"],
    ["255.255.255.255", "broadcast"],
    ["::", "unspecified"],
    ["::1", "IPv6 loopback"],
    ["::ffff:127.0.0.1", "IPv4-mapped loopback"],
    ["::ffff:7f00:1", "IPv4-mapped loopback, hex form"],
    ["::ffff:169.254.169.254", "IPv4-mapped metadata"],
    ["::ffff:10.0.0.1", "IPv4-mapped private"],
    ["::127.0.0.1", "IPv4-compatible (deprecated) loopback"],
    ["::ffff:0:7f00:1", "IPv4-translated loopback"],
    ["64:ff9b::7f00:1", "NAT64 of loopback"],
    ["2001:db8::1", "IPv6 documentation"],
    ["2002:7f00:1::", "6to4 of loopback"],
    ["2001::1", "Teredo"],
    ["fc00::1", "unique local"],
    ["fd12:3456::1", "unique local"],
    ["fe80::1", "link-local"],
    ["fec0::1", "site-local (deprecated)"],
    ["ff02::1", "multicast"],
  ])("%s (%s) is not public", (address) => {
    expect(isPublicAddress(address)).toBe(false);
  });

  it.each([
    ["93.184.216.34"],
    ["8.8.8.8"],
    ["1.1.1.1"],
    ["9.255.255.255"],
    ["11.0.0.1"],
    ["100.63.255.255"],
    ["100.128.0.1"],
    ["126.255.255.255"],
    ["128.0.0.1"],
    ["169.253.255.255"],
    ["172.15.255.255"],
    ["172.32.0.1"],
    ["192.167.255.255"],
    ["192.169.0.1"],
    ["223.255.255.255"],
    ["2606:4700:4700::1111"],
    ["2001:4860:4860::8888"],
    ["::ffff:93.184.216.34"],
  ])("%s is public", (address) => {
    expect(isPublicAddress(address)).toBe(true);
  });

  it("a host name or garbage is not an address, so not public", () => {
    expect(isPublicAddress("example.com")).toBe(false);
    expect(isPublicAddress("")).toBe(false);
    expect(isPublicAddress("999.1.1.1")).toBe(false);
  });
});

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof KapselError ? err.code : "not a KapselError";
  }
  return undefined;
}

describe("assertAddressAllowed", () => {
  it("rejects a private address with E2001 unless the policy allows it", () => {
    expect(codeOf(() => assertAddressAllowed(STRICT, "10.0.0.1", "10.0.0.1"))).toBe("E2001");
    expect(codeOf(() => assertAddressAllowed({ allowPrivate: true, allowList: [] }, "10.0.0.1", "10.0.0.1"))).toBeUndefined();
    expect(codeOf(() => assertAddressAllowed(STRICT, "example.com", "93.184.216.34"))).toBeUndefined();
  });

  it("an allow-listed CIDR covers exactly its range", () => {
    const policy = { allowPrivate: false, allowList: ["10.1.0.0/16", "fd00::/8"] };
    expect(codeOf(() => assertAddressAllowed(policy, "a", "10.1.2.3"))).toBeUndefined();
    expect(codeOf(() => assertAddressAllowed(policy, "a", "10.2.0.1"))).toBe("E2001");
    expect(codeOf(() => assertAddressAllowed(policy, "a", "fd12::1"))).toBeUndefined();
    expect(codeOf(() => assertAddressAllowed(policy, "a", "fe80::1"))).toBe("E2001");
  });

  it("an allow-listed host name or exact address covers that host only", () => {
    const policy = { allowPrivate: false, allowList: ["hooks.internal", "192.168.7.7"] };
    expect(codeOf(() => assertAddressAllowed(policy, "HOOKS.internal", "10.9.9.9"))).toBeUndefined();
    expect(codeOf(() => assertAddressAllowed(policy, "other.internal", "10.9.9.9"))).toBe("E2001");
    expect(codeOf(() => assertAddressAllowed(policy, "x", "192.168.7.7"))).toBeUndefined();
    expect(codeOf(() => assertAddressAllowed(policy, "x", "192.168.7.8"))).toBe("E2001");
  });
});

describe("validateDestination", () => {
  const check = async (url: string, allowHttp = false, policy = STRICT) => {
    try {
      return await validateDestination(url, { allowHttp, policy });
    } catch (err) {
      return err instanceof KapselError ? err.code : err;
    }
  };

  it("accepts https to a public address and returns the normalised URL", async () => {
    expect(await check("HTTPS://93.184.216.34:8443/a/../hook?x=1")).toBe("https://93.184.216.34:8443/hook?x=1");
  });

  it("refuses other schemes, credentials in the URL and unparsable URLs", async () => {
    expect(await check("http://93.184.216.34/")).toBe("E2001");
    expect(await check("http://93.184.216.34/", true)).toBe("http://93.184.216.34/");
    expect(await check("ftp://93.184.216.34/", true)).toBe("E2001");
    expect(await check("https://user:pw@93.184.216.34/")).toBe("E2001");
    expect(await check("not a url")).toBe("E2001");
  });

  it("sees through the numeric spellings of loopback that URL parsing normalises", async () => {
    for (const url of ["https://2130706433/", "https://0x7f.1/", "https://0177.0.0.1/", "https://127.1/"]) {
      expect([url, await check(url)]).toEqual([url, "E2001"]);
    }
  });

  it("resolves host names and refuses one that resolves to loopback", async () => {
    expect(await check("https://localhost/")).toBe("E2001");
    expect(await check("https://localhost/", false, { allowPrivate: false, allowList: ["localhost"] })).toBe("https://localhost/");
  });

  it("refuses a host name that does not resolve", async () => {
    expect(await check("https://no-such-host.invalid/")).toBe("E2001");
  });
});
