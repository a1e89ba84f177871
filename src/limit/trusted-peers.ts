/**
 * Trusted peers: the load balancers, CDNs and fleet servers whose word about the original client
 * is believed (`trustedProxies=10.0.0.0/8,127.0.0.1,::1`). A forwarded-for header (or a PROXY
 * header) counts only when the socket's peer is one of them; from anyone else the socket's own
 * address is the client's. The default trusts nobody.
 *
 * The original client's address is then the one every limit, lockout, log line and idle-stream
 * key uses; an address a peer merely writes into its request (the source of a relay CONNECT) is
 * passed on, never used for limits.
 */
import net from 'node:net';
import { joinHostPort, stripPort } from '../core/addr';

/** "::ffff:1.2.3.4" → "1.2.3.4"; brackets and zone dropped. */
export function plainIp(host: string): string {
  let h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const pct = h.indexOf('%');
  if (pct >= 0) h = h.slice(0, pct);
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(h);
  return m ? m[1]! : h;
}

export class TrustedPeers {
  /** Trusts nobody. */
  static readonly NONE = new TrustedPeers([]);

  readonly #list = new net.BlockList();
  readonly entries: readonly string[];

  /**
   * @param entries IPs or CIDRs (IPv4 and IPv6); throws an Error naming the bad entry.
   */
  constructor(entries: readonly string[]) {
    const kept: string[] = [];
    for (const raw of entries) {
      const e = raw.trim();
      if (e === '') continue;
      const slash = e.indexOf('/');
      const ip = plainIp(slash < 0 ? e : e.slice(0, slash));
      const family = net.isIP(ip);
      if (family === 0) throw new Error(`"${raw}" is not an IP address or CIDR (expected e.g. 10.0.0.0/8, 127.0.0.1, fd00::/8)`);
      const type = family === 4 ? 'ipv4' : 'ipv6';
      if (slash < 0) {
        this.#list.addAddress(ip, type);
      } else {
        const bitsText = e.slice(slash + 1);
        const bits = Number(bitsText);
        const max = family === 4 ? 32 : 128;
        if (!/^\d+$/.test(bitsText) || bits > max) throw new Error(`"${raw}": prefix length must be 0..${max}`);
        this.#list.addSubnet(ip, bits, type);
      }
      kept.push(e);
    }
    this.entries = kept;
  }

  /** From a metadata value: "a,b" or a YAML list. Throws an Error naming the bad entry. */
  static parse(value: unknown): TrustedPeers {
    if (value === undefined || value === null || value === '') return TrustedPeers.NONE;
    const list = Array.isArray(value) ? value.map(String) : String(value).split(',');
    return new TrustedPeers(list);
  }

  get empty(): boolean {
    return this.entries.length === 0;
  }

  /** True when `host` (an IP, bracketed or IPv4-mapped allowed) is a trusted peer. */
  trusts(host: string): boolean {
    if (this.entries.length === 0) return false;
    const ip = plainIp(host);
    const family = net.isIP(ip);
    if (family === 0) return false;
    return this.#list.check(ip, family === 4 ? 'ipv4' : 'ipv6');
  }

  /**
   * The client's address ("host:port"): `forwardedIp` (port 0, as gost) when the socket peer
   * (`peer`, "host:port") is trusted and it is an IP, else `peer`.
   */
  clientAddress(peer: string, forwardedIp: string | undefined): string {
    if (forwardedIp === undefined || !this.trusts(stripPort(peer))) return peer;
    const ip = plainIp(forwardedIp.trim());
    return net.isIP(ip) ? joinHostPort(ip, 0) : peer;
  }
}
