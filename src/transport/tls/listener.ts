/**
 * `tls` listener (protocol.md §8.3, §8.4): TLS over a tcp listener. The certificate comes from
 * certs.ts; with a `caFile`, client certificates are required (mutual TLS). The handshake
 * must finish within `handshakeTimeout` (10 s). A failed handshake is logged as one line with
 * the peer address and the socket is closed; nothing reaches `onConn` and the listener keeps
 * serving.
 */
import { listenerMismatchHint } from '../../protocol/sniff/foreign';
import type net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import type { Conn, ListenerOptions, StreamListener } from '../../core/transport';
import { isPeerGone } from '../../core/errors';
import {
  listenBacklog,
  SOCKET_HIGH_WATER_MARK_BYTES,
  keepaliveOptions,
  listenServer,
  localAddressOf,
  remoteAddressOf,
  serverAddress,
  stopServer,
  tuneSocket,
  type KeepaliveOptions,
  handOff,
} from '../tcp/socket';
import { loadServerTlsOptions, tlsHandshakeTimeoutMs } from './certs';
import { rawSocketOf } from './handshake';
import { proxiedClient, proxyAcceptOf, proxyFront } from '../proxy-accept';

/**
 * Tracks sockets of a TLS server (tls.Server or https.Server) that have not finished their
 * handshake: tunes each accepted TCP socket, logs failed handshakes once, and can drop the
 * unfinished ones when the listener closes.
 */
export class TlsHandshakeTracker {
  readonly #pending = new Set<net.Socket>();
  readonly #remote = new WeakMap<net.Socket, string>();
  readonly #logger: Logger;

  constructor(server: tls.Server, logger: Logger, keepalive: KeepaliveOptions) {
    this.#logger = logger;
    server.on('connection', (raw: net.Socket) => {
      tuneSocket(raw, keepalive);
      this.#remote.set(raw, proxiedClient(raw) ?? remoteAddressOf(raw));
      this.#pending.add(raw);
      raw.once('close', () => this.#pending.delete(raw));
    });
    server.on('tlsClientError', (err: Error & { code?: string }, sock: tls.TLSSocket) => {
      const raw = rawSocketOf(sock);
      const remote = (raw && this.#remote.get(raw)) ?? remoteAddressOf(sock);
      // A client that simply went away mid-handshake is less interesting than a bad one.
      const level = isPeerGone(err) ? 'info' : 'warn';
      const hint = listenerMismatchHint(err);
      this.#logger[level]({ remote, code: err.code, err: err.message, ...(hint ? { hint } : {}) }, 'tls handshake failed');
      sock.destroy();
      raw?.destroy();
    });
  }

  /** Marks a socket as handed out: closing the listener no longer touches it. */
  handedOut(sock: tls.TLSSocket): void {
    const raw = rawSocketOf(sock);
    if (raw) this.#pending.delete(raw);
  }

  /** Destroys every socket still in its handshake. */
  dropPending(): void {
    for (const raw of this.#pending) raw.destroy();
    this.#pending.clear();
  }
}

export class TlsListener implements StreamListener {
  readonly #opts: ListenerOptions;
  #server: net.Server | undefined;
  #tracker: TlsHandshakeTracker | undefined;
  #address = '';
  #closed = false;

  constructor(opts: ListenerOptions) {
    this.#opts = opts;
  }

  async listen(onConn: (conn: Conn) => void): Promise<void> {
    const { metadata: md, logger } = this.#opts;
    const secure = await loadServerTlsOptions(this.#opts);
    const server = tls.createServer({
      ...secure,
      handshakeTimeout: tlsHandshakeTimeoutMs(md),
      allowHalfOpen: true,
      noDelay: true,
      highWaterMark: SOCKET_HIGH_WATER_MARK_BYTES,
    } as tls.TlsOptions);
    const tracker = new TlsHandshakeTracker(server, logger, keepaliveOptions(md));
    server.on('secureConnection', (sock: tls.TLSSocket) => {
      tracker.handedOut(sock);
      if (this.#closed) {
        sock.destroy();
        return;
      }
      const raw = rawSocketOf(sock) ?? sock;
      const conn: Conn = { stream: sock, local: localAddressOf(raw), remote: proxiedClient(raw) ?? remoteAddressOf(raw) };
      handOff(onConn, conn, logger);
    });
    // With proxyProtocol a plain TCP server listens and hands each socket on after its PROXY header.
    const proxy = proxyAcceptOf(md, logger, 'tls');
    const listening = proxy ? proxyFront(server, proxy, { allowHalfOpen: true, noDelay: true, highWaterMark: SOCKET_HIGH_WATER_MARK_BYTES }) : server;
    this.#server = listening;
    this.#tracker = tracker;
    await listenServer(listening, this.#opts.addr, listenBacklog(md));
    // A failed listen is the caller's to report (once, naming the service); errors after it are logged.
    listening.on('error', (err) => logger.error(`tls listener ${this.#opts.addr}: ${err.message}`));
    this.#address = serverAddress(listening);
  }

  address(): string {
    if (!this.#address) throw new Error('tls listener: address() before listen()');
    return this.#address;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#server) stopServer(this.#server);
    this.#tracker?.dropPending();
  }
}

export function createTlsListener(opts: ListenerOptions): StreamListener {
  return new TlsListener(opts);
}
