/**
 * A public entry point of the tunnel server (behavior.md §4): a plain TCP listener that peeks
 * at the first byte of each connection and dispatches without losing any byte:
 *
 * - `0x01`: a relay request (a visitor pointed here, or another server of a fleet handing on a
 *   visitor's request with the visitor's credentials) served exactly as on the tunnel port:
 *   connection rate, auther, the host-to-tunnel rule and privacy check, the same statuses
 *   (gost checks nothing here). `entrypoint.relay=false` turns the path off: such a
 *   connection is then taken for HTTP (and refused as such);
 * - `0x16`: TLS, routed by SNI and passed through untouched (no termination);
 * - anything else: HTTP/1.x, proxied per request by Host (http-proxy.ts).
 *
 * Unlike gost, sniffing has a deadline (`entrypoint.sniffTimeout`, default 15 s), so idle and
 * slowloris connections cannot pile up.
 */
import net from 'node:net';
import type { Logger } from 'pino';
import type { Duplex } from 'node:stream';
import { Metadata } from '../../core/metadata';
import { joinHostPort, splitHostPort } from '../../core/addr';
import { BurrowError, isPeerGone } from '../../core/errors';
import type { Conn } from '../../core/transport';
import { peek } from '../../io/peek';
import { destroy } from '../../io/pipe';
import { stopServer } from '../../transport/tcp/socket';
import { parseClientHelloSni } from '../../protocol/sniff/tls';
import { DEFAULTS } from '../../core/config';
import type { Ingress } from '../../ingress/ingress';
import type { TunnelServer } from './server';
import { HttpEntryProxy } from './http-proxy';
import { newSid } from '../../service/service';
import { connLogFields, lazyChild } from '../../observe/logger';
import { listenBacklog } from '../../transport/tcp/socket';

const kEntryPoint = Symbol('burrow.entryPoint');
const kSniff = Symbol('burrow.entrySniff');

/** What a connection waiting for its first byte needs when it comes. */
interface Sniff {
  remote: string;
  log: Logger;
  timer: NodeJS.Timeout;
}

type EntrySocket = net.Socket & { [kEntryPoint]?: EntryPoint; [kSniff]?: Sniff };

// Listeners shared by every connection (`this` is the socket).
function ignoreError(): void {}
function onEntryClose(this: EntrySocket): void {
  this[kEntryPoint]?.forget(this);
}
/** Ends the sniff: listeners and timer gone; returns what it held (once). */
function endSniff(sock: EntrySocket): Sniff | undefined {
  const sniff = sock[kSniff];
  if (!sniff) return undefined;
  sock[kSniff] = undefined;
  clearTimeout(sniff.timer);
  sock.off('data', onSniffData);
  sock.off('end', onSniffEnd);
  sock.off('close', onSniffClose);
  return sniff;
}
function onSniffData(this: EntrySocket, chunk: Buffer): void {
  if (chunk.length === 0) return;
  const sniff = endSniff(this);
  if (!sniff) return;
  this.pause();
  this[kEntryPoint]!.dispatch(this, sniff, chunk);
}
function sniffFailed(sock: EntrySocket, err: Error): void {
  const sniff = endSniff(sock);
  if (sniff) sock[kEntryPoint]!.refuse(sock, sniff, err);
}
function onSniffEnd(this: EntrySocket): void {
  sniffFailed(this, new BurrowError('BURROW_ERR_CLOSED', 'connection closed before a complete header'));
}
function onSniffClose(this: EntrySocket): void {
  sniffFailed(this, new BurrowError('BURROW_ERR_CLOSED', 'connection closed'));
}
function sniffTimeout(sock: EntrySocket): void {
  const ms = sock[kEntryPoint]?.sniffTimeoutMs ?? 0;
  sniffFailed(sock, new BurrowError('BURROW_ERR_TIMEOUT', `no complete header within ${ms} ms`));
}

/** `local` of an entry connection's log fields (a system call most connections never need). */
function socketLocal(b: Record<string, unknown>, s: net.Socket): void {
  b.local = joinHostPort(s.localAddress ?? '', s.localPort ?? 0);
}

export interface EntryPointOptions {
  addr: string;
  server: TunnelServer;
  ingress: Ingress | undefined;
  metadata: Metadata;
  logger: Logger;
}

const TLS_MAX_HELLO_BYTES = 64 * 1024;

export class EntryPoint {
  readonly #opts: EntryPointOptions;
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  readonly #http: HttpEntryProxy;
  readonly #sniffTimeoutMs: number;
  readonly #relayEnabled: boolean;
  #address = '';

  constructor(opts: EntryPointOptions) {
    this.#opts = opts;
    const md = opts.metadata;
    this.#sniffTimeoutMs = md.getDurationMs('entrypoint.sniffTimeout') || DEFAULTS.entrypointSniffTimeoutMs;
    this.#relayEnabled = md.getBool('entrypoint.relay') ?? true;
    this.#http = new HttpEntryProxy({
      server: opts.server,
      ingress: opts.ingress,
      metadata: md,
      logger: opts.logger,
      headersTimeoutMs: this.#sniffTimeoutMs,
    });
    this.#server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: false }, (s) =>
      this.#onConnection(s),
    );
  }

  address(): string {
    return this.#address;
  }

  get connections(): number {
    return this.#sockets.size;
  }

  async start(): Promise<void> {
    const { host, port } = splitHostPort(this.#opts.addr);
    await new Promise<void>((resolve, reject) => {
      const onErr = (err: Error): void => reject(new Error(`entrypoint ${this.#opts.addr}: ${err.message}`));
      this.#server.once('error', onErr);
      const backlog = listenBacklog(this.#opts.metadata, 'entrypoint.backlog', 'backlog');
      this.#server.listen({ host: host === '' ? undefined : host, port, backlog }, () => {
        this.#server.off('error', onErr);
        resolve();
      });
    });
    // A failed listen is reported once, by the caller; errors after it are logged.
    this.#server.on('error', (err) => this.#opts.logger.error(`entrypoint ${this.#opts.addr}: ${err.message}`));
    const a = this.#server.address() as net.AddressInfo;
    this.#address = joinHostPort(a.address, a.port);
    this.#opts.logger.info(`entrypoint: ${this.#address}`);
  }

  /**
   * Shutdown, first step: stops accepting at once (the port is free for the next process),
   * closes connections that sent nothing yet and idle keep-alive connections; requests in
   * flight go on, and their connections close after their response.
   */
  drain(): void {
    stopServer(this.#server);
    for (const s of this.#sockets) if ((s as EntrySocket)[kSniff]) s.destroy();
    this.#http.drain();
  }

  async close(): Promise<void> {
    // Not waiting for the server's 'close': Node emits it only once every connection is gone.
    stopServer(this.#server);
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    this.#http.close();
  }

  #onConnection(socket: net.Socket): void {
    socket.setNoDelay(true);
    this.#sockets.add(socket);
    const sock = socket as EntrySocket;
    sock[kEntryPoint] = this;
    socket.on('close', onEntryClose);
    // Errors are reported by whoever reads the socket.
    socket.on('error', ignoreError);
    const remote = joinHostPort(socket.remoteAddress ?? '', socket.remotePort ?? 0);
    const log = lazyChild(this.#opts.logger, connLogFields(newSid(), remote, socket, socketLocal));
    if (log.isLevelEnabled('debug')) {
      const local = joinHostPort(socket.localAddress ?? '', socket.localPort ?? 0);
      const started = Date.now();
      log.debug(`${remote} <> ${local}`);
      socket.once('close', () =>
        log.debug(
          { duration: Date.now() - started, inputBytes: socket.bytesRead, outputBytes: socket.bytesWritten },
          `${remote} >< ${local}`,
        ),
      );
    }
    // The first chunk decides (no promise, no copy: it is handed on, or put back for the TLS and
    // relay readers). A peer that closes before sending a byte is not a decision (the socket
    // would go to the HTTP server already ended, which never notices and keeps it open).
    const timer = setTimeout(sniffTimeout, this.#sniffTimeoutMs, sock);
    timer.unref();
    sock[kSniff] = { remote, log, timer };
    socket.on('data', onSniffData);
    socket.on('end', onSniffEnd);
    socket.on('close', onSniffClose);
  }

  /** The first chunk of a connection arrived (`sock` is paused, its sniff listeners gone). */
  dispatch(sock: EntrySocket, sniff: Sniff, chunk: Buffer): void {
    const first = chunk[0];
    if (first === 0x01 && this.#relayEnabled) {
      sock.unshift(chunk);
      this.#handleRelay(sock, sniff.remote, sniff.log);
    } else if (first === 0x16) {
      sock.unshift(chunk);
      this.#handleTls(sock, sniff.remote, sniff.log).catch((err: Error) => this.#refuse(sock, sniff.log, err));
    } else {
      this.#http.handle(sock, sniff.log, chunk);
    }
  }

  /** The connection went before its first byte, or broke a rule. */
  refuse(sock: net.Socket, sniff: Sniff, err: Error): void {
    this.#refuse(sock, sniff.log, err);
  }

  forget(sock: net.Socket): void {
    this.#sockets.delete(sock);
  }

  get sniffTimeoutMs(): number {
    return this.#sniffTimeoutMs;
  }

  /**
   * Closes a connection that broke a rule: a deadline (entrypoint.sniffTimeout), a size limit,
   * the protocol. One warning per peer and limit a minute, the rest at debug.
   */
  #refuse(socket: net.Socket, log: Logger, err: Error): void {
    destroy(socket);
    if (isPeerGone(err)) {
      log.debug(`entrypoint: ${err.message}`);
      return;
    }
    const code = (err as { code?: string }).code;
    const limit = code === 'BURROW_ERR_TIMEOUT' ? 'entrypoint.sniffTimeout' : code === 'BURROW_ERR_LIMIT' ? 'header size' : 'protocol';
    const detail = code === 'BURROW_ERR_TIMEOUT' ? ` (entrypoint.sniffTimeout ${this.#sniffTimeoutMs} ms)` : '';
    this.#opts.server.warnings.warn(log, socket.remoteAddress ?? '', limit, `entrypoint: ${err.message}${detail}`);
  }

  async #handleTls(socket: net.Socket, remote: string, log: Logger): Promise<void> {
    const { value: sni } = await peek<string | undefined>(
      socket,
      (buf) => {
        const r = parseClientHelloSni(buf);
        return r.complete ? { done: true, value: r.sni } : { done: false };
      },
      { timeoutMs: this.#sniffTimeoutMs, maxBytes: TLS_MAX_HELLO_BYTES },
    );
    if (!sni) {
      this.#opts.server.warnings.warn(log, socket.remoteAddress ?? '', 'SNI required', 'tls: no SNI in ClientHello, closing');
      destroy(socket);
      return;
    }
    const route = this.#opts.server.lookupPublic(sni, this.#opts.ingress);
    if (!route) {
      log.error({ host: sni }, `no route to host ${sni}`);
      destroy(socket);
      return;
    }
    if (route.private) {
      log.error({ host: sni }, `tunnel ${route.tunnelId} is private for host ${sni}`);
      destroy(socket);
      return;
    }
    let stream: Duplex;
    try {
      stream = this.#opts.server.openTunnelStream(route.tunnelId, 'tcp', remote, joinHostPort(sni, 443));
    } catch (err) {
      log.error({ host: sni }, (err as Error).message);
      destroy(socket);
      return;
    }
    log.debug({ host: sni, tunnel: route.tunnelId }, `${remote} <-> ${sni}`);
    this.#opts.server.splice(socket, stream, remote, log);
  }

  /** A relay request: the tunnel port's own code path (rate limit, auther, routing). */
  #handleRelay(socket: net.Socket, remote: string, log: Logger): void {
    const conn: Conn = { stream: socket, local: joinHostPort(socket.localAddress ?? '', socket.localPort ?? 0), remote };
    this.#opts.server.relay(conn, log);
  }
}
