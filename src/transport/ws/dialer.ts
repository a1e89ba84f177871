/**
 * `ws` and `wss` dialers (protocol.md §8.2, config.md §3.5): TCP (TCP_NODELAY, `dialTimeout`,
 * `tcp.keepalive*`), for wss a TLS handshake (tls/certs.ts rules), then the RFC 6455 client
 * handshake `GET <path>` (default `/ws`) with
 *   Host: `host`/`ws.host`, else the node address as given (e.g. "127.0.0.1:8443"),
 *   extra headers from `header`/`ws.header`, Sec-WebSocket-Version: 13, no subprotocol,
 *   no permessage-deflate unless `enableCompression=true`,
 * within `handshakeTimeout` (10 s). With `keepalive=true` the dialer pings every
 * `ttl`/`keepalive.interval` (15 s) and drops the connection after 2× that without a pong.
 */
import type net from 'node:net';
import WebSocket from 'ws';
import type { Metadata } from '../../core/metadata';
import type { Conn, Dialer, DialerOptions } from '../../core/transport';
import { joinHostPort, splitHostPort } from '../../core/addr';
import { BurrowError } from '../../core/errors';
import {
  abortReason,
  dialHost,
  dialTcp,
  dialTimeoutMs,
  keepaliveOptions,
  localAddressOf,
  remoteAddressOf,
} from '../tcp/socket';
import { loadClientTlsOptions, tlsHandshakeTimeoutMs } from '../tls/certs';
import { TLSSocket } from 'node:tls';
import { withDialHint, wsDialHint } from '../../protocol/sniff/foreign';
import { tlsClientHandshake } from '../tls/handshake';
import { DEFAULT_WS_PATH, WS_DIALER_OPTIONS } from '../../core/options/transport';
import { parseOptions } from '../../core/options/options';
import { WS_MAX_MESSAGE_BYTES, WsStream } from './stream';

export { DEFAULT_WS_KEEPALIVE_INTERVAL_MS } from '../../core/options/transport';

export interface WsClientOptions {
  path: string;
  /** Host header value. */
  host: string;
  headers: Record<string, string>;
  compression: boolean;
  handshakeTimeoutMs: number;
  /** Ping interval; 0 = no keepalive. */
  keepaliveMs: number;
}

/** Reads the ws dialer metadata for a dial to `addr`. */
export function wsClientOptions(md: Metadata, addr: string): WsClientOptions {
  const o = parseOptions(WS_DIALER_OPTIONS, md);
  const path = o.path || DEFAULT_WS_PATH;
  return {
    path: path.startsWith('/') ? path : `/${path}`,
    host: o.host || addr,
    headers: o.header ?? {},
    compression: o.enableCompression,
    handshakeTimeoutMs: o.wsHandshakeTimeout,
    keepaliveMs: o.wsKeepalive ? o.wsKeepaliveInterval : 0,
  };
}

/**
 * Runs the WebSocket client handshake over a connected socket (plain or TLS) and resolves
 * with the WsStream. On failure the socket is destroyed and the promise rejects with a
 * BurrowError naming `addr`.
 */
export function wsClientHandshake(
  sock: net.Socket,
  addr: string,
  opts: WsClientOptions,
  signal?: AbortSignal,
): Promise<WsStream> {
  if (signal?.aborted) {
    sock.destroy();
    return Promise.reject(abortReason(signal));
  }
  const { host, port } = splitHostPort(addr);
  // The URL only feeds the request line; the socket is already connected and Host is set below.
  const url = `ws://${joinHostPort(dialHost(host), port)}${opts.path}`;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      createConnection: () => sock,
      headers: { Host: opts.host, ...opts.headers },
      perMessageDeflate: opts.compression,
      maxPayload: WS_MAX_MESSAGE_BYTES,
      skipUTF8Validation: true,
      followRedirects: false,
    });
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const cleanup = (): void => {
      settled = true;
      if (timer) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      ws.off('error', onError);
    };
    const fail = (err: Error): void => {
      if (settled) return;
      cleanup();
      // A failed handshake may still emit 'error'/'close' later; keep them quiet.
      ws.on('error', () => undefined);
      ws.terminate();
      sock.destroy();
      reject(err);
    };
    const onError = (err: Error): void => {
      const hint = wsDialHint(err, sock instanceof TLSSocket);
      fail(new BurrowError('BURROW_ERR_DIAL', `websocket handshake with ${addr}: ${withDialHint(err, hint)}`, { cause: err }));
    };
    const onAbort = (): void => fail(abortReason(signal!));
    ws.once('open', () => {
      if (settled) return;
      cleanup();
      // Wrap right away: a message that came with the 101 response is emitted soon after.
      resolve(new WsStream(ws));
    });
    ws.on('error', onError);
    signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.handshakeTimeoutMs > 0) {
      timer = setTimeout(
        () =>
          fail(
            new BurrowError(
              'BURROW_ERR_TIMEOUT',
              `websocket handshake with ${addr}: timed out after ${opts.handshakeTimeoutMs}ms`,
            ),
          ),
        opts.handshakeTimeoutMs,
      );
    }
  });
}

export class WsDialer implements Dialer {
  readonly #opts: DialerOptions;
  readonly #secure: boolean;

  constructor(opts: DialerOptions, secure: boolean) {
    this.#opts = opts;
    this.#secure = secure;
  }

  async dial(addr: string, signal?: AbortSignal): Promise<Conn> {
    const { metadata: md, logger } = this.#opts;
    let host: string;
    try {
      ({ host } = splitHostPort(addr));
    } catch (err) {
      throw new BurrowError('BURROW_ERR_DIAL', `dial ${this.#secure ? 'wss' : 'ws'} ${addr}: ${(err as Error).message}`);
    }
    const wsOpts = wsClientOptions(md, addr);
    const tlsOpts = this.#secure ? await loadClientTlsOptions(this.#opts.tls, md, host, logger) : undefined;
    const raw = await dialTcp(addr, { timeoutMs: dialTimeoutMs(md), signal, keepalive: keepaliveOptions(md, 'tcp.') });
    const sock = tlsOpts ? await tlsClientHandshake(raw, tlsOpts, addr, tlsHandshakeTimeoutMs(md), signal) : raw;
    const stream = await wsClientHandshake(sock, addr, wsOpts, signal);
    if (wsOpts.keepaliveMs > 0) {
      logger.debug({ intervalMs: wsOpts.keepaliveMs }, 'websocket keepalive enabled');
      stream.startKeepalive(wsOpts.keepaliveMs);
    }
    return { stream, local: localAddressOf(raw), remote: remoteAddressOf(raw) };
  }
}

export function createWsDialer(opts: DialerOptions): Dialer {
  return new WsDialer(opts, false);
}

export function createWssDialer(opts: DialerOptions): Dialer {
  return new WsDialer(opts, true);
}
