/**
 * TunnelID / ConnectorID: the 20-byte payload of the Tunnel feature (spec/protocol.md §1.4).
 *
 * ```
 *  0               16      17       19      20
 * +----------------+-------+--------+-------+
 * |  UUID (16 B)   | FLAG  |  RSV   |WEIGHT |
 * +----------------+-------+--------+-------+
 * ```
 *
 * - TunnelID (requests): FLAG 0x80 = private (only derived inside the server from a `$` rule).
 * - ConnectorID (BIND response): random UUID v4, FLAG 0x01 = UDP connector, WEIGHT copied.
 * - Equality and "is zero" look at the 16 UUID bytes only; the text form never shows flag or
 *   weight. The endpoint name (§2.2) is the first 8 bytes of MD5(lowercase 36-char text), hex.
 */
import { createHash, randomBytes } from 'node:crypto';
import { ProtocolError } from '../../core/errors';
import { FLAG_PRIVATE, TUNNEL_ID_LEN, UUID_LEN } from './constants';

export { FLAG_PRIVATE, FLAG_CONNECTOR_UDP, FLAG_CONNECTOR_HTTPS } from './constants';

/** A tunnel or connector ID. `uuid` is always 16 bytes; flag and weight are 0..255. */
export interface TunnelId {
  readonly uuid: Buffer;
  readonly flag: number;
  readonly weight: number;
}

/**
 * Builds a TunnelId from 16 UUID bytes (copied). Throws RangeError on a wrong length or a
 * flag/weight outside 0..255: these are programming errors, not peer input.
 */
export function makeTunnelId(uuid: Uint8Array, flag = 0, weight = 0): TunnelId {
  if (uuid.length !== UUID_LEN) throw new RangeError(`tunnel id: need ${UUID_LEN} UUID bytes, got ${uuid.length}`);
  checkByte('flag', flag);
  checkByte('weight', weight);
  return { uuid: Buffer.from(uuid), flag, weight };
}

function checkByte(what: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 255) throw new RangeError(`tunnel id: ${what} ${v} is not a byte`);
}

/** Same UUID with another flag and/or weight. */
export function withFlags(id: TunnelId, opts: { flag?: number; weight?: number }): TunnelId {
  return makeTunnelId(id.uuid, opts.flag ?? id.flag, opts.weight ?? id.weight);
}

/** The all-zero ID ("no tunnel"). */
export const ZERO_TUNNEL_ID: TunnelId = Object.freeze({ uuid: Buffer.alloc(UUID_LEN), flag: 0, weight: 0 });

const HEX32 = /^[0-9a-fA-F]{32}$/;
const UUID36 = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/**
 * Parses tunnel ID text as the gost server does (x/handler/tunnel/id.go): an optional leading
 * `$` marks a private tunnel (FLAG_PRIVATE), then a UUID in any form google/uuid accepts —
 * 36-char `8-4-4-4-12`, `urn:uuid:` + 36 chars, `{` 36 chars `}`, or 32 hex digits — in any
 * letter case. Weight is 0. Throws ProtocolError('bad_tunnel_id') on anything else; gost would
 * map such text to the zero ID, callers that want that can catch.
 */
export function parseTunnelId(text: string): TunnelId {
  let s = text;
  let flag = 0;
  if (s.startsWith('$')) {
    flag = FLAG_PRIVATE;
    s = s.slice(1);
  }
  let hex: string | undefined;
  if (s.length === 36 + 9 && s.slice(0, 9).toLowerCase() === 'urn:uuid:') s = s.slice(9);
  else if (s.length === 38 && s.startsWith('{') && s.endsWith('}')) s = s.slice(1, -1);
  if (s.length === 36 && UUID36.test(s)) hex = s.replace(/-/g, '');
  else if (s.length === 32 && HEX32.test(s)) hex = s;
  if (hex === undefined) throw new ProtocolError('bad_tunnel_id', `invalid tunnel id "${truncateForMessage(text)}"`);
  return { uuid: Buffer.from(hex, 'hex'), flag, weight: 0 };
}

function truncateForMessage(s: string): string {
  return s.length > 64 ? `${s.slice(0, 64)}…` : s;
}

/** Lowercase `8-4-4-4-12` text of the 16 UUID bytes (flag and weight are not part of it). */
export function tunnelIdToString(id: TunnelId): string {
  const h = id.uuid.toString('hex');
  // One flat string (see joinHostPort): connections keep their tunnel ID in their log bindings.
  return [h.slice(0, 8), h.slice(8, 12), h.slice(12, 16), h.slice(16, 20), h.slice(20, 32)].join('-');
}

/** True when all 16 UUID bytes are zero (flag and weight ignored). */
export function isZero(id: TunnelId): boolean {
  for (let i = 0; i < UUID_LEN; i++) if (id.uuid[i] !== 0) return false;
  return true;
}

/** Compares the 16 UUID bytes only (gost's TunnelID.Equal). */
export function equalsUuid(a: TunnelId, b: TunnelId): boolean {
  return a.uuid.equals(b.uuid);
}

export function isPrivate(id: TunnelId): boolean {
  return (id.flag & FLAG_PRIVATE) !== 0;
}

/** Exactly 20 bytes: uuid, flag, two zero reserved bytes, weight. */
export function encodeTunnelId(id: TunnelId): Buffer {
  const out = Buffer.alloc(TUNNEL_ID_LEN);
  id.uuid.copy(out, 0, 0, UUID_LEN);
  out[16] = id.flag & 0xff;
  out[19] = id.weight & 0xff;
  return out;
}

/**
 * Decodes a Tunnel feature payload. At least 16 bytes are required (gost ≤ 3.2.6 accepts 16;
 * relay v0.4 and older sent only 16): a missing flag/weight tail reads as zero, bytes past 20
 * are ignored, the reserved bytes are not kept. Throws ProtocolError('bad_tunnel_id').
 */
export function decodeTunnelId(data: Uint8Array): TunnelId {
  if (data.length < UUID_LEN) {
    throw new ProtocolError('bad_tunnel_id', `tunnel feature needs at least ${UUID_LEN} bytes, got ${data.length}`);
  }
  return {
    uuid: Buffer.from(data.subarray(0, UUID_LEN)),
    flag: data.length > 16 ? data[16]! : 0,
    weight: data.length > 19 ? data[19]! : 0,
  };
}

/**
 * The public endpoint name of a tunnel (§2.2): the first 16 hex chars of MD5 over the
 * lowercase 36-char ID text. `893787fd-fcd2-46a0-8dd4-f9103ae84df4` → `134c714b65d54a4f`.
 */
export function tunnelEndpoint(id: TunnelId): string {
  return createHash('md5').update(tunnelIdToString(id)).digest('hex').slice(0, 16);
}

/** 16 random bytes shaped as a UUID v4 (version and RFC 4122 variant bits set). */
export function randomUuidBytes(): Buffer {
  const b = randomBytes(UUID_LEN);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  return b;
}
