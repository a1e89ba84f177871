/**
 * The state one tunnel server shares between its relay handler (handler.ts), its BINDs
 * (bind.ts) and its entry points (entrypoint/): the connector pool, the ingress and public
 * names, the per-peer warnings, and the three operations every path uses — find the tunnel for
 * a public host, open a stream to a tunnel, splice a visitor with a stream.
 */
import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Metadata } from '../../core/metadata';
import { isSendTimeout, type SendTimeoutError } from '../../core/errors';
import { stripPort } from '../../core/addr';
import { encodeStreamHeader } from '../../protocol/stream-header';
import { relayThen } from '../../io/pipe';
import { PeerWarnings } from '../../limit/rate';
import type { TunnelHandlerOptionValues } from '../../core/options/tunnel';
import type { Ingress } from '../../ingress/ingress';
import { smuxConfigFromMetadata, type SmuxConfig } from '../../protocol/smux/config';
import { TunnelPool, connectorOf, type ConnectorEntry, type Network } from './pool';
import { RedisNameStore } from './public-store';
import { PublicNames } from './public-names';
import type { SdRegistry } from '../../sd/registry';
import type { ServiceMetrics, TunnelSource } from '../../observe/service-metrics';

/** A tunnel ID an operator revoked (web API): its BINDs are refused until it is restored. */
export interface Revocation {
  /** When it was revoked, ms since the epoch. */
  since: number;
  reason: string;
}
import type { Forwarder } from './forward';

/** Shared state of one tunnel server, used by the relay handler and its entry points. */
export interface TunnelServer {
  readonly nodeId: string;
  readonly pool: TunnelPool;
  readonly ingress: Ingress | undefined;
  readonly publicNames: PublicNames | undefined;
  /** Service discovery (`sd`, `tunnel.sd`): connectors bound here are registered there. */
  readonly sd: SdRegistry | undefined;
  /** Revoked tunnel IDs (memory only): a BIND for one gets FORBIDDEN. */
  readonly revoked: Map<string, Revocation>;
  /** Cross-server routing: requests for tunnels bound to another server of the fleet (forward.ts). */
  readonly forward: Forwarder | undefined;
  readonly smux: Partial<SmuxConfig>;
  /** `sendTimeout`: how long a spliced side may take no bytes. */
  readonly sendTimeoutMs: number;
  /** One warning per attacking peer and limit a minute (entry points, tunnel port, sessions). */
  readonly warnings: PeerWarnings;
  /** An entry point's HTTP request got its answer (per-tunnel metrics; "" = no tunnel). */
  countRequest(tunnelId: string, host: string, code: string): void;
  /** HTTP requests answered at this server's entry points, by status code ("upgrade" for WebSocket). */
  readonly requestsByCode: ReadonlyMap<string, number>;
  /** Tunnel for a host at a public entry point (ingress, then public names). */
  lookupPublic(host: string, ingress?: Ingress): { tunnelId: string; private: boolean } | undefined;
  /**
   * Opens a stream to the tunnel and writes the stream header; on `entry` first when given
   * (a connector picked by `pool.select`).
   */
  openTunnelStream(tunnelId: string, network: Network, src: string, dst: string, entry?: ConnectorEntry): Duplex;
  /**
   * Splices a visitor connection (`near`, from `nearAddr`) and its tunnel stream until both
   * end, bounded by `sendTimeout`: a side that takes no bytes that long ends both, with one
   * warning per peer (the tunnel client or the visitor) a minute.
   */
  splice(near: Duplex, stream: Duplex, nearAddr: string, log: Logger): void;
  /** The warning for a splice that ended on `sendTimeout` (side `b` is the tunnel stream). */
  warnSendTimeout(err: SendTimeoutError, stream: Duplex, nearAddr: string, log: Logger): void;
  /** An ingress that routes to this server's tunnels besides the handler's (an entry point's). */
  addRouting(ingress: Ingress): void;
  /**
   * A connector of the tunnel was registered: warns (once per tunnel ID) when nothing can
   * reach it, i.e. no ingress rule names it, tunnel.direct is off and public mode is off.
   */
  checkReachable(tunnelId: string, log: Logger): void;
  /**
   * Server shutdown, first step: no connector gets new streams, idle streams close, and each
   * session closes once it has no stream left (TunnelPool.shutdown).
   */
  drain(): void;
  /** Closes every session and the public-name store (server shutdown). */
  close(): void;
  /** Whether the entry points terminate TLS for a host (set by the handler when they have certificates). */
  terminatesTls?: (host: string) => boolean;
}

export interface TunnelServerOptions {
  /** The handler's metadata (the smux keys are read from it). */
  metadata: Metadata;
  options: TunnelHandlerOptionValues;
  ingress: Ingress | undefined;
  logger: Logger;
  /** Service discovery, when configured: connectors bound here are registered there. */
  sd?: SdRegistry;
  /** Cross-server routing, with service discovery. */
  forward?: Forwarder;
  /** The server's node ID (a random UUID when not given). */
  nodeId?: string;
  /** Per-tunnel series (metrics on). */
  metrics?: ServiceMetrics;
}

/** The server's state from the handler's options (`tunnel.*`, `sendTimeout`, smux keys). */
export function createTunnelServer(opts: TunnelServerOptions): TunnelServer {
  const o = opts.options;
  const log = opts.logger;
  const nodeId = opts.nodeId ?? randomUUID();
  const sendTimeoutMs = o.sendTimeout;
  const pool = new TunnelPool({
    maxTunnels: o.maxTunnels,
    maxConnectorsPerTunnel: o.maxConnectors,
    maxStreamsPerConnector: o.maxStreams,
  });
  const warnings = new PeerWarnings();
  const publicNames = o.publicDomain
    ? new PublicNames({
        domain: o.publicDomain,
        ttlMs: o.publicTtl,
        customTtlMs: o.customTtl,
        allowCustom: o.allowCustomNames,
        store: o.publicStore
          ? new RedisNameStore(o.publicStore, {
              prefix: o.publicStoreKey,
              timeoutMs: o.publicStoreTimeout,
              logger: log.child({ kind: 'public-names' }),
            })
          : undefined,
      })
    : undefined;
  const spliceOpts = { sendTimeoutMs };
  const direct = o.direct;
  /** Every ingress that routes to this server's tunnels (the handler's and its entry points'). */
  const routing = new Set<Ingress>(opts.ingress ? [opts.ingress] : []);
  const unreachableWarned = new Set<string>();
  const source: TunnelSource = {
    tunnels: () =>
      pool.snapshot().map(([tunnelId, list]) => ({
        tunnelId,
        connectors: list.length,
        bytesIn: list.reduce((n, c) => n + (c.session.bytesSent ?? 0), 0),
        bytesOut: list.reduce((n, c) => n + (c.session.bytesReceived ?? 0), 0),
      })),
    configured: (tunnelId) => [...routing].some((i) => i.routesTo(tunnelId)),
    onConnectorGone: (fn) => {
      const down = (c: ConnectorEntry): void => fn(c.tunnelId, c.session.bytesSent ?? 0, c.session.bytesReceived ?? 0);
      pool.events.on('down', down);
      return () => pool.events.off('down', down);
    },
  };
  const unwatch = opts.metrics?.addTunnelSource?.(source);
  const metrics = opts.metrics;

  const requestsByCode = new Map<string, number>();
  const server: TunnelServer = {
    nodeId,
    pool,
    ingress: opts.ingress,
    publicNames,
    sd: opts.sd,
    revoked: new Map(),
    forward: opts.forward,
    smux: smuxConfigFromMetadata(opts.metadata),
    sendTimeoutMs,
    warnings,
    countRequest(tunnelId, host, code) {
      requestsByCode.set(code, (requestsByCode.get(code) ?? 0) + 1);
      metrics?.tunnelRequest?.(tunnelId, host, code);
    },
    requestsByCode,
    lookupPublic(host, ingress = opts.ingress) {
      const r = ingress?.lookup(host);
      if (r) return r;
      const t = publicNames?.lookup(host);
      return t ? { tunnelId: t, private: false } : undefined;
    },
    splice(near, stream, nearAddr, log) {
      relayThen(near, stream, spliceOpts, (r) => {
        if (isSendTimeout(r.error)) server.warnSendTimeout(r.error, stream, nearAddr, log);
      });
    },
    openTunnelStream(tunnelId, network, src, dst, entry) {
      // Encode first: an address that cannot be encoded (a CONNECT without Addr features)
      // must fail before a stream is opened, or the stream would be left open for good.
      const header = encodeStreamHeader(src, dst);
      const { stream } = pool.openStream(tunnelId, network, 3, entry);
      stream.write(header);
      return stream;
    },
    warnSendTimeout(err, stream, nearAddr, log) {
      const connector = connectorOf(stream);
      if (err.side === 'b') {
        warnings.warn(
          log.child({ connector: connector?.id }),
          stripPort(connector?.remote ?? ''),
          'sendTimeout',
          `the tunnel client took no bytes on a stream for ${sendTimeoutMs} ms (a target that does not read, or a client that does not); stream closed`,
        );
      } else {
        warnings.warn(log, stripPort(nearAddr), 'sendTimeout', `a visitor took no bytes for ${sendTimeoutMs} ms; connection closed`);
      }
    },
    addRouting(ingress) {
      routing.add(ingress);
    },
    checkReachable(tunnelId, tlog) {
      if (direct || publicNames || unreachableWarned.has(tunnelId)) return;
      for (const i of routing) if (i.routesTo(tunnelId)) return;
      if (unreachableWarned.size >= 10_000) unreachableWarned.clear();
      unreachableWarned.add(tunnelId);
      tlog.warn(
        `tunnel ${tunnelId} is in no ingress rule and tunnel.direct is off: no visitor or entry point can reach it ` +
          `(add a rule such as tunnel=<host>:${tunnelId}, or set tunnel.direct=true on the server)`,
      );
    },
    drain() {
      pool.shutdown();
    },
    close() {
      unwatch?.();
      pool.closeAll();
      publicNames?.close();
    },
  };
  return server;
}
