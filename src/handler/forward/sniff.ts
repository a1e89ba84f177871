/**
 * Target sniffing for visitors with `sniffing=true`: HTTP requests go to `Host` (port 80 by
 * default), TLS to `SNI:443`. Bytes read are put back for the tunnel.
 */
import type { Duplex } from 'node:stream';
import { peek } from '../../io/peek';
import { BurrowError } from '../../core/errors';
import { sniffHost } from '../../protocol/sniff/host';

export async function sniffTarget(stream: Duplex, timeoutMs: number): Promise<string> {
  const { value } = await peek(stream, (buf, eof) => sniffHost(buf, eof), { timeoutMs, maxBytes: 64 * 1024 });
  if (!value) throw new BurrowError('BURROW_ERR_DIAL', 'node not available (no host sniffed from the traffic)');
  return value;
}
