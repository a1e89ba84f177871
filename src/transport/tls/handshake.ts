/**
 * The client side of a TLS handshake over an already connected socket, with a deadline and an
 * AbortSignal. Shared by the tls and wss dialers.
 */
import type net from 'node:net';
import tls from 'node:tls';
import { BurrowError } from '../../core/errors';
import { abortReason } from '../tcp/socket';
import { tlsDialHint, withDialHint } from '../../protocol/sniff/foreign';

/**
 * Runs the TLS client handshake on `raw` and resolves with the TLSSocket once it is secure.
 * On failure both sockets are destroyed and the promise rejects with a BurrowError naming
 * `addr` (BURROW_ERR_TIMEOUT after `timeoutMs`, BURROW_ERR_DIAL otherwise), or the signal's
 * reason when aborted.
 */
export function tlsClientHandshake(
  raw: net.Socket,
  options: tls.ConnectionOptions,
  addr: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<tls.TLSSocket> {
  if (signal?.aborted) {
    raw.destroy();
    return Promise.reject(abortReason(signal));
  }
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ ...options, socket: raw });
    let timer: NodeJS.Timeout | undefined;
    const cleanup = (): void => {
      if (timer) clearTimeout(timer);
      sock.off('secureConnect', onSecure);
      sock.off('error', onError);
      signal?.removeEventListener('abort', onAbort);
    };
    const fail = (err: Error): void => {
      cleanup();
      sock.destroy();
      raw.destroy();
      reject(err);
    };
    const onSecure = (): void => {
      cleanup();
      resolve(sock);
    };
    const onError = (err: Error): void => {
      fail(new BurrowError('BURROW_ERR_DIAL', `tls handshake with ${addr}: ${withDialHint(err, tlsDialHint(err))}`, { cause: err }));
    };
    const onAbort = (): void => fail(abortReason(signal!));
    sock.once('secureConnect', onSecure);
    sock.once('error', onError);
    signal?.addEventListener('abort', onAbort, { once: true });
    if (timeoutMs > 0) {
      timer = setTimeout(
        () => fail(new BurrowError('BURROW_ERR_TIMEOUT', `tls handshake with ${addr}: timed out after ${timeoutMs}ms`)),
        timeoutMs,
      );
    }
  });
}

/** The TCP socket under a server-side TLSSocket (Node keeps it as `_parent`). */
export function rawSocketOf(sock: tls.TLSSocket): net.Socket | undefined {
  const parent = (sock as unknown as { _parent?: unknown })._parent;
  return parent && typeof parent === 'object' ? (parent as net.Socket) : undefined;
}
