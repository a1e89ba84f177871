/**
 * Request and response heads at the entry point: the checks of a request that is still
 * arriving, the client address gost reports, and the heads written out — the proxied request
 * in Go's order (what `Request.Write` sends) and the error responses of Go's `Response.Write`.
 * Pure functions, no sockets (test/unit/tunnel/entrypoint/head.test.ts).
 */
import net from 'node:net';
import { joinHostPort } from '../../../../core/addr';
import { parseHttpRequestHead, type HttpRequestHead } from '../../../../protocol/sniff/http';
import { bodyFraming, findHeadEnd, headerTokens, type BodyFraming } from '../../../../protocol/http/response';
import { HOP_BY_HOP, hostWithPort } from '../../../../io/http-relay';

/** The largest request head the entry point reads; larger ones get 431. */
export const MAX_HEADER_BYTES = 64 * 1024;

const canonicalCache = new Map<string, string>();

/** Go's textproto.CanonicalMIMEHeaderKey for ASCII names. */
export function canonicalHeaderKey(name: string): string {
  const hit = canonicalCache.get(name);
  if (hit !== undefined) return hit;
  let out = name;
  if (/^[A-Za-z0-9-]+$/.test(name)) {
    out = name
      .toLowerCase()
      .split('-')
      .map((p) => (p ? p[0]!.toUpperCase() + p.slice(1) : p))
      .join('-');
  }
  if (canonicalCache.size < 2048) canonicalCache.set(name, out);
  return out;
}

/** The client address gost reports for an HTTP request (port 0 when taken from a header). */
export function clientAddr(headers: ReadonlyArray<readonly [string, string]>, peer: string): string {
  const first = (name: string): string | undefined => {
    for (const [k, v] of headers) if (k.length === name.length && k.toLowerCase() === name) return v;
    return undefined;
  };
  const xff = first('x-forwarded-for');
  for (const c of [first('cf-connecting-ip'), xff === undefined ? undefined : xff.split(',')[0], first('x-real-ip')]) {
    const v = c?.trim();
    if (v && net.isIP(v)) return joinHostPort(v, 0);
  }
  return peer;
}

const SKIP_SORTED = new Set(['Host', 'User-Agent', 'Content-Length', 'Transfer-Encoding', 'Trailer']);

/**
 * The proxied request head in Go's Request.Write order: request line (origin form, HTTP/1.1),
 * Host, User-Agent, framing headers, the remaining headers sorted by canonical name (several
 * values of one name as several lines), then Connection.
 */
export function upstreamRequestHead(
  head: HttpRequestHead,
  extra: { sid: string; nodeId: string; keepalive: boolean },
): string {
  const byKey = new Map<string, string[]>();
  for (const [name, value] of head.headers) {
    const key = canonicalHeaderKey(name);
    const lower = key.toLowerCase();
    if (HOP_BY_HOP.has(lower) && lower !== 'transfer-encoding') continue;
    if (lower === 'gost-record') continue;
    const list = byKey.get(key);
    if (list) list.push(value);
    else byKey.set(key, [value]);
  }
  if (!byKey.has('Gost-Sid')) byKey.set('Gost-Sid', [extra.sid]);
  byKey.set('Gost-Forwarded-Node', [extra.nodeId]);
  let out = `${head.method} ${originForm(head.path)} HTTP/1.1\r\n`;
  const host = head.host ?? byKey.get('Host')?.[0];
  if (host !== undefined) out += `Host: ${host}\r\n`;
  out += `User-Agent: ${byKey.get('User-Agent')?.[0] ?? 'Go-http-client/1.1'}\r\n`;
  for (const k of ['Content-Length', 'Transfer-Encoding']) {
    const v = byKey.get(k);
    if (v) for (const x of v) out += `${k}: ${x}\r\n`;
  }
  const rest: string[] = [];
  for (const k of byKey.keys()) if (!SKIP_SORTED.has(k)) rest.push(k);
  sortStrings(rest);
  for (const k of rest) for (const x of byKey.get(k)!) out += `${k}: ${x}\r\n`;
  return `${out}Connection: ${extra.keepalive ? 'keep-alive' : 'close'}\r\n\r\n`;
}

/**
 * Sorts in place as Array.prototype.sort() does (UTF-16 code units). A head has a handful of
 * header names: an insertion sort needs no work array (sort() allocates one every call).
 */
function sortStrings(a: string[]): void {
  if (a.length > 16) {
    a.sort();
    return;
  }
  for (let i = 1; i < a.length; i++) {
    const x = a[i]!;
    let j = i - 1;
    while (j >= 0 && a[j]! > x) {
      a[j + 1] = a[j]!;
      j--;
    }
    a[j + 1] = x;
  }
}

/** "http://host/a?b" → "/a?b" (Go writes the origin form); other targets unchanged. */
function originForm(target: string): string {
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(target);
  if (!m) return target;
  const rest = target.slice(m[0].length);
  return rest === '' ? '/' : rest.startsWith('/') ? rest : `/${rest}`;
}

/** Response headers never passed on as they are (hop-by-hop and the framing we redo). */
export const RESPONSE_DROP = new Set([...HOP_BY_HOP]);

const REASONS: Record<number, string> = { 431: 'Request Header Fields Too Large', 502: 'Bad Gateway', 503: 'Service Unavailable' };

/** An empty error response as Go's Response.Write makes it (the request's version). */
export function errorResponse(status: number, version: string, close: boolean): string {
  return `${version === 'HTTP/1.0' ? 'HTTP/1.0' : 'HTTP/1.1'} ${status} ${REASONS[status] ?? ''}\r\nContent-Length: 0\r\n${
    close ? 'Connection: close\r\n' : ''
  }\r\n`;
}

/** The 431 answer to a head over MAX_HEADER_BYTES (the connection closes after it). */
export const TOO_LARGE_RESPONSE = 'HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n';

/**
 * Refuses non-HTTP before a whole head has come: the method must be a short token followed by
 * a space, and a complete request line must parse. Throws on garbage; returns true once the
 * request line was checked (false: not all of it is here yet).
 */
export function checkRequestStart(buf: Buffer): boolean {
  const n = Math.min(buf.length, 33);
  let sp = -1;
  for (let i = 0; i < n; i++) {
    const c = buf[i]!;
    if (c === 0x20) {
      sp = i;
      break;
    }
    if (c <= 0x20 || c >= 0x7f || c === 0x3a || c === 0x2f || c === 0x22 || c === 0x28 || c === 0x29 || c === 0x2c) {
      throw new Error(`malformed HTTP method`);
    }
  }
  if (sp === 0 || (sp < 0 && n === 33)) throw new Error('malformed HTTP method');
  const nl = buf.indexOf(0x0a);
  if (nl < 0) return false;
  parseHttpRequestHead(buf.subarray(0, nl + 1), { maxHeadBytes: MAX_HEADER_BYTES + 1 });
  return true;
}

/** The head of an `Upgrade` request as it came, with this node in `Gost-Forwarded-Node`. */
export function upgradeRequestHead(head: HttpRequestHead, nodeId: string): string {
  let text = `${head.method} ${head.path} ${head.version}\r\n`;
  for (const [k, v] of head.headers) if (k.toLowerCase() !== 'gost-forwarded-node') text += `${k}: ${v}\r\n`;
  return `${text}Gost-Forwarded-Node: ${nodeId}\r\n\r\n`;
}

/** What the bytes at the start of a visitor's buffer hold. */
export type HeadRead =
  /** A whole request head (the body, or the next request, starts at `head.headEnd`). */
  | { kind: 'head'; head: HttpRequestHead }
  /** Not all of it yet; `lineChecked`: its request line has been checked. */
  | { kind: 'partial'; lineChecked: boolean }
  /** A head over MAX_HEADER_BYTES: answered 431. */
  | { kind: 'too-large' };

/**
 * Reads the request head at the start of `buf` (no empty lines before it). Throws on bytes
 * that are not HTTP/1.x; the request line is checked as soon as it is complete (once:
 * `lineChecked` says it was).
 */
export function readRequestHead(buf: Buffer, lineChecked: boolean): HeadRead {
  const end = findHeadEnd(buf);
  if (end < 0) {
    if (buf.length > MAX_HEADER_BYTES) return { kind: 'too-large' };
    return { kind: 'partial', lineChecked: lineChecked || checkRequestStart(buf) };
  }
  if (end > MAX_HEADER_BYTES) return { kind: 'too-large' };
  if (hasBareLf(buf, end)) throw new Error('bare LF in the request head (CRLF line ends required)');
  const parsed = parseHttpRequestHead(buf.subarray(0, end), { maxHeadBytes: MAX_HEADER_BYTES + 1 });
  if (!parsed.complete) throw new Error('incomplete request head');
  return { kind: 'head', head: parsed };
}

/** What a request head says about how it is served. */
export interface RequestPlan {
  /** The client keeps its connection after this request (HTTP/1.1 unless `close`, HTTP/1.0 with `keep-alive`). */
  keepClient: boolean;
  body: BodyFraming;
  /** `Connection: upgrade` with an `Upgrade` header (WebSocket). */
  upgrade: boolean;
  /** "host:port" from Host (port 80 by default). */
  dst: string;
  /** `Gost-Forwarded-Node` names this node already: a forwarding loop. */
  loop: boolean;
  /** `Gost-Forwarded-Node` is set: another entry point sent it, it is not sent on to another server. */
  forwarded: boolean;
}

/** How a request head is served; throws on a body framing that cannot be trusted. */
export function planRequest(head: HttpRequestHead, nodeId: string): RequestPlan {
  // Stricter than the shared parsers, as llhttp: raw non-ASCII in the target, and framing
  // headers that parsers read differently (assertStrictFraming), are refused.
  if (/[\x80-\xff]/.test(head.path)) throw new Error('non-ASCII byte in the request target');
  assertStrictFraming(head.headers);
  const conn = headerTokens(head.headers, 'connection');
  const body = bodyFraming(head.headers, true);
  const fwd = head.headers.find(([k]) => k.toLowerCase() === 'gost-forwarded-node')?.[1];
  return {
    keepClient: head.version === 'HTTP/1.0' ? conn.includes('keep-alive') : !conn.includes('close'),
    body,
    upgrade: conn.includes('upgrade') && headerTokens(head.headers, 'upgrade').length > 0,
    dst: hostWithPort(head.host ?? '', 80),
    loop: fwd !== undefined && fwd.includes(nodeId),
    forwarded: fwd !== undefined,
  };
}

/**
 * True when a LF in `buf[0, end)` is not preceded by CR. RFC 9112 §2.2 lets a recipient take a
 * bare LF as a line end, and parsers differ on where they do; a proxy that takes what the next
 * hop may read differently invites smuggling, so the engine takes none (as llhttp).
 */
export function hasBareLf(buf: Buffer, end: number): boolean {
  for (let i = buf.indexOf(0x0a); i >= 0 && i < end; i = buf.indexOf(0x0a, i + 1)) {
    if (i === 0 || buf[i - 1] !== 0x0d) return true;
  }
  return false;
}

/**
 * The engine's framing rules on top of bodyFraming's (protocol/http/response.ts), both ways, as
 * llhttp: a Content-Length given more than once (two fields, or a list; equal values or not),
 * Content-Length with Transfer-Encoding (a smuggling or splitting attempt, RFC 9112 §6.3 item
 * 3, where bodyFraming lets a response's Transfer-Encoding win), and chunked twice or not last
 * are refused.
 */
export function assertStrictFraming(headers: ReadonlyArray<readonly [string, string]>): void {
  let lengths = 0;
  for (const [k, v] of headers) {
    if (k.length === 14 && k.toLowerCase() === 'content-length') lengths += v.split(',').length;
  }
  if (lengths > 1) throw new Error('repeated Content-Length');
  const te = headerTokens(headers, 'transfer-encoding');
  if (te.length === 0) return;
  if (lengths > 0) throw new Error('both Transfer-Encoding and Content-Length');
  const chunked = te.indexOf('chunked');
  if (chunked >= 0 && chunked !== te.length - 1) throw new Error(`unsupported Transfer-Encoding "${te.join(', ')}"`);
}
