/**
 * What a visitor connection (connection.ts) needs of the entry point's HTTP side (proxy.ts),
 * so that the two do not import each other.
 */
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { ConnectionStreams } from './idle-pool';
import type { Upstream } from './upstream';

/** A visitor connection as the HTTP side tracks it. */
export interface HostedConnection {
  destroy(): void;
}

/** What a connection needs of the entry point's HTTP side (proxy.ts). */
export interface ConnectionHost {
  readonly nodeId: string;
  readonly keepalive: boolean;
  readonly headersTimeoutMs: number;
  readonly readTimeoutMs: number;
  readonly idleTimeoutMs: number;
  route(dst: string): { ok: true; tunnelId: string } | { ok: false; status: 502; reason: string };
  /**
   * The stream for a request: the one the connection keeps under `key`, else (with keep-alive)
   * an idle one of the picked connector, else a new one. Throws when the tunnel has none.
   */
  streamFor(
    streams: ConnectionStreams,
    key: string | undefined,
    tunnelId: string,
    src: string,
    dst: string,
    peer: string,
  ): { up: Upstream; reused: boolean };
  /** A new stream (`peer`: the visitor socket's address). */
  openUpstream(tunnelId: string, src: string, dst: string, peer: string): Upstream;
  /** Keeps a stream whose exchange is over for a later connection, or releases it. */
  putIdle(up: Upstream): void;
  /** A plain stream for an `Upgrade` request. */
  openTunnelStream(tunnelId: string, src: string, dst: string): Duplex;
  splice(socket: net.Socket, stream: Duplex, peer: string, log: Logger): void;
  warn(log: Logger, peer: string, limit: string, msg: string): void;
  /** The connection closed. */
  forget(conn: HostedConnection): void;
}

