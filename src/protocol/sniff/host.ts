/**
 * Target sniffing over a byte prefix (spec/behavior.md §5.2): an HTTP/1.x request goes to its
 * Host (port 80 when absent), a TLS ClientHello to its SNI on port 443, anything else has no
 * sniffable target. Pure; shaped for io/peek (`{done, value}`).
 *
 * ```
 * first bytes            target
 * 16 03 01..04 …          "<sni>:443"            (tls.ts)
 * GET / POST / … SP …     "<host>[:<port>|:80]"  (http.ts)
 * SSH-…                   undefined (protocol "ssh")
 * anything else           undefined
 * ```
 */
import { joinHostPort } from '../../core/addr';
import { isHttpRequestStart, parseHttpRequestHead, type HttpHeadOptions } from './http';
import { isTlsHandshakeStart, parseClientHelloSni, type ClientHelloOptions } from './tls';

export const HTTP_DEFAULT_PORT = 80;
export const TLS_DEFAULT_PORT = 443;

export type SniffDecision = { done: true; value: string | undefined } | { done: false };

export type SniffOptions = HttpHeadOptions & ClientHelloOptions;

/** What a stream starts with: HTTP/1.x, TLS (with its SNI target, when it has one), SSH, or other. */
export type SniffedProtocol = { kind: 'http' } | { kind: 'tls'; target?: string } | { kind: 'ssh' } | { kind: 'other' };

const SSH_PREFIX = Buffer.from('SSH-');

/** An SSH identification string ("SSH-2.0-…", RFC 4253 §4.2): true, false, or undefined (too short to tell). */
function isSshStart(buf: Buffer): boolean | undefined {
  const n = Math.min(buf.length, SSH_PREFIX.length);
  if (buf.subarray(0, n).compare(SSH_PREFIX, 0, n) !== 0) return false;
  return buf.length >= SSH_PREFIX.length ? true : undefined;
}

export type ProtocolDecision = { done: true; value: SniffedProtocol } | { done: false };

/**
 * Classifies the bytes seen so far. HTTP is decided on its method prefix alone (the head is
 * then the HTTP parser's to read); TLS waits for the whole ClientHello to name its SNI target.
 * At `eof` an undecided prefix is 'other' (an incomplete ClientHello: 'tls' without target).
 * Throws ProtocolError for a malformed ClientHello.
 */
export function sniffProtocol(buf: Buffer, eof = false, opts: ClientHelloOptions = {}): ProtocolDecision {
  const tls = isTlsHandshakeStart(buf);
  if (tls === true) {
    const r = parseClientHelloSni(buf, opts);
    if (r.complete) return { done: true, value: { kind: 'tls', target: r.sni === undefined ? undefined : joinHostPort(r.sni, TLS_DEFAULT_PORT) } };
    return eof ? { done: true, value: { kind: 'tls' } } : { done: false };
  }
  const http = isHttpRequestStart(buf);
  if (http === true) return { done: true, value: { kind: 'http' } };
  const ssh = isSshStart(buf);
  if (ssh === true) return { done: true, value: { kind: 'ssh' } };
  if ((tls === undefined || http === undefined || ssh === undefined) && !eof) return { done: false };
  return { done: true, value: { kind: 'other' } };
}

/**
 * Decides the target for the bytes seen so far. `{done: false}` asks for more bytes; at
 * `eof` (no more bytes will come) an undecided prefix yields `{done: true, value: undefined}`.
 * Throws ProtocolError when the bytes look like HTTP or TLS but are malformed.
 */
export function sniffHost(buf: Buffer, eof = false, opts: SniffOptions = {}): SniffDecision {
  const p = sniffProtocol(buf, eof, opts);
  if (!p.done) return p;
  if (p.value.kind === 'tls') return { done: true, value: p.value.target };
  if (p.value.kind === 'other' || p.value.kind === 'ssh') return { done: true, value: undefined };
  const r = parseHttpRequestHead(buf, opts);
  if (!r.complete) return eof ? { done: true, value: undefined } : { done: false };
  if (r.hostname === undefined || r.hostname === '') return { done: true, value: undefined };
  return { done: true, value: joinHostPort(r.hostname, r.port ?? HTTP_DEFAULT_PORT) };
}
