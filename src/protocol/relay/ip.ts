/**
 * IP literal parsing and rendering with Go's rules, so that Addr features (spec/protocol.md
 * §1.3) are encoded from and rendered to exactly the text gost produces:
 *
 * - IPv4: four decimal fields 0..255, no leading zeros (Go ≥ 1.17 `net.ParseIP`).
 * - IPv6: RFC 4291 text with an optional trailing dotted IPv4; zones (`%eth0`) are not IPs.
 * - Rendering: IPv4 dotted; IPv6 lowercase, the first longest run of ≥ 2 zero groups
 *   compressed to `::`; IPv4-mapped `::ffff:a.b.c.d` rendered as `a.b.c.d` (Go `IP.String`).
 *
 * Pure, no sockets.
 */

/** Parses a dotted-quad IPv4 literal; undefined if `s` is not one. */
export function parseIPv4(s: string): Buffer | undefined {
  const out = Buffer.alloc(4);
  return parseIPv4Into(s, out, 0) ? out : undefined;
}

function parseIPv4Into(s: string, out: Buffer, at: number): boolean {
  let field = 0;
  let digits = 0;
  let acc = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 0x2e; // virtual '.' at the end
    if (c >= 0x30 && c <= 0x39) {
      if (digits === 1 && acc === 0) return false; // leading zero
      acc = acc * 10 + (c - 0x30);
      digits++;
      if (digits > 3 || acc > 255) return false;
    } else if (c === 0x2e) {
      if (digits === 0 || field >= 4) return false;
      out[at + field++] = acc;
      acc = 0;
      digits = 0;
    } else {
      return false;
    }
  }
  return field === 4;
}

function hexVal(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

/**
 * Parses an IPv6 literal (no brackets, no zone) into 16 bytes; undefined if `s` is not one.
 * Mirrors Go's netip parseIPv6: at most 4 hex digits per group, one `::` standing for at least
 * one zero group, a dotted IPv4 tail only in the last 32 bits.
 */
export function parseIPv6(s: string): Buffer | undefined {
  const ip = Buffer.alloc(16);
  let ellipsis = -1;
  let p = 0;
  if (s.length >= 2 && s[0] === ':' && s[1] === ':') {
    ellipsis = 0;
    p = 2;
    if (p === s.length) return ip;
  }
  let i = 0;
  while (i < 16) {
    let off = 0;
    let acc = 0;
    while (p + off < s.length) {
      const v = hexVal(s.charCodeAt(p + off));
      if (v < 0) break;
      acc = acc * 16 + v;
      off++;
      if (off > 4) return undefined;
    }
    if (off === 0) return undefined;
    if (p + off < s.length && s[p + off] === '.') {
      if (ellipsis < 0 && i !== 12) return undefined;
      if (i + 4 > 16) return undefined;
      if (!parseIPv4Into(s.slice(p), ip, i)) return undefined;
      i += 4;
      p = s.length;
      break;
    }
    ip[i] = acc >> 8;
    ip[i + 1] = acc & 0xff;
    i += 2;
    p += off;
    if (p === s.length) break;
    if (s[p] !== ':' || p + 1 === s.length) return undefined;
    p++;
    if (s[p] === ':') {
      if (ellipsis >= 0) return undefined;
      ellipsis = i;
      p++;
      if (p === s.length) break;
    }
  }
  if (p !== s.length) return undefined;
  if (i < 16) {
    if (ellipsis < 0) return undefined;
    const n = 16 - i;
    for (let j = i - 1; j >= ellipsis; j--) ip[j + n] = ip[j]!;
    ip.fill(0, ellipsis, ellipsis + n);
  } else if (ellipsis >= 0) {
    return undefined;
  }
  return ip;
}

/** The IP family of `host` as Go's net.ParseIP sees it: 4 (incl. IPv4-mapped IPv6), 6, or 0. */
export function ipFamily(host: string): 4 | 6 | 0 {
  if (parseIPv4(host)) return 4;
  const v6 = parseIPv6(host);
  if (!v6) return 0;
  return isV4Mapped(v6) ? 4 : 6;
}

/** Address bytes of an IP literal: 4 bytes for IPv4 (and IPv4-mapped), 16 for IPv6. */
export function ipBytes(host: string): Buffer | undefined {
  const v4 = parseIPv4(host);
  if (v4) return v4;
  const v6 = parseIPv6(host);
  if (!v6) return undefined;
  return isV4Mapped(v6) ? v6.subarray(12) : v6;
}

/** 16-byte form of an IP literal (IPv4 becomes `::ffff:a.b.c.d`, as Go's To16). */
export function ipBytes16(host: string): Buffer | undefined {
  const v4 = parseIPv4(host);
  if (v4) return Buffer.concat([V4_MAPPED_PREFIX, v4]);
  return parseIPv6(host);
}

const V4_MAPPED_PREFIX = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

function isV4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/** Renders 4 or 16 address bytes as Go's `net.IP.String` does. */
export function formatIP(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length !== 16) throw new RangeError(`formatIP: need 4 or 16 bytes, got ${b.length}`);
  if (isV4Mapped(b)) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  // First longest run of zero groups; a single zero group is not compressed.
  let e0 = -1;
  let e1 = -1;
  for (let i = 0; i < 16; i += 2) {
    let j = i;
    while (j < 16 && b[j] === 0 && b[j + 1] === 0) j += 2;
    if (j > i && j - i > e1 - e0) {
      e0 = i;
      e1 = j;
      i = j;
    }
  }
  if (e1 - e0 <= 2) {
    e0 = -1;
    e1 = -1;
  }
  let out = '';
  for (let i = 0; i < 16; i += 2) {
    if (i === e0) {
      out += '::';
      i = e1;
      if (i >= 16) break;
    } else if (i > 0) {
      out += ':';
    }
    out += (((b[i]! << 8) | b[i + 1]!) >>> 0).toString(16);
  }
  return out;
}
