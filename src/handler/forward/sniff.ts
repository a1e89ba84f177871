/**
 * Protocol sniffing for forwarding with `sniffing=true`: HTTP/1.x (then proxied per request),
 * TLS (routed by SNI, port 443) or anything else (raw forwarding). The bytes read are put back.
 */
import type { Duplex } from 'node:stream';
import { peek } from '../../io/peek';
import { isHttpRequestStart } from '../../protocol/sniff/http';
import { isTlsHandshakeStart, parseClientHelloSni } from '../../protocol/sniff/tls';
import { joinHostPort } from '../../core/addr';

export type Sniffed = { kind: 'http' } | { kind: 'tls'; target?: string } | { kind: 'other' };

/** Classifies the start of a stream; a stream that stays silent past `timeoutMs` is 'other'. */
export async function sniffProtocol(stream: Duplex, timeoutMs: number): Promise<Sniffed> {
  try {
    const { value } = await peek<Sniffed>(
      stream,
      (buf, eof) => {
        const tls = isTlsHandshakeStart(buf);
        if (tls === true) {
          const r = parseClientHelloSni(buf);
          if (r.complete) return { done: true, value: { kind: 'tls', target: r.sni ? joinHostPort(r.sni, 443) : undefined } };
          return eof ? { done: true, value: { kind: 'tls' } } : { done: false };
        }
        const http = isHttpRequestStart(buf);
        if (http === true) return { done: true, value: { kind: 'http' } };
        if ((tls === undefined || http === undefined) && !eof) return { done: false };
        return { done: true, value: { kind: 'other' } };
      },
      { timeoutMs, maxBytes: 64 * 1024 },
    );
    return value;
  } catch {
    return { kind: 'other' };
  }
}
