/**
 * `ws` and `wss` listeners (protocol.md §8.2, config.md §3.5): an HTTP(S) server that upgrades
 * requests for exactly `path` (default `/ws`) to WebSocket; each WebSocket is one Conn whose
 * stream is a WsStream.
 *
 * - Other paths get gost's 404 ("404 page not found"), a plain request on `path` gets 400;
 *   both are logged once with the peer address and the connection is closed.
 * - Extra response headers from `header` (`ws.header`); permessage-deflate only with
 *   `enableCompression=true`; any Origin accepted.
 * - The upgrade request must arrive within `handshakeTimeout` (`readHeaderTimeout`; 10 s)
 *   after the TCP (ws) or TLS (wss) connection is up; wss has the same limit on the TLS
 *   handshake.
 * - `Conn.remote` is the socket peer; only when that peer is trusted (`trustedProxies`, a
 *   load balancer or CDN) it is the client IP from `CF-Connecting-IP`, else the first
 *   `X-Forwarded-For`, else `X-Real-Ip` (port 0, as gost). gost believes these headers from
 *   anyone, which lets a client choose the address its limits and lockout count against.
 */
import { listenerMismatchHint } from '../../protocol/sniff/foreign';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Conn, ListenerOptions, StreamListener } from '../../core/transport';
import { isPeerGone } from '../../core/errors';
import {
  listenBacklog,
  keepaliveOptions,
  listenServer,
  localAddressOf,
  remoteAddressOf,
  serverAddress,
  stopServer,
  tuneSocket,
  handOff,
} from '../tcp/socket';
import { loadServerTlsOptions, tlsHandshakeTimeoutMs } from '../tls/certs';
import { rawSocketOf } from '../tls/handshake';
import { TlsHandshakeTracker } from '../tls/listener';
import { WS_MAX_MESSAGE_BYTES, WsStream } from './stream';
import { TrustedPeers } from '../../limit/trusted-peers';
import { proxiedClient, proxyAcceptOf, proxyFront } from '../proxy-accept';

import { DEFAULT_WS_HANDSHAKE_TIMEOUT_MS, DEFAULT_WS_PATH } from '../../core/options/transport';
export { DEFAULT_WS_HANDSHAKE_TIMEOUT_MS, DEFAULT_WS_PATH };

/** The `path` metadata, normalised to start with "/". */
export function wsPath(md: ListenerOptions['metadata']): string {
  const p = md.getString('path', 'ws.path') || DEFAULT_WS_PATH;
  return p.startsWith('/') ? p : `/${p}`;
}

/** Client IP as gost's GetClientIP reads it, or undefined when absent or not an IP. */
export function forwardedClientIp(headers: http.IncomingHttpHeaders): string | undefined {
  const first = (v: string | string[] | undefined): string => (Array.isArray(v) ? v[0] ?? '' : v ?? '');
  let ip = first(headers['cf-connecting-ip']).trim();
  if (!ip) ip = (first(headers['x-forwarded-for']).split(',')[0] ?? '').trim();
  if (!ip) ip = first(headers['x-real-ip']).trim();
  return ip && net.isIP(ip) ? ip : undefined;
}

/** The request path without its query string. */
function pathOf(url: string | undefined): string {
  const u = url ?? '/';
  const q = u.indexOf('?');
  return q < 0 ? u : u.slice(0, q);
}

const NOT_FOUND_BODY = '404 page not found\n';
const BAD_REQUEST_BODY = 'Bad Request\n';

/** A complete plain-text HTTP/1.1 response that closes the connection. */
function rawResponse(status: number, reason: string, body: string): string {
  return (
    `HTTP/1.1 ${status} ${reason}\r\n` +
    'Content-Type: text/plain; charset=utf-8\r\n' +
    'X-Content-Type-Options: nosniff\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'Connection: close\r\n\r\n' +
    body
  );
}

/** Writes a final response and closes the socket once it is flushed. */
function answerAndClose(socket: Duplex, response: string): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(response, () => socket.destroy());
}

export class WsListener implements StreamListener {
  readonly #opts: ListenerOptions;
  readonly #secure: boolean;
  #server: net.Server | undefined;
  #tracker: TlsHandshakeTracker | undefined;
  /** Sockets connected (and, for wss, past TLS) but not upgraded yet, with their deadline. */
  readonly #pending = new Map<Duplex, NodeJS.Timeout | undefined>();
  #address = '';
  #closed = false;

  constructor(opts: ListenerOptions, secure: boolean) {
    this.#opts = opts;
    this.#secure = secure;
  }

  get #kind(): string {
    return this.#secure ? 'wss' : 'ws';
  }

  async listen(onConn: (conn: Conn) => void): Promise<void> {
    const { metadata: md, logger } = this.#opts;
    const path = wsPath(md);
    const handshakeMs =
      md.getDurationMs('handshakeTimeout', 'ws.handshakeTimeout', 'readHeaderTimeout') ??
      DEFAULT_WS_HANDSHAKE_TIMEOUT_MS;
    const responseHeaders = md.getStringMap('header', 'ws.header') ?? {};
    const keepalive = keepaliveOptions(md);
    const trusted = TrustedPeers.parse(md.get('trustedProxies'));

    let server: http.Server | https.Server;
    if (this.#secure) {
      const secure = await loadServerTlsOptions(this.#opts);
      const tlsServer = https.createServer({ ...secure, handshakeTimeout: tlsHandshakeTimeoutMs(md) });
      this.#tracker = new TlsHandshakeTracker(tlsServer, logger, keepalive);
      tlsServer.on('secureConnection', (sock: tls.TLSSocket) => {
        this.#tracker?.handedOut(sock);
        this.#awaitUpgrade(sock, handshakeMs);
      });
      server = tlsServer;
    } else {
      server = http.createServer();
      server.on('connection', (sock: net.Socket) => {
        tuneSocket(sock, keepalive);
        this.#awaitUpgrade(sock, handshakeMs);
      });
    }

    const wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: md.getBool('enableCompression') ?? false,
      maxPayload: WS_MAX_MESSAGE_BYTES,
      // Text messages are plain bytes here, as in gost; never reject them for bad UTF-8.
      skipUTF8Validation: true,
    });
    wss.on('headers', (headers: string[]) => {
      for (const [k, v] of Object.entries(responseHeaders)) headers.push(`${k}: ${v}`);
    });
    wss.on('wsClientError', (err: Error, socket: Duplex, req: http.IncomingMessage) => {
      logger.warn({ remote: this.#peer(socket), method: req.method, url: req.url, err: err.message }, `${this.#kind}: bad websocket handshake`);
      answerAndClose(socket, rawResponse(400, 'Bad Request', BAD_REQUEST_BODY));
    });

    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const notFound = pathOf(req.url) !== path;
      const status = notFound ? 404 : 400;
      logger.warn(
        { remote: this.#peer(req.socket), method: req.method, url: req.url, status },
        notFound ? `${this.#kind}: no handler for path` : `${this.#kind}: not a websocket request`,
      );
      const body = notFound ? NOT_FOUND_BODY : BAD_REQUEST_BODY;
      res.writeHead(status, {
        'Content-Type': 'text/plain; charset=utf-8',
        'X-Content-Type-Options': 'nosniff',
        'Content-Length': Buffer.byteLength(body),
        Connection: 'close',
      });
      res.end(body);
    });

    server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      this.#upgraded(socket);
      if (this.#closed) {
        socket.destroy();
        return;
      }
      if (pathOf(req.url) !== path) {
        logger.warn({ remote: this.#peer(socket), method: req.method, url: req.url, status: 404 }, `${this.#kind}: no handler for path`);
        answerAndClose(socket, rawResponse(404, 'Not Found', NOT_FOUND_BODY));
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
        const stream = new WsStream(ws);
        const sock = socket as net.Socket;
        const conn: Conn = {
          stream,
          local: localAddressOf(rawSocketOf(sock as tls.TLSSocket) ?? sock),
          remote: trusted.clientAddress(this.#peer(socket), forwardedClientIp(req.headers)),
        };
        handOff(onConn, conn, logger);
      });
    });

    server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
      // A client that went away is not worth a warning; a malformed request is.
      const level = isPeerGone(err) ? 'debug' : 'warn';
      const hint = listenerMismatchHint(err);
      logger[level]({ remote: this.#peer(socket), code: err.code, err: err.message, ...(hint ? { hint } : {}) }, `${this.#kind}: bad HTTP request`);
      answerAndClose(socket, rawResponse(400, 'Bad Request', BAD_REQUEST_BODY));
    });

    // With proxyProtocol a plain TCP server listens and hands each socket on after its PROXY header.
    const proxy = proxyAcceptOf(md, logger, this.#kind);
    const listening = proxy ? proxyFront(server, proxy, {}) : server;
    this.#server = listening;
    await listenServer(listening, this.#opts.addr, listenBacklog(md));
    // A failed listen is the caller's to report (once, naming the service); errors after it are logged.
    listening.on('error', (err) => logger.error(`${this.#kind} listener ${this.#opts.addr}: ${err.message}`));
    this.#address = serverAddress(listening);
  }

  /** Starts the upgrade deadline of a fresh connection. */
  #awaitUpgrade(sock: net.Socket, timeoutMs: number): void {
    const timer =
      timeoutMs > 0
        ? setTimeout(() => {
            this.#pending.delete(sock);
            this.#opts.logger.warn({ remote: this.#peer(sock), timeoutMs }, `${this.#kind}: websocket handshake timed out`);
            sock.destroy();
          }, timeoutMs)
        : undefined;
    this.#pending.set(sock, timer);
    sock.once('close', () => this.#upgraded(sock));
  }

  /** Clears the upgrade deadline: the socket is upgraded, answered or gone. */
  #upgraded(sock: Duplex): void {
    const timer = this.#pending.get(sock);
    if (timer) clearTimeout(timer);
    this.#pending.delete(sock);
  }

  /** The socket's peer, or the client a trusted PROXY header named. */
  #peer(socket: Duplex): string {
    const sock = socket as net.Socket;
    const raw = rawSocketOf(sock as tls.TLSSocket) ?? sock;
    return proxiedClient(raw) ?? remoteAddressOf(raw);
  }

  address(): string {
    if (!this.#address) throw new Error(`${this.#kind} listener: address() before listen()`);
    return this.#address;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#server) stopServer(this.#server);
    this.#tracker?.dropPending();
    for (const [sock, timer] of this.#pending) {
      if (timer) clearTimeout(timer);
      sock.destroy();
    }
    this.#pending.clear();
  }
}

export function createWsListener(opts: ListenerOptions): StreamListener {
  return new WsListener(opts, false);
}

export function createWssListener(opts: ListenerOptions): StreamListener {
  return new WsListener(opts, true);
}
