/**
 * Byte-stream transports: a Listener accepts connections, a Dialer opens them. Both hand out
 * `Conn`s whose `stream` is a Node Duplex (net.Socket, TLSSocket, a WebSocket stream, an smux
 * stream). Ownership: whoever receives a Conn owns it and must destroy it on every path.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Metadata } from './metadata';
import type { TLSConfig } from './config';

export interface Conn {
  stream: Duplex;
  /** Local address as "host:port" (Go style, IPv6 in brackets). */
  local: string;
  /** Peer address as "host:port". For ws listeners, the forwarded client IP when trusted. */
  remote: string;
  /**
   * True when `stream` carries datagrams: an objectMode Duplex whose every chunk is one
   * datagram (UDP listener sessions, UDP dialers).
   */
  datagram?: boolean;
  /**
   * The address the peer asked for, when the transport carries one: the `dst` of a tunnel
   * stream header on the client side ("ssh.srv-2.local:0", "www.example.com:80").
   */
  target?: string;
}

export interface StreamListener {
  /** Binds and starts accepting; rejects on EADDRINUSE etc. `onConn` owns each conn. */
  listen(onConn: (conn: Conn) => void): Promise<void>;
  /** The bound address ("127.0.0.1:34567"), valid after listen() resolved. */
  address(): string;
  /** Stops accepting; does not touch connections already handed out. Idempotent. */
  close(): Promise<void>;
}

export interface ListenerOptions {
  /** Listen address, Go style (":8443", "127.0.0.1:0"). */
  addr: string;
  metadata: Metadata;
  /** listener.tls from the config. */
  tls?: TLSConfig;
  /** The top-level `tls:` section (default server certificate). */
  globalTls?: TLSConfig;
  logger: Logger;
}

export interface Dialer {
  /** Opens a transport connection to "host:port" (empty host = localhost). */
  dial(addr: string, signal?: AbortSignal): Promise<Conn>;
  /** Releases shared state (e.g. the outer session of mws/mtls). Optional. */
  close?(): Promise<void>;
}

export interface DialerOptions {
  metadata: Metadata;
  /** dialer.tls from the config (client side: secure, serverName, caFile, certFile, keyFile). */
  tls?: TLSConfig;
  logger: Logger;
}

export type ListenerFactory = (opts: ListenerOptions) => StreamListener;
export type DialerFactory = (opts: DialerOptions) => Dialer;
