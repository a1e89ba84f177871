/**
 * The handler of an entry point's service: it waits for the first bytes of each accepted
 * connection and dispatches without losing any byte (behavior.md §4.2):
 *
 * - `0x01`: a relay request, served as on the tunnel port (relay.ts);
 * - `0x16`: TLS, routed by SNI and passed through untouched, tls.ts;
 * - anything else: HTTP/1.x, proxied per request by Host, http/.
 *
 * Unlike gost, sniffing has a deadline (`entrypoint.sniffTimeout`, default 15 s), so idle and
 * slowloris connections cannot pile up. The connection's result (what the service counts and
 * logs) settles when its socket closes, whichever path served it.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Conn } from '../../../core/transport';
import type { Handler, Later } from '../../../core/handler';
import { BurrowError, isPeerGone } from '../../../core/errors';
import { stripPort } from '../../../core/addr';
import { destroy } from '../../../io/pipe';
import type { Ingress } from '../../../ingress/ingress';
import type { TunnelServer } from '../server';
import type { HttpEntryProxy } from './http/proxy';
import type { RelayServer } from './relay';
import { handleTls } from './tls';
import type { EntryTls } from './terminate';

/** What every path of an entry point needs. */
export interface EntryContext {
  readonly server: TunnelServer;
  readonly ingress: Ingress | undefined;
  /** `entrypoint.sniffTimeout`: the deadline for a first byte, a ClientHello, a relay request, a request head. */
  readonly sniffTimeoutMs: number;
  /** `entrypoint.relay` (default true): relay requests are taken here. */
  readonly relayEnabled: boolean;
  /** Serves a relay request as the tunnel port does (relay.ts). */
  readonly relay: RelayServer;
  readonly http: HttpEntryProxy;
  /** TLS termination (certificates, passthrough), when configured. */
  readonly tls: EntryTls | undefined;
}

/** One accepted connection: its result settles when the socket closes. */
class EntryConn {
  /** Pending until the first bytes come (then cleared, with the sniff listeners). */
  timer: NodeJS.Timeout | undefined;
  constructor(
    readonly dispatch: EntryDispatch,
    readonly conn: Conn,
    readonly socket: net.Socket,
    readonly remote: string,
    readonly log: Logger,
    readonly later: Later,
  ) {}
}

/** The connection state of each socket (the listeners below are shared; `this` is the socket). */
const conns = new WeakMap<Duplex, EntryConn>();

function ignoreError(): void {}
function onClose(this: net.Socket): void {
  const c = conns.get(this);
  if (c === undefined) return;
  conns.delete(this);
  if (endSniff(c)) c.log.debug('entrypoint: connection closed');
  c.later.resolve({ inputBytes: this.bytesRead, outputBytes: this.bytesWritten });
}
/** Ends the sniff (listeners and timer gone); false when it had ended already. */
function endSniff(c: EntryConn): boolean {
  if (c.timer === undefined) return false;
  clearTimeout(c.timer);
  c.timer = undefined;
  c.dispatch.sniffing.delete(c);
  c.socket.off('data', onSniffData);
  c.socket.off('end', onSniffEnd);
  return true;
}
function onSniffData(this: net.Socket, chunk: Buffer): void {
  if (chunk.length === 0) return;
  const c = conns.get(this);
  if (c === undefined || !endSniff(c)) return;
  this.pause();
  c.dispatch.dispatch(c, chunk);
}
function sniffFailed(c: EntryConn, err: Error): void {
  if (endSniff(c)) c.dispatch.refuse(c.socket, c.remote, c.log, err);
}
function onSniffEnd(this: net.Socket): void {
  const c = conns.get(this);
  if (c) sniffFailed(c, new BurrowError('BURROW_ERR_CLOSED', 'connection closed before a complete header'));
}
function sniffTimeout(c: EntryConn): void {
  sniffFailed(c, new BurrowError('BURROW_ERR_TIMEOUT', `no complete header within ${c.dispatch.ctx.sniffTimeoutMs} ms`));
}

export class EntryDispatch implements Handler {
  /** Connections that have not sent their first bytes yet. */
  readonly sniffing = new Set<EntryConn>();

  readonly tlsContext: EntryContext & { refuse: EntryDispatch['refuse'] };

  constructor(readonly ctx: EntryContext) {
    this.tlsContext = { ...ctx, refuse: (socket, remote, log, err) => this.refuse(socket, remote, log, err) };
  }

  handle(conn: Conn, log: Logger, later: Later): Later {
    const socket = conn.stream;
    if (!(socket instanceof net.Socket)) throw new Error('entry point: not a TCP connection');
    socket.setNoDelay(true);
    // Errors are reported by whoever reads the socket; 'close' follows.
    socket.on('error', ignoreError);
    const c = new EntryConn(this, conn, socket, conn.remote, log, later);
    conns.set(socket, c);
    socket.on('close', onClose);
    // The first chunk decides (no promise, no copy: it is handed on, or put back for the TLS and
    // relay readers). A peer that closes before sending a byte is not a decision (the socket
    // would go to the HTTP side already ended, which never notices and keeps it open).
    c.timer = setTimeout(sniffTimeout, this.ctx.sniffTimeoutMs, c);
    c.timer.unref();
    this.sniffing.add(c);
    socket.on('data', onSniffData);
    socket.on('end', onSniffEnd);
    if (socket.destroyed) onClose.call(socket);
    return later;
  }

  /** The first chunk of a connection arrived (its socket paused, the sniff listeners gone). */
  dispatch(c: EntryConn, chunk: Buffer): void {
    const { socket: sock, remote, log } = c;
    const first = chunk[0];
    if (first === 0x01 && this.ctx.relayEnabled) {
      sock.unshift(chunk);
      this.ctx.relay(c.conn, log);
    } else if (first === 0x16) {
      sock.unshift(chunk);
      handleTls(this.tlsContext, sock, remote, log, chunk).catch((err: Error) => this.refuse(sock, remote, log, err));
    } else {
      this.ctx.http.handle(sock, remote, log, chunk);
    }
  }

  /**
   * Closes a connection that broke a rule: a deadline (entrypoint.sniffTimeout), a size limit,
   * the protocol. One warning per peer and limit a minute, the rest at debug.
   */
  refuse(socket: net.Socket, remote: string, log: Logger, err: Error): void {
    destroy(socket);
    if (isPeerGone(err)) {
      log.debug(`entrypoint: ${err.message}`);
      return;
    }
    const code = (err as { code?: string }).code;
    const handshake = err.message.includes('TLS handshake');
    const limit = handshake
      ? 'entrypoint.tlsHandshakeTimeout'
      : code === 'BURROW_ERR_TIMEOUT' ? 'entrypoint.sniffTimeout' : code === 'BURROW_ERR_LIMIT' ? 'header size' : 'protocol';
    const detail = code === 'BURROW_ERR_TIMEOUT' && !handshake ? ` (entrypoint.sniffTimeout ${this.ctx.sniffTimeoutMs} ms)` : '';
    this.ctx.server.warnings.warn(log, stripPort(remote), limit, `entrypoint: ${err.message}${detail}`);
  }

  /**
   * Shutdown, first step (the listener has stopped accepting): connections that sent nothing
   * yet and idle keep-alive connections close now; requests in flight go on, and their
   * connections close after their response.
   */
  drain(): void {
    for (const c of [...this.sniffing]) c.socket.destroy();
    this.ctx.http.drain();
  }

  async close(): Promise<void> {
    this.ctx.http.close();
  }
}
