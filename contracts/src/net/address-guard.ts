/**
 * Keeps URLs that someone else chose (a job's media, a job's webhook) off the networks this host can
 * reach but the public cannot: loopback, private ranges, link-local (the clouds' metadata service at
 * 169.254.169.254), carrier-grade NAT, and the IPv6 equivalents. Fetched from a rented host or
 * called back from the orchestrator, a URL such as http://169.254.169.254/ would hand that host's
 * cloud credentials to whoever wrote it (server-side request forgery).
 *
 * The check runs where the connection is made, on the address actually connected to: after DNS
 * resolution (a name that resolves to 127.0.0.1 is refused), for every connection (each redirect
 * opens its own), and for every answer a name has (so a name cannot pass with one public answer
 * and connect to a private one). URLs with literal addresses skip DNS and are checked directly.
 */
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net, { BlockList } from 'node:net';
import type { Duplex } from 'node:stream';

/** Special-purpose ranges (IANA's IPv4 and IPv6 special-purpose registries) no job may reach. */
const REFUSED: ReadonlyArray<[string, number, 'ipv4' | 'ipv6']> = [
  ['0.0.0.0', 8, 'ipv4'], // "this network"; 0.0.0.0 reaches the host itself on Linux
  ['10.0.0.0', 8, 'ipv4'],
  ['100.64.0.0', 10, 'ipv4'], // carrier-grade NAT: the provider's own network
  ['127.0.0.0', 8, 'ipv4'],
  ['169.254.0.0', 16, 'ipv4'], // link-local: cloud metadata services
  ['172.16.0.0', 12, 'ipv4'],
  ['192.0.0.0', 24, 'ipv4'],
  ['192.168.0.0', 16, 'ipv4'],
  ['198.18.0.0', 15, 'ipv4'],
  ['224.0.0.0', 4, 'ipv4'], // multicast
  ['240.0.0.0', 4, 'ipv4'], // reserved, broadcast
  ['::', 128, 'ipv6'],
  ['::1', 128, 'ipv6'],
  ['64:ff9b::', 96, 'ipv6'], // NAT64: would reach any IPv4 address, private ones included
  ['64:ff9b:1::', 48, 'ipv6'],
  ['2002::', 16, 'ipv6'], // 6to4: embeds an IPv4 address
  ['fc00::', 7, 'ipv6'], // unique local (AWS's metadata service is fd00:ec2::254)
  ['fe80::', 10, 'ipv6'],
  ['ff00::', 8, 'ipv6'],
];

/** A URL that may not be reached, and why; not retryable. */
export class AddressRefusedError extends Error {
  readonly code = 'ADDRESS_REFUSED';
  constructor(readonly host: string, readonly address: string) {
    // Each user of the guard names its own allowlist setting where it reports the refusal.
    super(`${host} resolves to ${address}, a private, loopback or link-local address that may not be reached from here`);
    this.name = 'AddressRefusedError';
  }
}

/**
 * An allowlist setting (`MEDIA_FETCH_ALLOW`, `WEBHOOK_ALLOW`) as its entries: IP addresses or CIDR
 * ranges separated by commas, spaces around them ignored. Pass the entries to AddressPolicy, which
 * refuses a bad one.
 */
export function parseAddressList(setting: string | undefined): string[] {
  return (setting ?? '').split(',').map((entry) => entry.trim()).filter(Boolean);
}

/** What may be connected to: every public address, plus the `allow` entries (IPs or CIDRs). */
export class AddressPolicy {
  private readonly refused = new BlockList();
  private readonly allowed = new BlockList();

  /** Throws a RangeError naming an entry that is neither an IP address nor a CIDR. */
  constructor(readonly allow: readonly string[] = []) {
    for (const [address, prefix, type] of REFUSED) this.refused.addSubnet(address, prefix, type);
    for (const entry of allow) {
      const [address = '', prefix] = entry.split('/');
      const type = net.isIPv4(address) ? 'ipv4' : net.isIPv6(address) ? 'ipv6' : undefined;
      const bits = prefix === undefined ? (type === 'ipv4' ? 32 : 128) : Number(prefix);
      if (!type || !Number.isInteger(bits) || bits < 0 || bits > (type === 'ipv4' ? 32 : 128) || (prefix !== undefined && !/^\d+$/.test(prefix))) {
        throw new RangeError(`"${entry}" is not an IP address or a CIDR range (e.g. 127.0.0.1 or 10.0.0.0/8)`);
      }
      this.allowed.addSubnet(address, bits, type);
    }
  }

  /** Whether a connection to `address` (an IP) is allowed. */
  permits(address: string): boolean {
    const type = net.isIPv4(address) ? 'ipv4' : net.isIPv6(address) ? 'ipv6' : undefined;
    if (!type) return false;
    return this.allowed.check(address, type) || !this.refused.check(address, type);
  }

  /** dns.lookup, failing with AddressRefusedError when any answer is refused. */
  readonly lookup = (hostname: string, options: LookupOptions, callback: (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void): void => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, '');
      const bad = addresses.find((a) => !this.permits(a.address));
      if (bad) return callback(new AddressRefusedError(hostname, bad.address), '');
      if (options.all) return callback(null, addresses);
      const first = addresses[0]!;
      callback(null, first.address, first.family);
    });
  };

  /** Checks a literal address before connecting (net skips lookup for those); the error when refused. */
  refusal(host: string | null | undefined): AddressRefusedError | undefined {
    const bare = (host ?? '').replace(/^\[|\]$/g, '');
    return net.isIP(bare) && !this.permits(bare) ? new AddressRefusedError(bare, bare) : undefined;
  }

  private guardedAgents: { httpAgent: http.Agent; httpsAgent: https.Agent } | undefined;

  /** http and https agents whose every connection goes through this policy, made once; give them to axios. */
  agents(): { httpAgent: http.Agent; httpsAgent: https.Agent } {
    this.guardedAgents ??= { httpAgent: guard(new http.Agent(), this), httpsAgent: guard(new https.Agent(), this) };
    return this.guardedAgents;
  }
}

type Connect = (options: net.NetConnectOpts, callback: (error: Error | null, socket?: Duplex) => void) => Duplex | undefined;

/**
 * Wraps an agent's createConnection (net's for http, tls's for https): a literal address is refused
 * at once, a name is resolved through the policy's lookup.
 */
function guard<A extends http.Agent>(agent: A, policy: AddressPolicy): A {
  const connect = (agent as unknown as { createConnection: Connect }).createConnection.bind(agent);
  (agent as unknown as { createConnection: Connect }).createConnection = (options, callback) => {
    const refusal = policy.refusal((options as { host?: string }).host);
    if (refusal) {
      process.nextTick(() => callback(refusal));
      return undefined;
    }
    return connect({ ...options, lookup: policy.lookup } as net.NetConnectOpts, callback);
  };
  return agent;
}
