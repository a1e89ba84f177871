/**
 * `tls` dialer (protocol.md §8.3): TCP (tcp dialer rules: `dialTimeout`, keepalive) then a
 * TLS client handshake within `handshakeTimeout` (10 s). Verification follows gost: off
 * unless `secure=true`; `caFile` alone checks the chain only; no SNI for IP literals.
 */
import type { Conn, Dialer, DialerOptions } from '../../core/transport';
import { splitHostPort } from '../../core/addr';
import { BurrowError } from '../../core/errors';
import { dialTcp, dialTimeoutMs, keepaliveOptions, localAddressOf, remoteAddressOf } from '../tcp/socket';
import { loadClientTlsOptions, tlsHandshakeTimeoutMs } from './certs';
import { tlsClientHandshake } from './handshake';

export class TlsDialer implements Dialer {
  readonly #opts: DialerOptions;

  constructor(opts: DialerOptions) {
    this.#opts = opts;
  }

  async dial(addr: string, signal?: AbortSignal): Promise<Conn> {
    const { metadata: md, logger } = this.#opts;
    let host: string;
    try {
      ({ host } = splitHostPort(addr));
    } catch (err) {
      throw new BurrowError('BURROW_ERR_DIAL', `dial tls ${addr}: ${(err as Error).message}`);
    }
    const options = await loadClientTlsOptions(this.#opts.tls, md, host, logger);
    const raw = await dialTcp(addr, { timeoutMs: dialTimeoutMs(md), signal, keepalive: keepaliveOptions(md) });
    const sock = await tlsClientHandshake(raw, options, addr, tlsHandshakeTimeoutMs(md), signal);
    return { stream: sock, local: localAddressOf(raw), remote: remoteAddressOf(raw) };
  }
}

export function createTlsDialer(opts: DialerOptions): Dialer {
  return new TlsDialer(opts);
}
