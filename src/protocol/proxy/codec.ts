/**
 * The PROXY protocol (HAProxy's spec, versions 1 and 2): a header a load balancer writes at the
 * start of a connection, before any byte of the client, naming the client's address and the
 * address it connected to. Pure functions, no sockets.
 *
 * - v1 is one text line: `PROXY TCP4 <src> <dst> <sport> <dport>\r\n` (TCP6 alike), or
 *   `PROXY UNKNOWN[ …]\r\n`; at most 107 bytes with the CRLF. It has no UDP.
 * - v2 is binary: a 12-byte signature, version/command, family/protocol, a 16-bit length, the
 *   addresses, then TLVs (skipped here). Command LOCAL (health checks from the balancer itself)
 *   carries no client; the receiver keeps the socket's addresses.
 *
 * `parseProxyHeader` is incremental and strict: given the bytes received so far it answers
 * "need more", "not a PROXY header" (the first bytes match neither signature), "invalid" (a
 * signature followed by something the spec does not allow), or the header and its length. It
 * never looks beyond the header it decodes and never throws on any input.
 */
import { formatIP, ipBytes16, parseIPv4, parseIPv6 } from '../relay/ip';

/** Longest v1 line, CRLF included (the spec's bound). */
export const V1_MAX_BYTES = 107;
/** The v2 signature. */
export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** Fixed part of a v2 header: signature, version/command, family/protocol, length. */
export const V2_FIXED_BYTES = 16;
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');

/** What the addresses describe: TCP or UDP over IPv4/IPv6, a Unix socket, or nothing known. */
export type ProxyTransport = 'tcp4' | 'tcp6' | 'udp4' | 'udp6' | 'unix-stream' | 'unix-dgram' | 'unknown';

export interface ProxyAddress {
  /** IP text (IPv4 dotted, IPv6 as Go renders it). */
  host: string;
  port: number;
}

export interface ProxyHeader {
  version: 1 | 2;
  /** `local`: the balancer speaks for itself (v2 LOCAL); no client addresses. */
  command: 'proxy' | 'local';
  transport: ProxyTransport;
  /** The original client; absent for LOCAL, UNKNOWN, UNSPEC and Unix sockets. */
  source?: ProxyAddress;
  /** The address the client connected to; absent when `source` is. */
  destination?: ProxyAddress;
  /** Bytes the header takes at the start of the stream (TLVs included). */
  length: number;
}

export type ProxyParse =
  | { kind: 'more' }
  | { kind: 'none' }
  | { kind: 'invalid'; reason: string }
  | { kind: 'header'; header: ProxyHeader };

const MORE: ProxyParse = { kind: 'more' };
const NONE: ProxyParse = { kind: 'none' };
const invalid = (reason: string): ProxyParse => ({ kind: 'invalid', reason });

/** True while `buf` could still become `sig` (every byte so far matches). */
function prefixOf(buf: Uint8Array, sig: Uint8Array): boolean {
  const n = Math.min(buf.length, sig.length);
  for (let i = 0; i < n; i++) if (buf[i] !== sig[i]) return false;
  return true;
}

/** Decodes a PROXY header (v1 or v2) at the start of `buf`; see the module comment. */
export function parseProxyHeader(buf: Uint8Array): ProxyParse {
  if (buf.length === 0) return MORE;
  if (prefixOf(buf, V2_SIGNATURE)) return buf.length < V2_FIXED_BYTES ? MORE : parseV2(buf);
  if (prefixOf(buf, V1_PREFIX)) return buf.length < V1_PREFIX.length ? MORE : parseV1(buf);
  return NONE;
}

const PORT = /^(0|[1-9]\d{0,4})$/;

function port(s: string): number | undefined {
  if (!PORT.test(s)) return undefined;
  const n = Number(s);
  return n <= 65535 ? n : undefined;
}

function parseV1(buf: Uint8Array): ProxyParse {
  const limit = Math.min(buf.length, V1_MAX_BYTES);
  let lf = -1;
  for (let i = V1_PREFIX.length; i < limit; i++) {
    const c = buf[i]!;
    if (c === 0x0a) {
      lf = i;
      break;
    }
    // Printable US-ASCII and the CR of the terminator only.
    if (c !== 0x0d && (c < 0x20 || c > 0x7e)) return invalid('v1: a byte that is not printable text');
  }
  if (lf < 0) return buf.length >= V1_MAX_BYTES ? invalid(`v1: no CRLF within ${V1_MAX_BYTES} bytes`) : MORE;
  if (buf[lf - 1] !== 0x0d) return invalid('v1: line not ended by CRLF');
  const line = Buffer.from(buf.buffer, buf.byteOffset, lf - 1).toString('latin1');
  if (line.indexOf('\r') >= 0) return invalid('v1: CR inside the line');
  const length = lf + 1;
  const parts = line.split(' ');
  const proto = parts[1];
  if (proto === 'UNKNOWN') return { kind: 'header', header: { version: 1, command: 'proxy', transport: 'unknown', length } };
  if (proto !== 'TCP4' && proto !== 'TCP6') return invalid(`v1: unknown protocol "${(proto ?? '').slice(0, 16)}"`);
  if (parts.length !== 6) return invalid('v1: expected "PROXY TCP4|TCP6 <src> <dst> <sport> <dport>"');
  const v6 = proto === 'TCP6';
  const addr = (s: string): string | undefined => {
    const b = v6 ? parseIPv6(s) : parseIPv4(s);
    return b ? formatIP(b) : undefined;
  };
  const src = addr(parts[2]!);
  const dst = addr(parts[3]!);
  if (src === undefined || dst === undefined) return invalid(`v1: not ${v6 ? 'IPv6' : 'IPv4'} addresses`);
  const sport = port(parts[4]!);
  const dport = port(parts[5]!);
  if (sport === undefined || dport === undefined) return invalid('v1: ports must be 0..65535');
  return {
    kind: 'header',
    header: { version: 1, command: 'proxy', transport: v6 ? 'tcp6' : 'tcp4', source: { host: src, port: sport }, destination: { host: dst, port: dport }, length },
  };
}

/** Address block sizes by family (v2). */
const V2_FAMILY: Record<number, { size: number; name: 'inet' | 'inet6' | 'unix' | 'unspec' }> = {
  0x0: { size: 0, name: 'unspec' },
  0x1: { size: 12, name: 'inet' },
  0x2: { size: 36, name: 'inet6' },
  0x3: { size: 216, name: 'unix' },
};

function parseV2(buf: Uint8Array): ProxyParse {
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) return invalid(`v2: unknown version ${verCmd >> 4}`);
  const cmd = verCmd & 0x0f;
  if (cmd > 1) return invalid(`v2: unknown command ${cmd}`);
  const famProto = buf[13]!;
  const fam = V2_FAMILY[famProto >> 4];
  const proto = famProto & 0x0f;
  if (fam === undefined) return invalid(`v2: unknown address family ${famProto >> 4}`);
  if (proto > 2) return invalid(`v2: unknown transport protocol ${proto}`);
  const len = (buf[14]! << 8) | buf[15]!;
  const length = V2_FIXED_BYTES + len;
  if (len < fam.size) return invalid(`v2: length ${len} is shorter than the ${fam.name} addresses (${fam.size} bytes)`);
  if (buf.length < length) return MORE;
  if (cmd === 0) return { kind: 'header', header: { version: 2, command: 'local', transport: 'unknown', length } };
  if (fam.name === 'unspec' || proto === 0) return { kind: 'header', header: { version: 2, command: 'proxy', transport: 'unknown', length } };
  if (fam.name === 'unix') {
    return { kind: 'header', header: { version: 2, command: 'proxy', transport: proto === 1 ? 'unix-stream' : 'unix-dgram', length } };
  }
  const n = fam.name === 'inet' ? 4 : 16;
  const at = V2_FIXED_BYTES;
  const src = formatIP(buf.subarray(at, at + n));
  const dst = formatIP(buf.subarray(at + n, at + 2 * n));
  const sport = (buf[at + 2 * n]! << 8) | buf[at + 2 * n + 1]!;
  const dport = (buf[at + 2 * n + 2]! << 8) | buf[at + 2 * n + 3]!;
  const transport: ProxyTransport = proto === 1 ? (n === 4 ? 'tcp4' : 'tcp6') : n === 4 ? 'udp4' : 'udp6';
  return { kind: 'header', header: { version: 2, command: 'proxy', transport, source: { host: src, port: sport }, destination: { host: dst, port: dport }, length } };
}

/** What to encode: the family follows the addresses (both IPv4 → 4, else 6 with IPv4 mapped). */
export interface ProxyEncode {
  /** `local` (v2 only): no addresses. `unknown`: a proxied connection of no known family. */
  command?: 'proxy' | 'local';
  protocol?: 'tcp' | 'udp';
  source?: ProxyAddress;
  destination?: ProxyAddress;
}

interface Family {
  six: boolean;
  src: Buffer;
  dst: Buffer;
}

/** The family of a source/destination pair, or undefined when either is not an IP. */
function familyOf(source: ProxyAddress | undefined, destination: ProxyAddress | undefined): Family | undefined {
  if (!source || !destination) return undefined;
  const s4 = parseIPv4(source.host);
  const d4 = parseIPv4(destination.host);
  if (s4 && d4) return { six: false, src: s4, dst: d4 };
  const s16 = ipBytes16(source.host);
  const d16 = ipBytes16(destination.host);
  if (!s16 || !d16) return undefined;
  return { six: true, src: s16, dst: d16 };
}

function checkPort(p: number): void {
  if (!Number.isInteger(p) || p < 0 || p > 65535) throw new RangeError(`PROXY header: port ${p} is not 0..65535`);
}

/** The v1 line; UNKNOWN when the addresses are not IPs. Throws for UDP and LOCAL, which v1 cannot say. */
export function encodeProxyV1(h: ProxyEncode): Buffer {
  if (h.command === 'local') throw new RangeError('PROXY v1 has no LOCAL command');
  if (h.protocol === 'udp') throw new RangeError('PROXY v1 carries TCP only (use v2 for UDP)');
  const f = familyOf(h.source, h.destination);
  if (!f) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  checkPort(h.source!.port);
  checkPort(h.destination!.port);
  const line = `PROXY ${f.six ? 'TCP6' : 'TCP4'} ${formatV1(f.src, f.six)} ${formatV1(f.dst, f.six)} ${h.source!.port} ${h.destination!.port}\r\n`;
  return Buffer.from(line, 'latin1');
}

/** v1 TCP6 needs IPv6 text even for an IPv4-mapped address (formatIP would write it dotted). */
function formatV1(b: Buffer, six: boolean): string {
  const text = formatIP(b);
  return six && !text.includes(':') ? `::ffff:${text}` : text;
}

/** The v2 header (no TLVs): PROXY with INET/INET6 addresses, PROXY UNSPEC when they are not IPs, or LOCAL. */
export function encodeProxyV2(h: ProxyEncode): Buffer {
  const f = h.command === 'local' ? undefined : familyOf(h.source, h.destination);
  const addrLen = f ? (f.six ? 36 : 12) : 0;
  const out = Buffer.alloc(V2_FIXED_BYTES + addrLen);
  V2_SIGNATURE.copy(out, 0);
  out[12] = 0x20 | (h.command === 'local' ? 0 : 1);
  if (f) {
    checkPort(h.source!.port);
    checkPort(h.destination!.port);
    out[13] = ((f.six ? 2 : 1) << 4) | (h.protocol === 'udp' ? 2 : 1);
    const n = f.src.length;
    f.src.copy(out, 16);
    f.dst.copy(out, 16 + n);
    out.writeUInt16BE(h.source!.port, 16 + 2 * n);
    out.writeUInt16BE(h.destination!.port, 18 + 2 * n);
  }
  out.writeUInt16BE(addrLen, 14);
  return out;
}

/** The header of `version` (1 or 2). */
export function encodeProxyHeader(version: 1 | 2, h: ProxyEncode): Buffer {
  return version === 1 ? encodeProxyV1(h) : encodeProxyV2(h);
}
