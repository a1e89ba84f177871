/**
 * Address rules shared by the CLI builder and the config verifier: gost's "host:port" with an
 * optional port range ("host:8000-8002" → one address per port, as go-gost/x internal/net
 * AddrPortRange), bracketed IPv6, and addresses without a port (forward targets, rtcp names).
 *
 * gost silently turns a bad port ("abc", "70000") into port 0; burrow reports it instead.
 */
import { joinHostPort } from '../core/addr';

export interface SplitAddr {
  host: string;
  /** The port text exactly as written, or undefined when the address has no port. */
  port?: string;
}

/** Splits an address like Go's net.SplitHostPort but tolerates a missing port. Throws Error. */
export function splitAddr(addr: string): SplitAddr {
  if (addr.startsWith('[')) {
    const end = addr.indexOf(']');
    if (end < 0) throw new Error(`missing ']' in address "${addr}"`);
    const host = addr.slice(1, end);
    const rest = addr.slice(end + 1);
    if (rest === '') return { host };
    if (!rest.startsWith(':')) throw new Error(`unexpected "${rest}" after ']' in address "${addr}"`);
    return { host, port: rest.slice(1) };
  }
  const first = addr.indexOf(':');
  if (first < 0) return { host: addr };
  if (first !== addr.lastIndexOf(':')) {
    throw new Error(`address "${addr}" has too many colons (write IPv6 addresses in brackets, e.g. [::1]:8080)`);
  }
  return { host: addr.slice(0, first), port: addr.slice(first + 1) };
}

const MAX_PORT = 65535;

function parsePortNumber(text: string, addr: string): number {
  if (!/^\d{1,10}$/.test(text)) throw new Error(`bad port "${text}" in address "${addr}" (expected a number 0-65535)`);
  const n = Number(text);
  if (n > MAX_PORT) throw new Error(`port ${n} out of range in address "${addr}" (expected 0-65535)`);
  return n;
}

/** Parses a port or a port range "min-max". Throws Error with a readable message. */
export function parsePortRange(text: string, addr: string): { min: number; max: number } {
  if (text === '') throw new Error(`missing port after ':' in address "${addr}"`);
  const dash = text.indexOf('-');
  if (dash < 0) {
    const n = parsePortNumber(text, addr);
    return { min: n, max: n };
  }
  const min = parsePortNumber(text.slice(0, dash), addr);
  const max = parsePortNumber(text.slice(dash + 1), addr);
  if (min > max) throw new Error(`bad port range "${text}" in address "${addr}" (start is above end)`);
  return { min, max };
}

const BAD_HOST_CHARS = /[\s"<>\\^`{|}/?#@,]/;

/**
 * Expands "host:port" / "host:min-max" into one canonical address per port. An address without
 * a port is returned unchanged (when `portRequired` is false). Throws Error on anything else.
 */
export function expandAddr(addr: string, opts: { portRequired?: boolean; allowRange?: boolean } = {}): string[] {
  const { host, port } = splitAddr(addr);
  if (BAD_HOST_CHARS.test(host)) throw new Error(`bad host "${host}" in address "${addr}"`);
  if (port === undefined) {
    if (opts.portRequired) throw new Error(`address "${addr}" has no port (expected host:port, e.g. ${host || 'example.com'}:8443)`);
    if (host === '') throw new Error('empty address');
    return [addr];
  }
  const range = parsePortRange(port, addr);
  if (range.min !== range.max && opts.allowRange === false) {
    throw new Error(`port ranges are not allowed here ("${addr}")`);
  }
  const out: string[] = [];
  for (let p = range.min; p <= range.max; p++) out.push(joinHostPort(host, p));
  return out;
}
