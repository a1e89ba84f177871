/**
 * HTTP/1.x response heads as an origin sends them through a tunnel stream, and the framing of
 * the body that follows (RFC 9112 §6.3). Pure: a byte prefix in, a typed head out.
 */
import { ProtocolError } from '../../core/errors';

export const MAX_RESPONSE_HEAD_BYTES = 64 * 1024;

export interface HttpResponseHead {
  /** "HTTP/1.1", "HTTP/1.0". */
  version: string;
  status: number;
  reason: string;
  /** Header fields in order, names as sent, values trimmed. */
  headers: Array<[string, string]>;
  /** Offset just past the empty line that ends the head. */
  headEnd: number;
}

/** How a message body is delimited. */
export type BodyFraming = { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'close' };

function bad(message: string): never {
  throw new ProtocolError('bad_header', message);
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const STATUS_LINE = /^(HTTP\/\d\.\d) (\d{3})(?: (.*))?$/;
const BAD_VALUE_CHAR = /[\x00-\x08\x0a-\x1f\x7f]/;

/** Offset just past the empty line ending a head that starts at `from`, or -1. Bare LFs are accepted. */
export function findHeadEnd(buf: Buffer, from = 0, scanFrom = from): number {
  let i = Math.max(from, scanFrom - 3);
  for (;;) {
    const nl = buf.indexOf(0x0a, i);
    if (nl < 0) return -1;
    // An empty line: LF right after the previous LF, or CR LF after it.
    if (nl > from && (buf[nl - 1] === 0x0a || (buf[nl - 1] === 0x0d && nl - 1 > from && buf[nl - 2] === 0x0a))) return nl + 1;
    i = nl + 1;
  }
}

/**
 * Parses a response head at `buf[0..]`. Returns undefined until the head is complete; throws
 * ProtocolError('too_large') beyond MAX_RESPONSE_HEAD_BYTES and ('bad_header') when malformed.
 */
export function parseHttpResponseHead(buf: Buffer): HttpResponseHead | undefined {
  const end = findHeadEnd(buf);
  if (end < 0) {
    if (buf.length > MAX_RESPONSE_HEAD_BYTES) throw new ProtocolError('too_large', `HTTP response head exceeds ${MAX_RESPONSE_HEAD_BYTES} bytes`);
    return undefined;
  }
  if (end > MAX_RESPONSE_HEAD_BYTES) throw new ProtocolError('too_large', `HTTP response head exceeds ${MAX_RESPONSE_HEAD_BYTES} bytes`);
  const lines = buf.toString('latin1', 0, end).split('\n');
  const strip = (l: string): string => (l.endsWith('\r') ? l.slice(0, -1) : l);
  const m = STATUS_LINE.exec(strip(lines[0]!));
  if (!m) bad(`malformed HTTP status line "${strip(lines[0]!).slice(0, 80)}"`);
  const headers: Array<[string, string]> = [];
  for (let i = 1; i < lines.length; i++) {
    const line = strip(lines[i]!);
    if (line === '') break;
    const colon = line.indexOf(':');
    if (colon <= 0) bad('malformed HTTP header line in response');
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) bad('malformed HTTP header name in response');
    const value = line.slice(colon + 1).trim();
    if (BAD_VALUE_CHAR.test(value)) bad('control character in HTTP response header');
    headers.push([name, value]);
  }
  return { version: m[1]!, status: Number(m[2]), reason: m[3] ?? '', headers, headEnd: end };
}

/** Comma-separated tokens of every `name` header, lower-cased. */
export function headerTokens(headers: ReadonlyArray<readonly [string, string]>, name: string): string[] {
  const out: string[] = [];
  for (const [k, v] of headers) {
    if (k.length !== name.length || k.toLowerCase() !== name) continue;
    for (const t of v.split(',')) {
      const s = t.trim().toLowerCase();
      if (s) out.push(s);
    }
  }
  return out;
}

/**
 * The body framing of a message (RFC 9112 §6.3): Transfer-Encoding ending in chunked, else a
 * valid Content-Length, else (responses) read until close, (requests) no body. Throws
 * ProtocolError('bad_header') on conflicting or malformed framing headers.
 */
export function bodyFraming(headers: ReadonlyArray<readonly [string, string]>, isRequest: boolean): BodyFraming {
  const te = headerTokens(headers, 'transfer-encoding');
  let length: string | undefined;
  for (const [k, v] of headers) {
    if (k.length !== 14 || k.toLowerCase() !== 'content-length') continue;
    for (const part of v.split(',')) {
      const p = part.trim();
      if (!/^\d{1,15}$/.test(p)) bad(`malformed Content-Length "${v.slice(0, 40)}"`);
      if (length !== undefined && length !== p) bad('conflicting Content-Length headers');
      length = p;
    }
  }
  if (te.length > 0) {
    if (isRequest && length !== undefined) bad('both Transfer-Encoding and Content-Length');
    if (te[te.length - 1] === 'chunked') return { kind: 'chunked' };
    if (isRequest) bad(`unsupported Transfer-Encoding "${te.join(', ')}"`);
    return { kind: 'close' };
  }
  if (length !== undefined) {
    const n = Number(length);
    return n === 0 ? { kind: 'none' } : { kind: 'length', length: n };
  }
  return isRequest ? { kind: 'none' } : { kind: 'close' };
}
