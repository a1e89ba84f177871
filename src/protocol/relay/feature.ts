/**
 * Relay feature TLVs (spec/protocol.md §1.3).
 *
 * ```
 * +------+---------+---------+
 * | TYPE |   LEN   |  DATA   |
 * |  1   | 2 (BE)  |   LEN   |
 * +------+---------+---------+
 *
 * UserAuth (1): ULEN(1) UNAME(ULEN) PLEN(1) PASSWD(PLEN)
 * Addr     (2): ATYP(1) ADDR(4 | 16 | 1+ALEN) PORT(2, BE)     ATYP 1 IPv4, 3 domain, 4 IPv6
 * Tunnel   (3): 20-byte TunnelID / ConnectorID (§1.4; ≥ 16 accepted)
 * Network  (4): 2-byte network ID (BE)
 * ```
 *
 * Decoding is as lenient as gost's relay v0.5.0 (trailing bytes inside a feature are ignored)
 * except that unknown types are kept as opaque `unknown` features instead of failing the whole
 * message. Encoding refuses anything but types 1–4, because gost ≤ 3.2.6 rejects a request that
 * carries an unknown type.
 */
import { ProtocolError } from '../../core/errors';
import { joinHostPort } from '../../core/addr';
import {
  ATYP_DOMAIN,
  ATYP_IPV4,
  ATYP_IPV6,
  FEATURE_ADDR,
  FEATURE_HEADER_LEN,
  FEATURE_NETWORK,
  FEATURE_TUNNEL,
  FEATURE_USER_AUTH,
  MAX_AUTH_FIELD_LEN,
  MAX_DOMAIN_LEN,
  MAX_FEATURES_LEN,
} from './constants';
import { formatIP, ipBytes16, parseIPv4, parseIPv6 } from './ip';
import { decodeTunnelId, encodeTunnelId, type TunnelId } from './tunnel-id';

export interface UserAuthFeature {
  kind: 'userAuth';
  username: string;
  password: string;
}

export type AddrType = typeof ATYP_IPV4 | typeof ATYP_DOMAIN | typeof ATYP_IPV6;

/**
 * A host and port. `host` is dotted IPv4, Go-canonical IPv6 (no brackets) or a domain taken
 * verbatim (may be empty). `atyp` is what was on the wire; when encoding, an absent `atyp` is
 * derived from `host` as gost does.
 */
export interface AddrFeature {
  kind: 'addr';
  atyp?: AddrType;
  host: string;
  port: number;
}

export interface TunnelFeature {
  kind: 'tunnel';
  id: TunnelId;
}

export interface NetworkFeature {
  kind: 'network';
  network: number;
}

/** A feature type this codec does not know; kept on decode, refused on encode. */
export interface UnknownFeature {
  kind: 'unknown';
  code: number;
  data: Buffer;
}

export type Feature = UserAuthFeature | AddrFeature | TunnelFeature | NetworkFeature | UnknownFeature;

// ---------------------------------------------------------------------------------------------
// Addr

/**
 * Splits "host:port" like Go's net.SplitHostPort; undefined where Go returns an error
 * (no colon, unbalanced brackets, several colons without brackets).
 */
function goSplitHostPort(addr: string): { host: string; port: string } | undefined {
  const i = addr.lastIndexOf(':');
  if (i < 0) return undefined;
  let host: string;
  let j = 0;
  let k = 0;
  if (addr[0] === '[') {
    const end = addr.indexOf(']');
    if (end < 0) return undefined;
    if (end + 1 === addr.length) return undefined;
    if (end + 1 !== i) return undefined;
    host = addr.slice(1, end);
    j = 1;
    k = end + 1;
  } else {
    host = addr.slice(0, i);
    if (host.includes(':')) return undefined;
  }
  if (addr.indexOf('[', j) >= 0 || addr.indexOf(']', k) >= 0) return undefined;
  return { host, port: addr.slice(i + 1) };
}

/** Go's strconv.Atoi as far as a port is concerned: optional sign, decimal digits. */
function atoiPort(s: string, address: string): number {
  if (!/^[+-]?\d+$/.test(s)) return 0; // unparsable → 0, as gost
  const n = Number(s);
  if (n < 0 || n > 65535) {
    // gost truncates to uint16 (70000 → 4464); sending a port nobody asked for helps no one.
    throw new ProtocolError('bad_address', `port out of range in address "${address}"`);
  }
  return n;
}

/**
 * Parses an address string into an Addr feature the way gost's AddrFeature.ParseFrom does:
 * "host:port" (IPv6 in brackets); a string that does not split is taken whole as the host;
 * a missing or unparsable port is 0. The host is IPv4 (incl. IPv4-mapped IPv6) → ATYP 1,
 * another IP → ATYP 4, anything else → a domain, sent verbatim (no case folding, no IDNA).
 * ":0" is the empty domain with port 0. Throws ProtocolError('bad_address') on "", a port
 * outside 0..65535, or a domain longer than 255 bytes.
 */
export function addrFeature(address: string): AddrFeature {
  if (address === '') throw new ProtocolError('bad_address', 'empty address');
  const split = goSplitHostPort(address);
  const host = split ? split.host : address;
  const port = split ? atoiPort(split.port, address) : 0;
  const f: AddrFeature = { kind: 'addr', atyp: atypOf(host), host, port };
  if (f.atyp === ATYP_DOMAIN) checkDomain(host);
  return f;
}

function atypOf(host: string): AddrType {
  if (parseIPv4(host)) return ATYP_IPV4;
  const v6 = parseIPv6(host);
  if (!v6) return ATYP_DOMAIN;
  return isMapped(v6) ? ATYP_IPV4 : ATYP_IPV6;
}

function isMapped(b: Buffer): boolean {
  return b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
}

function checkDomain(host: string): number {
  const n = Buffer.byteLength(host, 'utf8');
  if (n > MAX_DOMAIN_LEN) {
    throw new ProtocolError('bad_address', `domain name of ${n} bytes exceeds ${MAX_DOMAIN_LEN}`);
  }
  return n;
}

/** Addr feature payload (ATYP ADDR PORT) for an address string; see addrFeature. */
export function encodeAddr(address: string): Buffer {
  return encodeAddrFeature(addrFeature(address));
}

/** Addr feature payload (ATYP ADDR PORT). Throws ProtocolError('bad_address'). */
export function encodeAddrFeature(f: AddrFeature): Buffer {
  if (!Number.isInteger(f.port) || f.port < 0 || f.port > 65535) {
    throw new ProtocolError('bad_address', `port ${f.port} out of range`);
  }
  const atyp = f.atyp ?? atypOf(f.host);
  let out: Buffer;
  if (atyp === ATYP_IPV4) {
    const b16 = ipBytes16(f.host);
    if (!b16 || !isMapped(b16)) throw new ProtocolError('bad_address', `"${f.host}" is not an IPv4 address`);
    out = Buffer.alloc(1 + 4 + 2);
    b16.copy(out, 1, 12, 16);
  } else if (atyp === ATYP_IPV6) {
    const b16 = ipBytes16(f.host);
    if (!b16) throw new ProtocolError('bad_address', `"${f.host}" is not an IP address`);
    out = Buffer.alloc(1 + 16 + 2);
    b16.copy(out, 1);
  } else if (atyp === ATYP_DOMAIN) {
    const n = checkDomain(f.host);
    out = Buffer.alloc(1 + 1 + n + 2);
    out[1] = n;
    out.write(f.host, 2, 'utf8');
  } else {
    throw new ProtocolError('bad_address', `bad address type ${String(atyp)}`);
  }
  out[0] = atyp;
  out.writeUInt16BE(f.port, out.length - 2);
  return out;
}

/**
 * Decodes an Addr payload. IPv4 is rendered dotted, IPv6 in Go's canonical form (IPv4-mapped
 * as dotted), domains verbatim (UTF-8). Trailing bytes are ignored, as gost does.
 * Throws ProtocolError('bad_address') on a short payload or an unknown ATYP.
 */
export function decodeAddrFeature(b: Uint8Array): AddrFeature {
  if (b.length < 4) throw new ProtocolError('bad_address', `addr feature of ${b.length} bytes is too short`);
  const atyp = b[0]!;
  let host: string;
  let pos: number;
  if (atyp === ATYP_IPV4) {
    if (b.length < 1 + 4 + 2) throw new ProtocolError('bad_address', 'short IPv4 addr feature');
    host = formatIP(b.subarray(1, 5));
    pos = 5;
  } else if (atyp === ATYP_IPV6) {
    if (b.length < 1 + 16 + 2) throw new ProtocolError('bad_address', 'short IPv6 addr feature');
    host = formatIP(b.subarray(1, 17));
    pos = 17;
  } else if (atyp === ATYP_DOMAIN) {
    const alen = b[1]!;
    if (b.length < 4 + alen) throw new ProtocolError('bad_address', 'short domain addr feature');
    host = Buffer.from(b.buffer, b.byteOffset + 2, alen).toString('utf8');
    pos = 2 + alen;
  } else {
    throw new ProtocolError('bad_address', `bad address type ${atyp}`);
  }
  const port = (b[pos]! << 8) | b[pos + 1]!;
  return { kind: 'addr', atyp, host, port };
}

/** "host:port" text of an Addr feature (IPv6 in brackets), as gost renders it. */
export function formatAddr(f: AddrFeature): string {
  return joinHostPort(f.host, f.port);
}

// ---------------------------------------------------------------------------------------------
// UserAuth, Network

function encodeUserAuth(f: UserAuthFeature): Buffer {
  const u = Buffer.from(f.username, 'utf8');
  const p = Buffer.from(f.password, 'utf8');
  if (u.length > MAX_AUTH_FIELD_LEN || p.length > MAX_AUTH_FIELD_LEN) {
    throw new ProtocolError('bad_feature', `username and password are limited to ${MAX_AUTH_FIELD_LEN} bytes each`);
  }
  return Buffer.concat([Buffer.from([u.length]), u, Buffer.from([p.length]), p]);
}

function decodeUserAuth(b: Buffer): UserAuthFeature {
  if (b.length < 2) throw new ProtocolError('bad_feature', 'user auth feature too short');
  const ulen = b[0]!;
  if (b.length < 1 + ulen + 1) throw new ProtocolError('bad_feature', 'user auth feature: short username');
  const plen = b[1 + ulen]!;
  if (b.length < 2 + ulen + plen) throw new ProtocolError('bad_feature', 'user auth feature: short password');
  return {
    kind: 'userAuth',
    username: b.toString('utf8', 1, 1 + ulen),
    password: b.toString('utf8', 2 + ulen, 2 + ulen + plen),
  };
}

function encodeNetwork(f: NetworkFeature): Buffer {
  if (!Number.isInteger(f.network) || f.network < 0 || f.network > 0xffff) {
    throw new ProtocolError('bad_feature', `network id ${f.network} out of range`);
  }
  const out = Buffer.alloc(2);
  out.writeUInt16BE(f.network);
  return out;
}

function decodeNetwork(b: Buffer): NetworkFeature {
  if (b.length < 2) throw new ProtocolError('bad_feature', 'network feature too short');
  return { kind: 'network', network: b.readUInt16BE(0) };
}

// ---------------------------------------------------------------------------------------------
// TLV

/** Type byte of a feature this codec may emit; throws for `unknown`. */
function featureType(f: Feature): number {
  switch (f.kind) {
    case 'userAuth':
      return FEATURE_USER_AUTH;
    case 'addr':
      return FEATURE_ADDR;
    case 'tunnel':
      return FEATURE_TUNNEL;
    case 'network':
      return FEATURE_NETWORK;
    default:
      throw new ProtocolError('bad_feature', `refusing to encode feature type ${(f as UnknownFeature).code}: gost rejects unknown types`);
  }
}

/** Payload of one feature (without the TLV header). */
export function encodeFeatureData(f: Feature): Buffer {
  switch (f.kind) {
    case 'userAuth':
      return encodeUserAuth(f);
    case 'addr':
      return encodeAddrFeature(f);
    case 'tunnel':
      return encodeTunnelId(f.id);
    case 'network':
      return encodeNetwork(f);
    default:
      featureType(f);
      throw new ProtocolError('bad_feature', 'unreachable');
  }
}

/**
 * Concatenated TLVs of `features`. Throws ProtocolError('bad_feature') for an `unknown`
 * feature and ProtocolError('too_large') when the block would exceed 65535 bytes.
 */
export function encodeFeatures(features: readonly Feature[]): Buffer {
  const parts: Buffer[] = [];
  let total = 0;
  for (const f of features) {
    const type = featureType(f);
    const data = encodeFeatureData(f);
    const hdr = Buffer.alloc(FEATURE_HEADER_LEN);
    hdr[0] = type;
    hdr.writeUInt16BE(data.length, 1);
    parts.push(hdr, data);
    total += FEATURE_HEADER_LEN + data.length;
    if (total > MAX_FEATURES_LEN) {
      throw new ProtocolError('too_large', `features exceed ${MAX_FEATURES_LEN} bytes`);
    }
  }
  return Buffer.concat(parts, total);
}

/** Decodes one feature payload of the given type. */
export function decodeFeature(type: number, data: Buffer): Feature {
  switch (type) {
    case FEATURE_USER_AUTH:
      return decodeUserAuth(data);
    case FEATURE_ADDR:
      return decodeAddrFeature(data);
    case FEATURE_TUNNEL:
      return { kind: 'tunnel', id: decodeTunnelId(data) };
    case FEATURE_NETWORK:
      return decodeNetwork(data);
    default:
      return { kind: 'unknown', code: type, data: Buffer.from(data) };
  }
}

/**
 * Decodes a whole FEATURES block. A TLV running past the block, or a known feature whose own
 * payload is malformed, fails the whole block (as in gost); unknown types are kept as
 * `unknown`. Throws ProtocolError.
 */
export function decodeFeatures(block: Buffer): Feature[] {
  const out: Feature[] = [];
  let pos = 0;
  while (pos < block.length) {
    if (block.length - pos < FEATURE_HEADER_LEN) {
      throw new ProtocolError('bad_feature', `${block.length - pos} stray bytes after the last feature`);
    }
    const type = block[pos]!;
    const len = block.readUInt16BE(pos + 1);
    pos += FEATURE_HEADER_LEN;
    if (block.length - pos < len) {
      throw new ProtocolError('bad_feature', `feature type ${type} of ${len} bytes runs past the features block`);
    }
    out.push(decodeFeature(type, block.subarray(pos, pos + len)));
    pos += len;
  }
  return out;
}
