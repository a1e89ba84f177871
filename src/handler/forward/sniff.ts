/**
 * Protocol sniffing for forwarding with `sniffing=true`: HTTP/1.x (then proxied per request),
 * TLS (routed by SNI, port 443) or anything else (raw forwarding). The bytes read are put back.
 */
import type { Duplex } from 'node:stream';
import { peek } from '../../io/peek';
import { sniffProtocol as classify, type SniffedProtocol } from '../../protocol/sniff/host';

export type Sniffed = SniffedProtocol;

/** Classifies the start of a stream; a stream that stays silent past `timeoutMs` is 'other'. */
export async function sniffProtocol(stream: Duplex, timeoutMs: number): Promise<Sniffed> {
  try {
    const { value } = await peek<Sniffed>(stream, (buf, eof) => classify(buf, eof), { timeoutMs, maxBytes: 64 * 1024 });
    return value;
  } catch {
    return { kind: 'other' };
  }
}
