/**
 * Target sniffing over a byte prefix (spec/behavior.md §5.2): an HTTP/1.x request goes to its
 * Host (port 80 when absent), a TLS ClientHello to its SNI on port 443, anything else has no
 * sniffable target. Pure; shaped for io/peek (`{done, value}`).
 *
 * ```
 * first bytes            target
 * 16 03 01..04 …          "<sni>:443"            (tls.ts)
 * GET / POST / … SP …     "<host>[:<port>|:80]"  (http.ts)
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

/**
 * Decides the target for the bytes seen so far. `{done: false}` asks for more bytes; at
 * `eof` (no more bytes will come) an undecided prefix yields `{done: true, value: undefined}`.
 * Throws ProtocolError when the bytes look like HTTP or TLS but are malformed.
 */
export function sniffHost(buf: Buffer, eof = false, opts: SniffOptions = {}): SniffDecision {
  const undecided: SniffDecision = eof ? { done: true, value: undefined } : { done: false };
  const tls = isTlsHandshakeStart(buf);
  if (tls === true) {
    const r = parseClientHelloSni(buf, opts);
    if (!r.complete) return undecided;
    return { done: true, value: r.sni === undefined ? undefined : joinHostPort(r.sni, TLS_DEFAULT_PORT) };
  }
  const http = isHttpRequestStart(buf);
  if (http === true) {
    const r = parseHttpRequestHead(buf, opts);
    if (!r.complete) return undecided;
    if (r.hostname === undefined || r.hostname === '') return { done: true, value: undefined };
    return { done: true, value: joinHostPort(r.hostname, r.port ?? HTTP_DEFAULT_PORT) };
  }
  if (tls === undefined || http === undefined) return undecided;
  return { done: true, value: undefined };
}
