/**
 * `tcp` listener (protocol.md §8.1): a net.Server on a Go-style address. Every accepted socket
 * gets TCP_NODELAY (Go's default) and, with `keepalive=true`, OS keepalive after
 * `keepalive.idle` (15 s). Sockets allow half-open so a FIN from the peer can be relayed as a
 * half-close; the owner of the Conn destroys it.
 */
import net from 'node:net';
import type { Conn, ListenerOptions, StreamListener } from '../../core/transport';
import {
  listenBacklog,
  SOCKET_HIGH_WATER_MARK_BYTES,
  keepaliveOptions,
  listenServer,
  AcceptedConn,
  serverAddress,
  stopServer,
  tuneSocket,
  unsupportedKeepaliveKeys,
  handOff,
  acceptWithAdaptiveReads,
  remoteAddressOf,
} from './socket';
import { proxyAcceptOf } from '../proxy-accept';

export class TcpListener implements StreamListener {
  readonly #opts: ListenerOptions;
  #server: net.Server | undefined;
  #address = '';
  #closed = false;

  constructor(opts: ListenerOptions) {
    this.#opts = opts;
  }

  async listen(onConn: (conn: Conn) => void): Promise<void> {
    const { metadata: md, logger } = this.#opts;
    const keepalive = keepaliveOptions(md);
    const proxy = proxyAcceptOf(md, logger, 'tcp');
    const server = net.createServer({
      allowHalfOpen: true,
      noDelay: true,
      highWaterMark: SOCKET_HIGH_WATER_MARK_BYTES,
    });
    const accepted = (sock: net.Socket): void => {
      tuneSocket(sock, keepalive);
      if (!proxy) {
        handOff(onConn, new AcceptedConn(sock, this.#address), logger);
        return;
      }
      void proxy.accept(sock, remoteAddressOf(sock)).then((client) => {
        if (client === undefined) return;
        if (this.#closed) sock.destroy();
        else handOff(onConn, new AcceptedConn(sock, this.#address, client), logger);
      });
    };
    // Until acceptWithAdaptiveReads takes over (and on a Node where it cannot): plain sockets.
    server.on('connection', accepted);
    this.#server = server;
    await listenServer(server, this.#opts.addr, listenBacklog(md));
    // A failed listen is the caller's to report (once, naming the service); errors after it are logged.
    server.on('error', (err) => logger.error(`tcp listener ${this.#opts.addr}: ${err.message}`));
    acceptWithAdaptiveReads(server, { allowHalfOpen: true, highWaterMark: SOCKET_HIGH_WATER_MARK_BYTES }, accepted);
    this.#address = serverAddress(server);
    if (keepalive.enabled) {
      const ignored = unsupportedKeepaliveKeys(md);
      logger.debug({ idleMs: keepalive.idleMs, ...(ignored.length ? { ignored } : {}) }, 'tcp keepalive enabled');
    }
  }

  address(): string {
    if (!this.#address) throw new Error('tcp listener: address() before listen()');
    return this.#address;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#server) stopServer(this.#server);
  }
}

export function createTcpListener(opts: ListenerOptions): StreamListener {
  return new TcpListener(opts);
}
