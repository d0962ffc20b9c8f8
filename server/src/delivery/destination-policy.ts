// Where Kapsel may send requests. Checked when an endpoint is created or changed, and again at
// connect time for every delivery (so a DNS answer that changes to a private address — DNS
// rebinding — is caught where it matters). The address that passed the check is the address used.
import { lookup } from "node:dns/promises";
import net from "node:net";
import { KapselError } from "../errors.ts";

export interface DestinationPolicy {
  /** Any address is allowed (tests, on-premise installs). */
  allowPrivate: boolean;
  /** CIDRs (`10.1.0.0/16`, `::1/128`) or exact host names allowed although private. */
  allowList: string[];
}

/** Ranges that are not the public internet: loopback, private, link-local (cloud metadata), CGNAT,
 * documentation, benchmarking, multicast, reserved, and IPv6 forms that embed such addresses.
 * BlockList checks an IPv4-mapped IPv6 address (::ffff:a.b.c.d) against the IPv4 rules and an IPv4
 * address against IPv6 rules as its mapped form, so the mapped range must not be listed itself:
 * ::ffff:0:0/96 would block every IPv4 address. ::/96 covers ::, ::1 and the deprecated
 * IPv4-compatible forms. */
const NON_PUBLIC = (() => {
  const list = new net.BlockList();
  for (const [prefix, bits] of [
    ["0.0.0.0", 8], ["10.0.0.0", 8], ["100.64.0.0", 10], ["127.0.0.0", 8], ["169.254.0.0", 16],
    ["172.16.0.0", 12], ["192.0.0.0", 24], ["192.0.2.0", 24], ["192.88.99.0", 24], ["192.168.0.0", 16],
    ["198.18.0.0", 15], ["198.51.100.0", 24], ["203.0.113.0", 24], ["224.0.0.0", 4], ["240.0.0.0", 4],
  ] as const) list.addSubnet(prefix, bits, "ipv4");
  for (const [prefix, bits] of [
    ["::", 96], ["::ffff:0:0:0", 96], ["64:ff9b::", 96], ["64:ff9b:1::", 48], ["100::", 64],
    ["2001::", 23], ["2001:db8::", 32], ["2002::", 16], ["fc00::", 7], ["fe80::", 10], ["fec0::", 10], ["ff00::", 8],
  ] as const) list.addSubnet(prefix, bits, "ipv6");
  return list;
})();

export function isPublicAddress(address: string): boolean {
  const family = net.isIP(address);
  if (family === 0) return false;
  return !NON_PUBLIC.check(address, family === 4 ? "ipv4" : "ipv6");
}

function allowListed(policy: DestinationPolicy, host: string, address: string): boolean {
  const family = net.isIP(address);
  for (const entry of policy.allowList) {
    const [prefix, bits] = entry.split("/");
    if (bits !== undefined && net.isIP(prefix!) !== 0) {
      const list = new net.BlockList();
      const type = net.isIP(prefix!) === 4 ? "ipv4" : "ipv6";
      list.addSubnet(prefix!, Number(bits), type);
      if (family !== 0 && list.check(address, family === 4 ? "ipv4" : "ipv6")) return true;
    } else if (entry === address || entry.toLowerCase() === host.toLowerCase()) {
      return true;
    }
  }
  return false;
}

/** Throws E2001 when the address may not be a destination. */
export function assertAddressAllowed(policy: DestinationPolicy, host: string, address: string): void {
  if (policy.allowPrivate || isPublicAddress(address) || allowListed(policy, host, address)) return;
  throw new KapselError("E2001", `destination ${host} resolves to ${address}, which is not a public address`);
}

/** Parses and checks a destination URL; returns it normalised. Throws E2001. */
export async function validateDestination(raw: string, options: { allowHttp: boolean; policy: DestinationPolicy }): Promise<string> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new KapselError("E2001", `destination URL ${JSON.stringify(raw)} is not a valid URL`);
  }
  if (url.protocol !== "https:" && !(url.protocol === "http:" && options.allowHttp)) {
    throw new KapselError("E2001", `destination must use https${url.protocol === "http:" ? " (or set allow_http)" : ""}`);
  }
  if (url.username !== "" || url.password !== "") throw new KapselError("E2001", "destination URL must not carry credentials");
  await resolveAllowed(url.hostname, options.policy);
  return url.toString();
}

/** Resolves a host and checks every address; returns the first allowed one. Throws E2001. */
export async function resolveAllowed(hostname: string, policy: DestinationPolicy): Promise<{ address: string; family: number }> {
  const host = hostname.replace(/^\[|\]$/g, "");
  let addresses: { address: string; family: number }[];
  if (net.isIP(host) !== 0) {
    addresses = [{ address: host, family: net.isIP(host) }];
  } else {
    try {
      addresses = await lookup(host, { all: true, verbatim: true });
    } catch {
      throw new KapselError("E2001", `destination host ${host} does not resolve`);
    }
  }
  if (addresses.length === 0) throw new KapselError("E2001", `destination host ${host} does not resolve`);
  // Every answer must pass: a resolver may hand out any of them later.
  for (const a of addresses) assertAddressAllowed(policy, host, a.address);
  return addresses[0]!;
}
