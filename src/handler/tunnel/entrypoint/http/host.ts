/**
 * What a visitor connection (connection.ts) needs of the entry point's HTTP side (proxy.ts),
 * so that the two do not import each other.
 */
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { ConnectionStreams } from './idle-pool';
import type { Upstream } from './upstream';
import type { HttpEdgeOptions } from './edge';

/** A visitor connection as the HTTP side tracks it. */
export interface HostedConnection {
  destroy(): void;
  /** Shutdown: closes now when idle between requests, else after the current response. */
  drain(): void;
}

/** What a connection needs of the entry point's HTTP side (proxy.ts). */
export interface ConnectionHost {
  readonly nodeId: string;
  readonly keepalive: boolean;
  readonly headersTimeoutMs: number;
  readonly readTimeoutMs: number;
  readonly idleTimeoutMs: number;
  /** Forwarded headers, redirects to https, ACME HTTP-01 answers; undefined: none of them. */
  readonly edge: HttpEdgeOptions | undefined;
  route(dst: string): { ok: true; tunnelId: string } | { ok: false; status: 502; reason: string };
  /**
   * The visitor's address for a request on a connection from `peer`: a forwarded-for header's
   * client when the peer may say so (see proxy.ts), else `peer`.
   */
  clientOf(headers: ReadonlyArray<readonly [string, string]>, peer: string): string;
  /**
   * The stream for a request. With keep-alive, a connector is picked per request, then the
   * stream the connection keeps for that connector (when `keepClient`), else an idle one of
   * that connector, else a new one on it; `key` is where the connection keeps the stream after
   * the exchange (undefined: not kept). With no connector here and `forwardable`, a stream to
   * the server of the fleet that holds the tunnel (kept the same way, and idle ones are per
   * node). Throws when the tunnel has no connector.
   */
  streamFor(
    streams: ConnectionStreams,
    keepClient: boolean,
    tunnelId: string,
    src: string,
    dst: string,
    peer: string,
    forwardable?: boolean,
  ): { up: Upstream; reused: boolean; key: string | undefined };
  /** A new stream (`peer`: the visitor socket's address; `forwardable` as for streamFor). */
  openUpstream(tunnelId: string, src: string, dst: string, peer: string, entry?: undefined, forwardable?: boolean): Upstream;
  /** Keeps a stream whose exchange is over for a later connection, or releases it. */
  putIdle(up: Upstream): void;
  /** A plain stream for an `Upgrade` request (forwarded as streamFor's). */
  openTunnelStream(tunnelId: string, src: string, dst: string, forwardable?: boolean, peer?: string): Duplex;
  splice(socket: net.Socket, stream: Duplex, peer: string, log: Logger): void;
  /** A request got its answer (per-tunnel metrics; tunnel "" when none was found). */
  countRequest(tunnelId: string, host: string, code: string): void;
  warn(log: Logger, peer: string, limit: string, msg: string): void;
  /** The connection closed. */
  forget(conn: HostedConnection): void;
}

