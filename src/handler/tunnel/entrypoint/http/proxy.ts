/**
 * HTTP at a public entry point (behavior.md §4.3): an HTTP/1.1 reverse proxy, not a byte
 * splicer, so every request on a keep-alive connection is routed by its own `Host`.
 *
 * For each request: route by Host (the authority of an absolute-form target wins, as Go's
 * `Request.Host`) through the ingress (or public names); 502 for no route or a private rule,
 * 503 for no connector, a loop, or no response head within `entrypoint.readTimeout` (15 s).
 * The request goes down a tunnel stream whose header carries the client address
 * (CF-Connecting-IP / X-Forwarded-For / X-Real-Ip, else the peer; with
 * `entrypoint.trustedProxies` those headers count only from the listed peers) and `host:80`; its head is
 * written in Go's header order (head.ts) with `Gost-Sid` and `Gost-Forwarded-Node` set as gost
 * does, and its body is forwarded as it came (chunked framing included). With
 * `entrypoint.keepalive` (burrow's default; gost's is false) each request picks its connector
 * as a new connection does (weights, weight 255, failover), and streams are kept per connector
 * between requests and between connections (idle-pool.ts); `entrypoint.keepalive=false` gives
 * gost's exact bytes (`Connection: close`, one stream per request).
 *
 * The HTTP/1.1 framing is done by hand on the raw socket and stream: heads are parsed by the
 * strict parser of protocol/sniff/http.ts and protocol/http/, bodies are forwarded without
 * copies. No per-request delay: sockets have TCP_NODELAY, and a response head goes out with
 * the body bytes that came with it.
 *
 * The parts: this file (options, routing, the entry point's idle streams), connection.ts (one
 * visitor connection), exchange.ts (one request and its response), upstream.ts (a tunnel
 * stream), idle-pool.ts (streams between requests), deadlines.ts, head.ts.
 */
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { TunnelHandlerOptionValues } from '../../../../core/options/tunnel';
import { stripPort } from '../../../../core/addr';
import type { Ingress } from '../../../../ingress/ingress';
import type { TunnelServer } from '../../server';
import type { ConnectorEntry } from '../../pool';
import { EntryConnection } from './connection';
import { remoteStream } from '../../forward';
import type { ConnectionHost, HostedConnection } from './host';
import { IdlePool, type ConnectionStreams } from './idle-pool';
import { Upstream, remoteKeyOf, sharedKeyOf } from './upstream';
import { clientAddr } from './head';
import { TrustedPeers } from '../../../../limit/trusted-peers';
import type { HttpEdgeOptions } from './edge';
import { serveH2, type H2Host } from './h2';

export { SHARED_IDLE_MS } from './idle-pool';

export interface HttpEntryProxyOptions {
  server: TunnelServer;
  ingress: Ingress | undefined;
  /** The tunnel handler's options (`entrypoint.*`). */
  options: TunnelHandlerOptionValues;
  logger: Logger;
  /** `entrypoint.sniffTimeout`: the deadline of a request head. */
  headersTimeoutMs: number;
  /** Forwarded headers, redirects to https, ACME HTTP-01 answers (edge.ts). */
  edge?: HttpEdgeOptions;
}

export class HttpEntryProxy implements ConnectionHost, H2Host {
  readonly opts: HttpEntryProxyOptions;
  readonly nodeId: string;
  readonly headersTimeoutMs: number;
  readonly readTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly keepalive: boolean;
  /** `entrypoint.trustedProxies`; undefined: forwarded-for headers count from anyone, as in gost. */
  readonly #trusted: TrustedPeers | undefined;
  readonly edge: HttpEdgeOptions | undefined;
  readonly #conns = new Set<HostedConnection>();
  /** Streams whose exchange is over, for later connections. */
  readonly #idle = new IdlePool();
  /** Shutting down: connections end after their current exchange, no stream is kept. */
  #draining = false;

  constructor(opts: HttpEntryProxyOptions) {
    this.opts = opts;
    this.nodeId = opts.server.nodeId;
    this.headersTimeoutMs = opts.headersTimeoutMs;
    this.readTimeoutMs = opts.options.entrypointReadTimeout;
    this.idleTimeoutMs = opts.options.entrypointIdleTimeout;
    this.keepalive = opts.options.entrypointKeepalive;
    const trusted = TrustedPeers.parse(opts.options.entrypointTrustedProxies);
    this.#trusted = trusted.empty ? undefined : trusted;
    this.edge = opts.edge;
  }

  clientOf(headers: ReadonlyArray<readonly [string, string]>, peer: string): string {
    if (this.#trusted && !this.#trusted.trusts(stripPort(peer))) return peer;
    return clientAddr(headers, peer);
  }

  /**
   * Serves a sniffed connection from `peer` ("host:port"): its first bytes handed over as
   * `first`; `secure`: a TLS connection terminated here (`socket` is the TLSSocket).
   */
  handle(socket: net.Socket, peer: string, log?: Logger, first?: Buffer, secure = false): void {
    const conn = new EntryConnection(this, socket, peer, log ?? this.opts.logger, secure);
    this.#conns.add(conn);
    conn.start(first);
  }

  /** Serves a terminated TLS connection that chose HTTP/2 by ALPN (h2.ts). */
  handleH2(socket: net.Socket, peer: string, log?: Logger): void {
    serveH2(this, socket, peer, log ?? this.opts.logger);
  }

  track(conn: HostedConnection): void {
    this.#conns.add(conn);
  }

  forget(conn: HostedConnection): void {
    this.#conns.delete(conn);
  }

  /**
   * Shutdown, first step: idle connections close now, the others after their current response
   * (`Connection: close`); idle streams close and no stream is kept for later.
   */
  drain(): void {
    this.#draining = true;
    for (const c of [...this.#conns]) c.drain();
    this.#idle.close();
  }

  /** Stops serving: every connection and its streams are closed. */
  close(): void {
    for (const c of [...this.#conns]) c.destroy();
    this.#conns.clear();
    this.#idle.close();
  }

  streamFor(
    streams: ConnectionStreams,
    keepClient: boolean,
    tunnelId: string,
    src: string,
    dst: string,
    peer: string,
    forwardable = false,
  ): { up: Upstream; reused: boolean; key: string | undefined } {
    if (!this.keepalive) return { up: this.openUpstream(tunnelId, src, dst, peer, undefined, forwardable), reused: false, key: undefined };
    const entry = this.opts.server.pool.select(tunnelId, 'tcp');
    // With no connector here, a forwardable request's stream goes to another server of the
    // fleet: the connection keeps it for its next request to that host.
    const via = entry !== undefined ? entry.id : forwardable && this.opts.server.forward !== undefined ? 'fleet' : undefined;
    const key = keepClient && via !== undefined ? `${via}|${tunnelId}|${dst.toLowerCase()}|${src}` : undefined;
    const kept = key !== undefined ? streams.take(key) : undefined;
    if (kept !== undefined) return { up: kept, reused: true, key };
    return { ...this.acquire(tunnelId, src, dst, peer, entry, forwardable), key };
  }

  /**
   * A stream for a request on `entry` (a connector picked as for a new stream, so weights and
   * failover work per request; picked here when not given): an idle stream of that connector
   * for the same host, socket address and client IP if there is one (the most recent), else a
   * new stream on it. With no connector here and `forwardable`: an idle stream to a node that
   * service discovery named for the tunnel in its last answer, for the same host,
   * socket address and client IP; else a new one. Throws when the tunnel has no connector.
   */
  acquire(
    tunnelId: string,
    src: string,
    dst: string,
    peer: string,
    entry = this.opts.server.pool.select(tunnelId, 'tcp'),
    forwardable = false,
  ): { up: Upstream; reused: boolean } {
    if (entry !== undefined) {
      const up = this.#idle.take(sharedKeyOf(entry.id, dst.toLowerCase(), src, peer));
      if (up !== undefined) return { up, reused: true };
    } else if (forwardable && this.#idle.size > 0) {
      for (const node of this.opts.server.forward?.knownNodes(tunnelId, 'tcp') ?? []) {
        const up = this.#idle.take(sharedKeyOf(remoteKeyOf(tunnelId, node), dst.toLowerCase(), src, peer));
        if (up !== undefined) return { up, reused: true };
      }
    }
    return { up: this.openUpstream(tunnelId, src, dst, peer, entry, forwardable), reused: false };
  }

  /**
   * A new tunnel stream for `dst` (on `entry` first when given), with its listeners; with no
   * connector here and `forwardable`, a stream to the server of the fleet that holds one.
   */
  openUpstream(tunnelId: string, src: string, dst: string, peer: string, entry?: ConnectorEntry, forwardable = false): Upstream {
    return new Upstream(this.openTunnelStream(tunnelId, src, dst, forwardable, peer, entry), dst.toLowerCase(), src, peer, tunnelId);
  }

  putIdle(up: Upstream): void {
    up.owner = undefined;
    up.idleKey = undefined;
    // A stream neither on a connector here nor relayed to a known node is never taken again.
    if (!this.keepalive || this.#draining || !up.poolable || !this.#idle.put(up)) {
      up.markIdle(false);
      up.release();
    }
  }

  openTunnelStream(tunnelId: string, src: string, dst: string, forwardable = false, peer = src, entry?: ConnectorEntry): Duplex {
    const server = this.opts.server;
    if (forwardable && entry === undefined) {
      const remote = remoteStream(server, { tunnelId, network: 'tcp', src, client: peer, dst }, this.opts.logger);
      if (remote) return remote;
    }
    return server.openTunnelStream(tunnelId, 'tcp', src, dst, entry);
  }

  countRequest(tunnelId: string, host: string, code: string): void {
    this.opts.server.countRequest(tunnelId, host, code);
  }

  splice(socket: net.Socket, stream: Duplex, peer: string, log: Logger): void {
    this.opts.server.splice(socket, stream, peer, log);
  }

  /** Routes `dst` ("host:port"): the ingress lookup strips the port. */
  route(dst: string): { ok: true; tunnelId: string } | { ok: false; status: 502; reason: string } {
    const r = this.opts.server.lookupPublic(dst, this.opts.ingress);
    if (!r) return { ok: false, status: 502, reason: `no route to host ${dst}` };
    if (r.private) return { ok: false, status: 502, reason: `tunnel ${r.tunnelId} is private for host ${dst}` };
    return { ok: true, tunnelId: r.tunnelId };
  }

  /** One warning per peer IP and limit a minute. */
  warn(log: Logger, peer: string, limit: string, msg: string): void {
    this.opts.server.warnings.warn(log, stripPort(peer), limit, msg);
  }
}
