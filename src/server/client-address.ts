// Who a request comes from and which URL it reached, with forwarded headers
// (`Forwarded`, `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host`) believed only
// when the connection comes from a configured proxy (`trustedProxies`). Anyone else could
// write them, and so pick the address the login throttle counts against or the token
// realm the registry advertises.

import { BlockList, isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';

export interface ClientAddressOptions {
  /** Addresses or CIDR ranges (`10.0.0.0/8`, `fd00::/8`) of reverse proxies whose forwarded headers are believed. */
  trustedProxies?: readonly string[];
  /** The URL clients reach the registry at (`https://registry.example.com`); wins over any header. */
  publicUrl?: string;
}

/** `::ffff:10.1.2.3` (an IPv4 client on a dual-stack socket) is 10.1.2.3. */
function plainAddress(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
}

/**
 * The unit a limit counts per client: an IPv4 address, or the /64 network of an IPv6
 * one, since one subscriber usually holds a whole /64 and could otherwise try from
 * 2^64 addresses.
 */
export function addressGroup(address: string): string {
  const plain = plainAddress(address);
  if (isIP(plain) !== 6) return plain;
  const [head, tail] = plain.split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  // An embedded IPv4 tail (::ffff:1.2.3.4 aside, handled above) holds two groups.
  const groups = tail === undefined ? left : [...left, ...Array(8 - left.length - right.length - (right.at(-1)?.includes('.') ? 1 : 0)).fill('0'), ...right];
  return `${groups.slice(0, 4).map((g) => (parseInt(g, 16) || 0).toString(16)).join(':')}::/64`;
}

/** Parses `trustedProxies`; throws on an entry that is not an address or a CIDR range. */
export function trustedProxyList(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const [address, bits, extra] = entry.split('/');
    const family = isIP(address ?? '');
    const prefix = bits === undefined ? (family === 6 ? 128 : 32) : Number(bits);
    if (family === 0 || extra !== undefined || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 6 ? 128 : 32)) {
      throw new Error(`trusted proxy ${JSON.stringify(entry)}: expected an IP address or a CIDR range such as 10.0.0.0/8`);
    }
    list.addSubnet(address!, prefix, family === 6 ? 'ipv6' : 'ipv4');
  }
  return list;
}

export class ClientAddresses {
  private readonly proxies: BlockList;
  private readonly anyProxy: boolean;
  readonly publicUrl?: string;

  constructor(options: ClientAddressOptions = {}) {
    this.proxies = trustedProxyList(options.trustedProxies ?? []);
    this.anyProxy = (options.trustedProxies ?? []).length > 0;
    this.publicUrl = options.publicUrl?.replace(/\/+$/, '');
  }

  /** Whether a peer address is one of the trusted proxies. */
  isTrustedProxy(address: string | undefined): boolean {
    if (!this.anyProxy || !address) return false;
    const plain = plainAddress(address);
    const family = isIP(plain);
    return family !== 0 && this.proxies.check(plain, family === 6 ? 'ipv6' : 'ipv4');
  }

  /** What the login throttle counts a request against: its client's address group (addressGroup). */
  groupOf(req: IncomingMessage): string {
    return addressGroup(this.of(req));
  }

  /**
   * The client's address: the peer's, or, when the peer is a trusted proxy, the last
   * address of `X-Forwarded-For` (or `Forwarded: for=`) that is not itself a trusted
   * proxy: the ones before it were written by the client and prove nothing.
   */
  of(req: IncomingMessage): string {
    const peer = plainAddress(req.socket.remoteAddress ?? 'unknown');
    if (!this.isTrustedProxy(peer)) return peer;
    const chain = forwardedFor(req);
    for (let i = chain.length - 1; i >= 0; i--) {
      const hop = plainAddress(chain[i]!);
      if (isIP(hop) === 0) return peer;
      if (!this.isTrustedProxy(hop)) return hop;
    }
    return peer;
  }

  /**
   * The registry's base URL as the client sees it (`https://host:port`): `publicUrl` when
   * configured; else the Host header and the connection's scheme, with the proxy's
   * `X-Forwarded-Proto`/`-Host` (or `Forwarded`) when the connection comes from a trusted proxy.
   */
  baseUrl(req: IncomingMessage): string {
    if (this.publicUrl) return this.publicUrl;
    const encrypted = (req.socket as { encrypted?: boolean }).encrypted === true;
    let proto = encrypted ? 'https' : 'http';
    let host = req.headers.host ?? 'localhost';
    if (this.isTrustedProxy(req.socket.remoteAddress)) {
      const forwarded = forwardedParams(req);
      const fProto = forwarded.proto ?? firstValue(req.headers['x-forwarded-proto']);
      const fHost = forwarded.host ?? firstValue(req.headers['x-forwarded-host']);
      if (fProto === 'http' || fProto === 'https') proto = fProto;
      if (fHost && HOST_RE.test(fHost)) host = fHost;
    }
    return `${proto}://${host}`;
  }
}

/** A host and optional port, nothing that could end the URL's authority early. */
const HOST_RE = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/;

function firstValue(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  return value?.split(',')[0]?.trim() || undefined;
}

/** The hops of `Forwarded: for=` (RFC 7239), else of `X-Forwarded-For`, first hop first. */
function forwardedFor(req: IncomingMessage): string[] {
  const forwarded = req.headers.forwarded;
  if (forwarded) {
    return [...forwarded.matchAll(/for="?\[?([^\]";,\s]+)/gi)].map((m) => m[1]!);
  }
  const xff = req.headers['x-forwarded-for'];
  const value = Array.isArray(xff) ? xff.join(',') : xff;
  return value ? value.split(',').map((s) => s.trim()).filter(Boolean) : [];
}

/** `proto=` and `host=` of the first element of `Forwarded`: the edge proxy's, where the client connected. */
function forwardedParams(req: IncomingMessage): { proto?: string; host?: string } {
  const forwarded = req.headers.forwarded;
  if (!forwarded) return {};
  const first = forwarded.split(',')[0] ?? '';
  const param = (name: string) => new RegExp(`(?:^|;)\\s*${name}="?([^";]+)"?`, 'i').exec(first)?.[1];
  return { proto: param('proto')?.toLowerCase(), host: param('host') };
}
