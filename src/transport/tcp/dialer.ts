/**
 * `tcp` dialer (protocol.md §8.1): one TCP connection per dial, TCP_NODELAY, optional OS
 * keepalive (`keepalive`, `keepalive.idle`), deadline `dialTimeout` (15 s). An empty host
 * dials 127.0.0.1.
 */
import type { Conn, Dialer, DialerOptions } from '../../core/transport';
import { dialTcp, dialTimeoutMs, keepaliveOptions, localAddressOf, remoteAddressOf } from './socket';

export class TcpDialer implements Dialer {
  readonly #opts: DialerOptions;

  constructor(opts: DialerOptions) {
    this.#opts = opts;
  }

  async dial(addr: string, signal?: AbortSignal): Promise<Conn> {
    const md = this.#opts.metadata;
    const sock = await dialTcp(addr, { timeoutMs: dialTimeoutMs(md), signal, keepalive: keepaliveOptions(md) });
    return { stream: sock, local: localAddressOf(sock), remote: remoteAddressOf(sock) };
  }
}

export function createTcpDialer(opts: DialerOptions): Dialer {
  return new TcpDialer(opts);
}
