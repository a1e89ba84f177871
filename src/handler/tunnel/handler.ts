/**
 * The `tunnel` handler: the public server. Each accepted connection carries one relay request:
 *
 * - BIND (a client behind NAT registers): answer with the endpoint and a connector ID, then the
 *   connection becomes an smux session in the smux *client* role, owned by the pool until it
 *   dies (protocol.md §2).
 * - CONNECT (a visitor): route per behavior.md §2.1, answer a status, then splice the visitor
 *   with a new stream to a connector of the tunnel (protocol.md §3).
 *
 * The handler also owns the entry points (`entrypoint=`, `entrypoints`), which sniff HTTP/TLS
 * traffic and route it through the same pool (entrypoint/); the state they share is server.ts.
 */
import { clientMismatchHint, foreignOf } from '../../protocol/sniff/foreign';
import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Conn } from '../../core/transport';
import { Later, type Handler, type HandleResult } from '../../core/handler';
import type { Metadata } from '../../core/metadata';
import {
  BurrowError,
  ConfigError,
  isPeerGone,
  isSendTimeout,
} from '../../core/errors';
import { CMD_BIND, CMD_CONNECT, STATUS_BAD_REQUEST, STATUS_FORBIDDEN, STATUS_OK, STATUS_SERVICE_UNAVAILABLE, STATUS_UNAUTHORIZED } from '../../protocol/relay/constants';
import { decodeRequest, parseRequest, statusResponse, type ParsedRequest, type RelayRequest } from '../../protocol/relay/message';
import { isZero, tunnelIdToString, parseTunnelId } from '../../protocol/relay/tunnel-id';
import { readRelayMessage } from '../../io/read-message';
import { relayThen, destroy, type RelayResult, type RelaySettle } from '../../io/pipe';
import { stripPort } from '../../core/addr';
import { RateLimiter } from '../../limit/rate';
import { parseOption, parseOptions } from '../../core/options/options';
import { TUNNEL_HANDLER_OPTIONS, type TunnelHandlerOptionValues } from '../../core/options/tunnel';
import { BACKLOG } from '../../core/options/transport';
import type { Ingress } from '../../ingress/ingress';
import { Auther, AnyAuther, parseUserPassList } from '../../auth/auther';
import type { ServiceMetrics } from '../../observe/service-metrics';
import type { Network } from './pool';
import { routeConnect } from './router';
import { handleBind } from './bind';
import { createEntryPoints, entryTlsOf, type EntryPoint } from './entrypoint/index';
import { entryAcmeOf, liveTunnelName } from './entrypoint/acme';
import { createTunnelServer, type TunnelServer } from './server';
import { Forwarder, FORWARD_TIMEOUT_MS, forwardedClient } from './forward';
import { TrustedPeers } from '../../limit/trusted-peers';

export type { TunnelServer } from './server';
import { SdRegistry } from '../../sd/registry';
import { createSd, parseRedisSdUrl, RedisSd, SD_REDIS_TIMEOUT_MS, type SdSpec, type ServiceDiscovery } from '../../sd/sd';

export interface TunnelHandlerOptions {
  service: string;
  metadata: Metadata;
  ingress?: Ingress;
  /** Ingresses by name, for `entrypoints[].ingress`. */
  ingresses: Map<string, Ingress>;
  auther?: AnyAuther;
  /** Authers by name, for `tunnel.bindAuther`. */
  authers?: ReadonlyMap<string, Auther>;
  /** `sds:` entries by name, for the `sd` metadata. */
  sds?: ReadonlyMap<string, SdSpec>;
  logger: Logger;
  /** What the entry points report per connection (their own services). */
  metrics?: ServiceMetrics;
}

/** Where a relay request comes from. */
interface Visitor {
  /** Another server of the fleet sent it on (it carries the mark): it is never sent on again. */
  forwarded: boolean;
  /** The address limits, lockout and the auther count it against. */
  client: string;
}

/** What a refused CONNECT moved: the 4-byte status. */
function refusedResult(): HandleResult {
  return { inputBytes: 0, outputBytes: 4 };
}

/** What a spliced CONNECT moved (the status included). */
function connectResult(r: RelayResult): HandleResult {
  return { inputBytes: r.aToB, outputBytes: r.bToA + 4 };
}

function safeParseTunnelIdText(text: string | undefined): string | undefined {
  if (!text) return undefined;
  try {
    const id = parseTunnelId(text);
    return isZero(id) ? undefined : tunnelIdToString(id);
  } catch {
    return undefined;
  }
}

/**
 * The auther BIND is checked against when `tunnel.bindAuth` or `tunnel.bindAuther` is set (then
 * the service's auther checks CONNECT only); undefined otherwise (gost: one auther for both).
 */
function bindAutherOf(opts: TunnelHandlerOptions, o: TunnelHandlerOptionValues): AnyAuther | undefined {
  const list: Auther[] = [];
  const inline = o.bindAuth;
  if (inline) list.push(new Auther({ name: `${opts.service}-bind`, auths: parseUserPassList(inline), logger: opts.logger }));
  const name = o.bindAuther;
  if (name) {
    const a = opts.authers?.get(name);
    if (!a) throw new ConfigError(`auther "${name}" is not defined`, { path: 'handler.metadata.tunnel.bindAuther' });
    list.push(a);
  }
  return list.length > 0 ? new AnyAuther(list) : undefined;
}

/**
 * The service discovery of `sd` (an `sds:` entry's name) or `tunnel.sd` (a redis:// URL, the
 * built-in Redis form with `sd.expiration`), if either is set.
 */
function sdOf(opts: TunnelHandlerOptions, o: TunnelHandlerOptionValues): ServiceDiscovery | undefined {
  const url = o.sdRedis;
  if (url) {
    try {
      const expirationMs = o.sdExpiration;
      return new RedisSd({ ...parseRedisSdUrl(url), expirationMs, timeoutMs: SD_REDIS_TIMEOUT_MS });
    } catch (err) {
      throw new ConfigError((err as Error).message, { path: 'handler.metadata.tunnel.sd' });
    }
  }
  const name = o.sd;
  if (!name) return undefined;
  const spec = opts.sds?.get(name);
  if (!spec) throw new ConfigError(`sd "${name}" is not defined in sds`, { path: 'handler.metadata.sd' });
  let sd: ServiceDiscovery | undefined;
  try {
    sd = createSd(spec);
  } catch (err) {
    throw new ConfigError((err as Error).message, { path: `sds[${name}]` });
  }
  if (!sd) opts.logger.warn(`sd "${name}": only http plugins and the built-in redis form are implemented; connectors are not registered`);
  return sd;
}

export function createTunnelHandler(
  opts: TunnelHandlerOptions,
): Handler & { server: TunnelServer; entryPoints: EntryPoint[]; withdraw(): Promise<void> } {
  const md = opts.metadata;
  const o = parseOptions(TUNNEL_HANDLER_OPTIONS, md);
  const log = opts.logger;
  const nodeId = randomUUID();
  let entryPoints: EntryPoint[] = [];
  const sdService = sdOf(opts, o);
  const sd = sdService
    ? new SdRegistry({
        sd: sdService,
        node: nodeId,
        advertise: o.sdAdvertise,
        entryPoint: () => entryPoints[0]?.address() ?? '',
        renewMs: o.tunnelTtl,
        logger: log.child({ kind: 'sd' }),
      })
    : undefined;
  let trusted: TrustedPeers;
  try {
    trusted = TrustedPeers.parse(o.sdTrusted);
  } catch (err) {
    throw new ConfigError((err as Error).message, { path: 'handler.metadata.sd.trusted' });
  }
  const forward = sd ? new Forwarder({ sd, trusted, timeoutMs: o.sdTimeout || FORWARD_TIMEOUT_MS, logger: log.child({ kind: 'forward' }) }) : undefined;
  const server = createTunnelServer({ metadata: md, options: o, ingress: opts.ingress, logger: log, sd, forward, nodeId, metrics: opts.metrics });
  const { warnings } = server;
  const direct = o.direct;
  const bindAuther = bindAutherOf(opts, o);
  const entrypointId = safeParseTunnelIdText(o.entrypointId);
  const readTimeoutMs = o.readTimeout;
  const spliceOpts = { sendTimeoutMs: server.sendTimeoutMs };
  const connRate = o.connRate;
  const limiter = connRate > 0 ? new RateLimiter({ ratePerSec: connRate, burst: o.connBurst || Math.max(1, Math.ceil(connRate * 2)) }) : undefined;
  /** A tunnel's logger for a connection (a child of `clog`, the connection's). */
  const tunnelLogger = (clog: Logger, tid: string): Logger => clog.child({ node: nodeId, tunnel: tid });
  // TLS termination: certificate files first (a file that does not load is a configuration
  // error), then ACME (`entrypoint.acme`) for names of live tunnels on the entry points' routes.
  const acme = entryAcmeOf(o, liveTunnelName(server, () => [opts.ingress, ...entryPoints.map((ep) => ep.ingress)]), log);
  const entryTls = entryTlsOf(o, acme?.hooks);
  if (entryTls) server.terminatesTls = (host) => entryTls.terminates(host);
  entryPoints = createEntryPoints({
    tls: entryTls,
    service: opts.service,
    server,
    options: o,
    backlog: parseOption(BACKLOG.backlog, md),
    ingress: opts.ingress,
    ingresses: opts.ingresses,
    logger: log,
    metrics: opts.metrics,
    // A relay request at an entry point: the tunnel port's own code (rate limit, auther, routing).
    // (The entry point's service settles its connection when the socket closes.)
    relay(conn, clog) {
      serveRelay(conn, clog, new Later(), false).catch((err: Error) => {
        clog.error(`relay: ${err.message}`);
        destroy(conn.stream);
      });
    },
  });

  if (sd && !o.sdAdvertise && entryPoints.length === 0) {
    throw new ConfigError('service discovery needs an entry point (entrypoint=) or sd.advertise: it registers where other servers reach this one', {
      path: 'handler.metadata.sd.advertise',
    });
  }

  async function reply(conn: Conn, status: number): Promise<void> {
    await new Promise<void>((resolve) => conn.stream.end(statusResponse(status), () => resolve()));
  }

  /** What a CONNECT's splice keeps for its end: five fields, the method shared by all. */
  class Spliced implements RelaySettle {
    constructor(
      readonly stream: Duplex,
      readonly remote: string,
      readonly slog: Logger,
      readonly visitorTid: string,
      readonly later: Later,
    ) {}

    relaySettled(r: RelayResult): void {
      if (isSendTimeout(r.error)) server.warnSendTimeout(r.error, this.stream, this.remote, tunnelLogger(this.slog, this.visitorTid));
      this.later.resolve(connectResult(r));
    }
  }

  /**
   * CONNECT: routes, answers, then splices the visitor with a tunnel stream. Not an async
   * function: the splice of an idle connection can last for hours, and what waits on it is
   * one callback and the service's Later, not a suspended frame holding the request. The
   * tunnel's logger (`clog`) is not kept for the splice: a send-timeout warning makes it
   * again from the connection's (`slog`).
   */
  function handleConnect(
    conn: Conn,
    req: ParsedRequest,
    visitorTid: string,
    slog: Logger,
    clog: Logger,
    later: Later,
    from: Visitor,
  ): Promise<HandleResult | Later> | Later {
    const network: Network = req.network === 'udp' ? 'udp' : 'tcp';
    const dst = req.dstAddr ?? '';
    const host = stripPort(dst);
    const route = host ? server.lookupPublic(host) : undefined;
    clog.debug(`connect: ${req.srcAddr ?? conn.remote} >> ${dst}/${network}`);
    const d = routeConnect({ host, route, visitorTunnelId: visitorTid, entrypointId, direct });
    if (!d.ok) {
      clog.error(d.reason);
      return reply(conn, d.status).then(refusedResult);
    }
    let stream: Duplex;
    try {
      stream = server.openTunnelStream(d.tunnelId, network, req.srcAddr ?? conn.remote, dst);
    } catch (err) {
      // No connector here: another server of the fleet may hold the tunnel (never for a
      // request that another server sent here already).
      if (forward && !from.forwarded && server.pool.select(d.tunnelId, network) === undefined) {
        return forwardConnect(conn, req, d.tunnelId, network, from.client, slog, clog, visitorTid, later);
      }
      clog.error(`${(err as Error).message}`);
      return reply(conn, STATUS_SERVICE_UNAVAILABLE).then(refusedResult);
    }
    clog.debug(`connect to tunnel=${d.tunnelId} OK`);
    conn.stream.write(statusResponse(0));
    relayThen(conn.stream, stream, spliceOpts, new Spliced(stream, conn.remote, slog, visitorTid, later));
    return later;
  }

  /**
   * CONNECT for a tunnel with no connector here: sent on to a server of the fleet that holds
   * one (forward.ts), whose status the visitor gets; 503 when none does.
   */
  async function forwardConnect(
    conn: Conn,
    req: ParsedRequest,
    tunnelId: string,
    network: Network,
    client: string,
    slog: Logger,
    clog: Logger,
    visitorTid: string,
    later: Later,
  ): Promise<HandleResult | Later> {
    const dst = req.dstAddr ?? '';
    let r: Awaited<ReturnType<Forwarder['forward']>>;
    try {
      r = await forward!.forward(
        { tunnelId, network, src: req.srcAddr ?? conn.remote, client, dst, username: req.username, password: req.password, tunnel: req.tunnelId },
        clog,
      );
    } catch (err) {
      clog.error(`forward: ${(err as Error).message}`);
      r = { status: STATUS_SERVICE_UNAVAILABLE };
    }
    if (r.status !== STATUS_OK || !r.socket) {
      if (r.status === STATUS_SERVICE_UNAVAILABLE) clog.error(`tunnel ${tunnelId} not available (no connector here or on another server)`);
      else clog.warn(`forward: node ${r.node ?? '?'} refused the request with status ${r.status}`);
      await reply(conn, r.status);
      return refusedResult();
    }
    clog.debug(`connect to tunnel=${tunnelId} via node=${r.node} OK`);
    conn.stream.write(statusResponse(0));
    relayThen(conn.stream, r.socket, spliceOpts, new Spliced(r.socket, conn.remote, slog, visitorTid, later));
    return later;
  }

  /**
   * One relay request on the tunnel port or an entry point's: the connection rate, the request,
   * the auther, then CONNECT (route, privacy) or BIND. `fields`: add the handler's log fields
   * (an entry point's logger has them already).
   */
  async function serveRelay(conn: Conn, clog: Logger, later: Later, fields: boolean): Promise<HandleResult | void | Later> {
    // A trusted server of the fleet (`sd.trusted`) counts against the visitor it forwards, known
    // once its request is read; anyone else against its own address, before.
    const peerTrusted = trusted.trusts(stripPort(conn.remote));
    if (!peerTrusted && !takeRate(conn, conn.remote, clog)) return;
    let raw: RelayRequest;
    let req: ParsedRequest;
    try {
      raw = decodeRequest(await readRelayMessage(conn.stream, readTimeoutMs));
      req = parseRequest(raw);
    } catch (err) {
      // Bad version, undecodable features, silence: close without a response, as gost.
      // One warning per peer and limit a minute (a flood of bad or idle connections is one
      // line); every case at debug.
      if (isPeerGone(err)) clog.debug(`relay: ${(err as Error).message}`);
      else if (err instanceof BurrowError && err.code === 'BURROW_ERR_TIMEOUT') {
        warnings.warn(clog, stripPort(conn.remote), 'readTimeout', `relay: ${err.message} (readTimeout ${readTimeoutMs} ms)`);
      } else {
        const limit = err instanceof BurrowError && err.code === 'BURROW_ERR_LIMIT' ? 'relay request size' : 'relay request format';
        const foreign = foreignOf(err);
        const text = foreign ? `${(err as Error).message}: ${clientMismatchHint(foreign)}` : (err as Error).message;
        warnings.warn(clog, stripPort(conn.remote), limit, `relay: bad request: ${text}`);
      }
      destroy(conn.stream);
      return;
    }
    const mark = forwardedClient(raw);
    const from: Visitor = { forwarded: mark !== undefined, client: peerTrusted && mark !== undefined ? mark : conn.remote };
    if (peerTrusted && !takeRate(conn, from.client, clog)) return;
    const tlog = fields ? clog.child({ node: nodeId }) : clog;
    if (!req.tunnelId || isZero(req.tunnelId)) {
      tlog.error('zero tunnel ID');
      await reply(conn, STATUS_BAD_REQUEST);
      return;
    }
    const tid = tunnelIdToString(req.tunnelId);
    // With a bind auther, BIND is checked against it alone and the service's auther checks
    // CONNECT only. The address is the connection's (a trusted proxy's client, never the source
    // a request writes into itself).
    // A trusted server of the fleet may send on, without credentials, what a visitor of its entry
    // point sent to a public host (HTTP, TLS): that host's rule must name the tunnel.
    const auther = bindAuther && req.cmd === CMD_BIND ? bindAuther : opts.auther;
    if (auther && !(peerTrusted && from.forwarded && req.username === undefined && publicRouteOf(req) === tid)) {
      const ok = await auther.check(req.username ?? '', req.password ?? '', from.client, opts.service, tid);
      if (!ok) {
        tlog.warn({ user: req.username ?? '', bind: auther === bindAuther || undefined }, 'unauthorized');
        await reply(conn, STATUS_UNAUTHORIZED);
        return;
      }
    }
    // A child of clog, not of tlog: the same fields, one logger less kept per connection.
    const tunnelLog = fields ? tunnelLogger(clog, tid) : clog.child({ tunnel: tid });
    try {
      // Not awaited: a CONNECT fails only before its splice, synchronously (see handleConnect).
      if (req.cmd === CMD_CONNECT) return handleConnect(conn, req, tid, clog, tunnelLog, later, from);
      if (req.cmd === CMD_BIND) return await handleBind(conn, req, server, tunnelLog);
    } catch (err) {
      if (err instanceof BurrowError && err.code === 'BURROW_ERR_LIMIT') {
        tunnelLog.warn(err.message);
        await reply(conn, STATUS_FORBIDDEN);
        return;
      }
      throw err;
    }
    tunnelLog.error(`unknown command 0x${req.cmd.toString(16)}`);
    await reply(conn, STATUS_BAD_REQUEST);
  }

  /** Takes one connection from the per-IP rate; false (the connection closed) when over it. */
  function takeRate(conn: Conn, client: string, clog: Logger): boolean {
    if (!limiter) return true;
    const ip = stripPort(client);
    if (limiter.take(ip)) return true;
    // Over the per-IP connection rate: close without a response (as gost's rlimiter).
    if (limiter.shouldWarn(ip)) clog.warn(`connection rate limit exceeded for ${ip} (tunnel.connRate=${connRate}/s)`);
    destroy(conn.stream);
    return false;
  }

  /** The tunnel of a CONNECT's destination host when a public rule or name routes it there. */
  function publicRouteOf(req: ParsedRequest): string | undefined {
    const host = stripPort(req.dstAddr ?? '');
    const r = host ? server.lookupPublic(host) : undefined;
    return r && !r.private ? r.tunnelId : undefined;
  }

  return {
    server,
    entryPoints,
    async start() {
      // Stored certificates first, so a restart serves them without an order. A store that
      // does not load (Redis down) is logged by the manager and tried again by the next order.
      await acme?.manager.start().catch(() => undefined);
      for (const ep of entryPoints) await ep.start();
    },
    handle(conn: Conn, clog: Logger, later: Later): Promise<HandleResult | void | Later> {
      return serveRelay(conn, clog, later, true);
    },
    drain() {
      for (const ep of entryPoints) ep.drain();
      server.drain();
    },
    inFlight() {
      let n = 0;
      for (const ep of entryPoints) n += ep.connections;
      return n;
    },
    /** Deregisters every connector from service discovery (at the start of a shutdown). */
    async withdraw() {
      await sd?.close();
    },
    async close() {
      await sd?.close();
      for (const ep of entryPoints) await ep.close();
      await acme?.manager.close();
      server.close();
    },
  };
}
