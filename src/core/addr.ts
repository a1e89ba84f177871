/**
 * host:port helpers shared by the CLI, the codecs and the transports. Pure; no sockets.
 * Go-style rendering: IPv6 hosts in brackets, empty host allowed (":8443").
 */
import { isIP } from 'node:net';

export interface HostPort {
  host: string;
  port: number;
}

/**
 * Splits "host:port", "[v6]:port", ":port", "host" (port 0). A bare IPv6 literal without
 * brackets is taken as a host with port 0. Throws on a port outside 0..65535 or not numeric.
 */
export function splitHostPort(addr: string): HostPort {
  if (addr.startsWith('[')) {
    const end = addr.indexOf(']');
    if (end < 0) throw new Error(`missing ']' in address "${addr}"`);
    const host = addr.slice(1, end);
    const rest = addr.slice(end + 1);
    if (rest === '') return { host, port: 0 };
    if (!rest.startsWith(':')) throw new Error(`unexpected "${rest}" after ']' in address "${addr}"`);
    return { host, port: parsePort(rest.slice(1), addr) };
  }
  const first = addr.indexOf(':');
  const last = addr.lastIndexOf(':');
  if (first < 0) return { host: addr, port: 0 };
  if (first !== last) {
    // Several colons and no brackets: a bare IPv6 address.
    return { host: addr, port: 0 };
  }
  return { host: addr.slice(0, last), port: parsePort(addr.slice(last + 1), addr) };
}

function parsePort(s: string, addr: string): number {
  if (s === '') return 0;
  if (!/^\d{1,5}$/.test(s)) throw new Error(`bad port "${s}" in address "${addr}"`);
  const n = Number(s);
  if (n > 65535) throw new Error(`port ${n} out of range in address "${addr}"`);
  return n;
}

/** Joins host and port as Go's net.JoinHostPort does (brackets for IPv6). */
export function joinHostPort(host: string, port: number): string {
  // join() builds one flat string; a template would keep its pieces (a tree of V8 cons
  // strings, about three times the size), and every connection keeps its addresses.
  return [host.includes(':') ? `[${host}]` : host, port].join(':');
}

/** Host part of "host:port" (port dropped); a string that does not split is returned as is. */
export function stripPort(hostport: string): string {
  try {
    return splitHostPort(hostport).host;
  } catch {
    return hostport;
  }
}

/** True for "", "0.0.0.0", "::" and anything that is not a usable host name. */
export function isUnspecifiedHost(host: string): boolean {
  return host === '' || host === '0.0.0.0' || host === '::' || host === '[::]';
}

export function isIpLiteral(host: string): boolean {
  return isIP(host) !== 0;
}

/** Host to listen on for a Go-style address: "" means all interfaces. */
export function listenHost(host: string): string | undefined {
  return host === '' ? undefined : host;
}
