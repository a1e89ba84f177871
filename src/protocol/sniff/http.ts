/**
 * HTTP/1.x request sniffing for the entry point (spec/behavior.md §4.3) and the client's
 * `sniffing=true` path (§5.2). Pure: looks at a byte prefix, never at a socket.
 *
 * ```
 * request-line  = method SP request-target SP HTTP/d.d CRLF
 * header-field  = token ":" OWS value OWS CRLF          (bare LF accepted, as Go does)
 * head end      = empty line
 * ```
 *
 * The parser is stricter than RFC 9112 allows a server to be, in the places where leniency
 * breeds request smuggling: no obsolete line folding, no whitespace before the colon, no
 * control characters, at most one Host header.
 */
import { ProtocolError } from '../../core/errors';

export const DEFAULT_MAX_HEAD_BYTES = 64 * 1024;

/**
 * The method prefixes gost's sniffer recognises (it peeks 5 bytes: "DELET", "OPTIO", …),
 * plus the HTTP/2 preface "PRI *" listed in behavior.md §5.2.
 */
const METHOD_PREFIXES = ['GET', 'POST', 'PUT', 'DELET', 'OPTIO', 'PATCH', 'HEAD', 'CONNE', 'TRACE', 'PRI *'].map((m) =>
  Buffer.from(m, 'latin1'),
);

/**
 * Whether `buf` starts like an HTTP/1.x request: true / false, or undefined while `buf` is
 * too short to tell (it is a prefix of some method prefix).
 */
export function isHttpRequestStart(buf: Uint8Array): boolean | undefined {
  let undecided = false;
  for (const p of METHOD_PREFIXES) {
    const n = Math.min(p.length, buf.length);
    let same = true;
    for (let i = 0; i < n; i++) {
      if (buf[i] !== p[i]) {
        same = false;
        break;
      }
    }
    if (!same) continue;
    if (buf.length >= p.length) return true;
    undecided = true;
  }
  return undecided ? undefined : false;
}

export interface HttpHeadIncomplete {
  complete: false;
}

export interface HttpRequestHead {
  complete: true;
  method: string;
  /** The request-target as sent ("/", "http://a/b", "host:443" for CONNECT). */
  path: string;
  /** "HTTP/1.1", "HTTP/1.0", … */
  version: string;
  /** Header fields in order, names as sent, values trimmed (latin1 decoded). */
  headers: Array<[string, string]>;
  /**
   * Where the request goes, as Go's `Request.Host`: the authority of an absolute-form target
   * or of a CONNECT target, else the Host header; undefined when there is none or it is empty.
   */
  host: string | undefined;
  /** Host name from `host` (brackets removed for IPv6). */
  hostname: string | undefined;
  /** Port from `host`, undefined when absent (callers default it: 80). */
  port: number | undefined;
  /** Offset just past the empty line that ends the head; the body (if any) starts here. */
  headEnd: number;
}

export interface HttpHeadOptions {
  /** Largest head accepted, request line to empty line included (default 64 KiB). */
  maxHeadBytes?: number;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const VERSION = /^HTTP\/\d\.\d$/;
// Control characters other than HT, and DEL, are not allowed in field values.
const BAD_VALUE_CHAR = /[\x00-\x08\x0a-\x1f\x7f]/;
const BAD_TARGET_CHAR = /[\x00-\x20\x7f]/;
// Go's httpguts.ValidHostHeader alphabet (RFC 3986 authority characters).
const HOST_CHARS = /^[A-Za-z0-9!$&'()*+,\-.:;=[\]_~%@]*$/;

function bad(message: string): never {
  throw new ProtocolError('bad_header', message);
}

/**
 * Parses the request head at the start of `buf`. Returns `{complete: false}` until the empty
 * line has arrived; lines already complete are validated at once, so garbage is rejected
 * early. Throws ProtocolError('too_large') when no head ends within maxHeadBytes, and
 * ProtocolError('bad_header') on a malformed request line, header line or Host.
 */
export function parseHttpRequestHead(buf: Buffer, opts: HttpHeadOptions = {}): HttpHeadIncomplete | HttpRequestHead {
  const max = opts.maxHeadBytes ?? DEFAULT_MAX_HEAD_BYTES;
  const limit = Math.min(buf.length, max);
  let pos = 0;
  let requestLine: { method: string; path: string; version: string } | undefined;
  const headers: Array<[string, string]> = [];
  for (;;) {
    const nl = buf.indexOf(0x0a, pos);
    if (nl < 0 || nl >= limit) {
      if (buf.length >= max) throw new ProtocolError('too_large', `HTTP request head exceeds ${max} bytes`);
      return { complete: false };
    }
    const end = nl > pos && buf[nl - 1] === 0x0d ? nl - 1 : nl;
    const line = buf.toString('latin1', pos, end);
    pos = nl + 1;
    if (!requestLine) {
      requestLine = parseRequestLine(line);
      continue;
    }
    if (line === '') break;
    headers.push(parseHeaderLine(line));
  }
  const { host, hostname, port } = hostOf(requestLine, headers);
  return { complete: true, ...requestLine, headers, host, hostname, port, headEnd: pos };
}

function parseRequestLine(line: string): { method: string; path: string; version: string } {
  const parts = line.split(' ');
  if (parts.length !== 3) bad(`malformed HTTP request line "${clip(line)}"`);
  const [method, path, version] = parts as [string, string, string];
  if (!TOKEN.test(method)) bad(`malformed HTTP method "${clip(method)}"`);
  if (path === '' || BAD_TARGET_CHAR.test(path)) bad(`malformed HTTP request target "${clip(path)}"`);
  if (!VERSION.test(version)) bad(`malformed HTTP version "${clip(version)}"`);
  return { method, path, version };
}

function parseHeaderLine(line: string): [string, string] {
  if (line[0] === ' ' || line[0] === '\t') bad('obsolete header line folding is not accepted');
  const colon = line.indexOf(':');
  if (colon <= 0) bad(`malformed HTTP header line "${clip(line)}"`);
  const name = line.slice(0, colon);
  if (!TOKEN.test(name)) bad(`malformed HTTP header name "${clip(name)}"`);
  const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
  if (BAD_VALUE_CHAR.test(value)) bad(`control character in HTTP header "${clip(name)}"`);
  return [name, value];
}

function clip(s: string): string {
  const t = s.length > 80 ? `${s.slice(0, 80)}…` : s;
  return JSON.stringify(t).slice(1, -1);
}

/** First value of header `name` (case-insensitive), or undefined. */
export function getHeader(headers: ReadonlyArray<readonly [string, string]>, name: string): string | undefined {
  const lower = name.toLowerCase();
  for (const [k, v] of headers) if (k.toLowerCase() === lower) return v;
  return undefined;
}

function hostOf(
  rl: { method: string; path: string },
  headers: ReadonlyArray<readonly [string, string]>,
): { host: string | undefined; hostname: string | undefined; port: number | undefined } {
  let hostHeader: string | undefined;
  for (const [k, v] of headers) {
    if (k.toLowerCase() !== 'host') continue;
    if (hostHeader !== undefined) bad('more than one Host header');
    hostHeader = v;
  }
  let host = hostHeader;
  const abs = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/.exec(rl.path);
  if (abs) {
    const authority = abs[1]!;
    host = authority.slice(authority.lastIndexOf('@') + 1);
  } else if (rl.method === 'CONNECT' && !rl.path.startsWith('/')) {
    host = rl.path;
  }
  if (host === undefined || host === '') return { host: undefined, hostname: undefined, port: undefined };
  if (!HOST_CHARS.test(host)) bad(`malformed Host "${clip(host)}"`);
  return { host, ...splitHttpHost(host) };
}

/**
 * Splits a Host value: "example.com", "example.com:8080", "[::1]", "[::1]:8443". An empty
 * port reads as absent. Throws ProtocolError('bad_header') on unbalanced brackets, a bare
 * IPv6 address, or a port that is not 0..65535.
 */
export function splitHttpHost(host: string): { hostname: string; port: number | undefined } {
  let hostname: string;
  let portText: string | undefined;
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    if (end < 0) bad(`missing ']' in Host "${clip(host)}"`);
    hostname = host.slice(1, end);
    const rest = host.slice(end + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) bad(`unexpected text after ']' in Host "${clip(host)}"`);
      portText = rest.slice(1);
    }
  } else {
    const colon = host.indexOf(':');
    if (colon >= 0 && host.indexOf(':', colon + 1) >= 0) bad(`IPv6 Host without brackets "${clip(host)}"`);
    hostname = colon >= 0 ? host.slice(0, colon) : host;
    portText = colon >= 0 ? host.slice(colon + 1) : undefined;
  }
  if (hostname.includes('[') || hostname.includes(']')) bad(`malformed Host "${clip(host)}"`);
  if (portText === undefined || portText === '') return { hostname, port: undefined };
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) bad(`bad port in Host "${clip(host)}"`);
  return { hostname, port: Number(portText) };
}
