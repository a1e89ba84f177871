/**
 * TLS ClientHello sniffing: the server name (SNI) for the entry point (spec/behavior.md §4.4)
 * and the client's `sniffing=true` path (§5.2). Pure: looks at a byte prefix.
 *
 * ```
 * record     : type(1)=0x16  version(2)=0x03xx  length(2) ≤ 16384  fragment(length)
 * handshake  : msg_type(1)=0x01  length(3)  ClientHello(length)        (may span records)
 * ClientHello: legacy_version(2) random(32) session_id<0..32> cipher_suites<2..2^16-2>
 *              compression_methods<1..2^8-1> [extensions<0..2^16-1>]
 * extension  : type(2) length(2) data     server_name = 0:
 *              list_len(2) { name_type(1)=0 host_name<1..2^16-1> }
 * ```
 *
 * gost reads exactly one record and cannot handle a ClientHello fragmented over several
 * handshake records; this parser can (large post-quantum key shares make that happen).
 */
import { ProtocolError } from '../../core/errors';

export const TLS_RECORD_HEADER_LEN = 5;
export const CONTENT_TYPE_HANDSHAKE = 0x16;
export const HANDSHAKE_CLIENT_HELLO = 0x01;
export const EXTENSION_SERVER_NAME = 0x0000;
export const EXTENSION_ALPN = 0x0010;
/** TLSPlaintext.length limit (RFC 8446 §5.1). */
export const MAX_TLS_RECORD_LEN = 16384;
export const DEFAULT_MAX_CLIENT_HELLO_BYTES = 64 * 1024;

export type ClientHelloResult =
  | { complete: false; needed: number }
  | {
      complete: true;
      /** host_name from server_name, verbatim; undefined when the extension is absent. */
      sni: string | undefined;
      /** The protocols offered by ALPN (RFC 7301), in the client's order; empty when not offered. */
      alpn: string[];
      /** Offset just past the last record holding the ClientHello. */
      recordEnd: number;
    };

export interface ClientHelloOptions {
  /** Largest ClientHello handshake message accepted (default 64 KiB). */
  maxClientHelloBytes?: number;
}

/**
 * Whether `buf` starts like a TLS handshake record (0x16, version 0x0301–0x0304, as gost's
 * sniffer checks): true / false, or undefined while fewer than 3 bytes are there and the
 * bytes so far still match.
 */
export function isTlsHandshakeStart(buf: Uint8Array): boolean | undefined {
  if (buf.length === 0) return undefined;
  if (buf[0] !== CONTENT_TYPE_HANDSHAKE) return false;
  if (buf.length === 1) return undefined;
  if (buf[1] !== 0x03) return false;
  if (buf.length === 2) return undefined;
  return buf[2]! >= 0x01 && buf[2]! <= 0x04;
}

function bad(message: string): never {
  throw new ProtocolError('bad_header', message);
}

function badLength(message: string): never {
  throw new ProtocolError('bad_length', message);
}

/**
 * Extracts the SNI from the ClientHello at the start of `buf`. Returns `{complete: false,
 * needed}` (the least number of further bytes that could change the answer) until every
 * record carrying the ClientHello is there. Throws ProtocolError on anything that is not a
 * well-formed ClientHello: 'bad_header' for wrong types or values, 'bad_length' for lengths
 * that do not add up, 'too_large' beyond the limits.
 */
export function parseClientHelloSni(buf: Buffer, opts: ClientHelloOptions = {}): ClientHelloResult {
  const max = opts.maxClientHelloBytes ?? DEFAULT_MAX_CLIENT_HELLO_BYTES;
  const fragments: Buffer[] = [];
  let collected = 0;
  let helloLen = -1;
  let pos = 0;
  for (;;) {
    const avail = buf.length - pos;
    if (avail < TLS_RECORD_HEADER_LEN) {
      checkRecordHeaderPrefix(buf.subarray(pos), pos === 0);
      return { complete: false, needed: TLS_RECORD_HEADER_LEN - avail };
    }
    checkRecordHeaderPrefix(buf.subarray(pos, pos + 3), pos === 0);
    const len = buf.readUInt16BE(pos + 3);
    if (len === 0) badLength('empty handshake record');
    if (len > MAX_TLS_RECORD_LEN) throw new ProtocolError('too_large', `TLS record of ${len} bytes exceeds ${MAX_TLS_RECORD_LEN}`);
    const body = buf.subarray(pos + TLS_RECORD_HEADER_LEN, Math.min(buf.length, pos + TLS_RECORD_HEADER_LEN + len));
    if (body.length < len) {
      // Reject a wrong handshake type or an oversized length before waiting for the rest.
      checkHelloPrefix(Buffer.concat([...fragments, body]), max);
      return { complete: false, needed: len - body.length };
    }
    fragments.push(body);
    collected += len;
    pos += TLS_RECORD_HEADER_LEN + len;
    if (helloLen < 0 && collected >= 4) helloLen = checkHelloPrefix(Buffer.concat(fragments, collected), max);
    if (helloLen >= 0 && collected >= 4 + helloLen) break;
  }
  const hs = fragments.length === 1 ? fragments[0]! : Buffer.concat(fragments, collected);
  return { complete: true, ...parseClientHelloBody(hs.subarray(4, 4 + helloLen)), recordEnd: pos };
}

function checkRecordHeaderPrefix(h: Buffer, first: boolean): void {
  if (h.length >= 1 && h[0] !== CONTENT_TYPE_HANDSHAKE) {
    bad(first ? 'not a TLS handshake record' : `record type ${h[0]} inside a fragmented ClientHello`);
  }
  if (h.length >= 2 && h[1] !== 0x03) bad('unsupported TLS record version');
}

/** Checks the handshake header bytes present so far; returns the ClientHello length or -1. */
function checkHelloPrefix(hs: Buffer, max: number): number {
  if (hs.length >= 1 && hs[0] !== HANDSHAKE_CLIENT_HELLO) bad(`handshake type ${hs[0]} is not a ClientHello`);
  if (hs.length < 4) return -1;
  const len = hs.readUIntBE(1, 3);
  if (len > max) throw new ProtocolError('too_large', `ClientHello of ${len} bytes exceeds ${max}`);
  return len;
}

/** Bounds-checked big-endian reader over one buffer; every overrun is a ProtocolError. */
class Cursor {
  #pos = 0;
  constructor(private readonly b: Buffer, private readonly what: string) {}

  get remaining(): number {
    return this.b.length - this.#pos;
  }

  #need(n: number): void {
    if (this.remaining < n) badLength(`${this.what}: need ${n} bytes, ${this.remaining} left`);
  }

  u8(): number {
    this.#need(1);
    return this.b[this.#pos++]!;
  }

  u16(): number {
    this.#need(2);
    const v = this.b.readUInt16BE(this.#pos);
    this.#pos += 2;
    return v;
  }

  bytes(n: number): Buffer {
    this.#need(n);
    const v = this.b.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return v;
  }
}

function parseClientHelloBody(body: Buffer): { sni: string | undefined; alpn: string[] } {
  const c = new Cursor(body, 'ClientHello');
  c.bytes(2 + 32); // legacy_version, random
  const sessionIdLen = c.u8();
  if (sessionIdLen > 32) badLength(`session id of ${sessionIdLen} bytes`);
  c.bytes(sessionIdLen);
  const suitesLen = c.u16();
  if (suitesLen < 2 || suitesLen % 2 !== 0) badLength(`cipher suites length ${suitesLen}`);
  c.bytes(suitesLen);
  const compLen = c.u8();
  if (compLen < 1) badLength('no compression methods');
  c.bytes(compLen);
  if (c.remaining === 0) return { sni: undefined, alpn: [] }; // no extensions at all
  const extLen = c.u16();
  if (extLen !== c.remaining) badLength(`extensions length ${extLen} does not match the ${c.remaining} bytes left`);
  const ext = new Cursor(c.bytes(extLen), 'extensions');
  const seen = new Set<number>();
  let sni: string | undefined;
  let alpn: string[] = [];
  while (ext.remaining > 0) {
    const type = ext.u16();
    const data = ext.bytes(ext.u16());
    if (seen.has(type)) bad(`duplicate TLS extension ${type}`);
    seen.add(type);
    if (type === EXTENSION_SERVER_NAME) sni = parseServerName(data);
    else if (type === EXTENSION_ALPN) alpn = parseAlpnLenient(data);
  }
  return { sni, alpn };
}

/**
 * The ALPN list, or none when the extension is malformed: the SNI routes the connection either
 * way (passthrough never looked at ALPN), and a terminating TLS server refuses a bad list itself.
 */
function parseAlpnLenient(data: Buffer): string[] {
  try {
    return parseAlpn(data);
  } catch {
    return [];
  }
}

function parseAlpn(data: Buffer): string[] {
  const c = new Cursor(data, 'application_layer_protocol_negotiation');
  const listLen = c.u16();
  if (listLen !== c.remaining) badLength('ALPN list length mismatch');
  const out: string[] = [];
  while (c.remaining > 0) {
    const n = c.u8();
    if (n === 0) badLength('empty ALPN protocol name');
    out.push(c.bytes(n).toString('latin1'));
  }
  return out;
}

function parseServerName(data: Buffer): string | undefined {
  const c = new Cursor(data, 'server_name');
  if (data.length === 0) return undefined; // empty extension (a server's echo; tolerate)
  const listLen = c.u16();
  if (listLen !== c.remaining) badLength('server_name list length mismatch');
  let name: string | undefined;
  while (c.remaining > 0) {
    const nameType = c.u8();
    const value = c.bytes(c.u16());
    if (nameType !== 0) continue;
    if (name !== undefined) bad('more than one host_name in server_name');
    if (value.length === 0) badLength('empty host_name');
    for (const b of value) if (b < 0x21 || b > 0x7e) bad('host_name is not printable ASCII');
    name = value.toString('latin1');
  }
  return name;
}
