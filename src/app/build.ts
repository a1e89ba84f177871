/**
 * Config model → running parts. The one place where part names meet implementations: roles
 * are configurations (a server is a `tunnel` handler on a listener; a client is an rtcp/rudp
 * service whose chain ends in a tunnel connector; a visitor is a tcp/udp forward whose chain
 * does), never code paths.
 */
import { randomUUID } from 'node:crypto';
import type { HttpSourceConfig } from '../loader/sources';
import type { Logger } from 'pino';
import type { AuthConfig, Config, ServiceConfig, ChainConfig, HopConfig, SdConfig } from '../core/config';
import type { StreamListener, Dialer } from '../core/transport';
import type { Connector, Handler } from '../core/handler';
import { ConfigError } from '../core/errors';
import { Metadata, parseGoDurationMs } from '../core/metadata';
import { LISTENERS, DIALERS } from '../transport';
import { createUdpListener } from '../transport/udp/listener';
import { combineReverseListeners, createReverseListener, type ReverseListener, type BoundInfo } from '../listener/reverse';
import { Chain, Hop, type ChainNode } from '../chain/chain';
import { createTunnelConnector } from '../connector/tunnel/connector';
import { createTunnelHandler } from '../handler/tunnel/handler';
import { createLocalForwardHandler } from '../handler/forward/local';
import { createRemoteForwardHandler } from '../handler/forward/remote';
import { Forwarder } from '../forward/selector';
import { Ingress, parseTunnelShorthand } from '../ingress/ingress';
import { Auther, AnyAuther } from '../auth/auther';
import { Service } from '../service/service';
import { DEFAULTS } from '../core/config';
import {
  CONNECTOR_TYPES,
  DIALER_TYPES,
  HANDLER_TYPES,
  LISTENER_TYPES,
  partOf,
  type ConnectorType,
  type HandlerType,
  type ListenerType,
  type PartKind,
} from '../core/parts';
import { parseOptions } from '../core/options/options';
import { TUNNEL_HANDLER_OPTIONS } from '../core/options/tunnel';

export interface BuiltApp {
  services: Service[];
  reverseListeners: ReverseListener[];
  chains: Map<string, Chain>;
  ingresses: Map<string, Ingress>;
  authers: Map<string, Auther>;
  /** Tunnel handlers by service name (tests and the demo read entry point addresses). */
  tunnelHandlers: Map<string, ReturnType<typeof createTunnelHandler>>;
}

export interface BuildHooks {
  metrics?: import('../observe/service-metrics').ServiceMetrics;
  onBound?: (service: string, info: BoundInfo) => void;
}

/**
 * A reload's hand-over: running parts to use instead of building new ones (a part is reused
 * when its configuration did not change), and the services to build (the others are kept).
 */
export interface BuildReuse {
  chain?: (name: string) => Chain | undefined;
  ingress?: (name: string) => Ingress | undefined;
  auther?: (name: string) => Auther | undefined;
  /** Build only these services (default: every service). */
  services?: ReadonlySet<string>;
}

/** The random tunnel ID of this process for connectors without `tunnel.id` (as gost). */
const PROCESS_TUNNEL_ID = randomUUID();

function unknown(kind: string, type: string, known: readonly string[], where: string): ConfigError {
  return new ConfigError(`unknown ${kind} type "${type}" (known: ${known.join(', ')})`, { path: where });
}

/** Narrows a type name to the registry's names (core/parts). */
function registered<K extends PartKind>(
  kind: K,
  type: string,
): type is K extends 'dialer' ? keyof typeof DIALERS : K extends 'connector' ? ConnectorType : K extends 'handler' ? HandlerType : ListenerType {
  return partOf(kind, type) !== undefined;
}

/** Every registered connector, by name; the type makes a missing one a compile error. */
const CONNECTORS: Record<ConnectorType, (o: { metadata: Metadata; auth?: AuthConfig; logger: Logger }) => Connector> = {
  tunnel: (o) => createTunnelConnector({ ...o, randomId: PROCESS_TUNNEL_ID }),
  // gost's forward connector: the node itself forwards to a fixed target (a port forwarder in
  // front), so the connection is the payload stream as it is.
  forward: () => ({ connect: async (conn) => conn.stream }),
};

function buildChain(cfg: ChainConfig, namedHops: Map<string, HopConfig>, logger: Logger): Chain {
  if (cfg.hops.length > 1) {
    // Reaching a later hop needs a proxy connector on the earlier ones (http, socks, relay),
    // which burrow does not implement: refuse rather than silently skip hops.
    throw new ConfigError(`chain "${cfg.name}" has ${cfg.hops.length} hops; burrow dials one hop per chain (one -F)`, {
      path: `chains[${cfg.name}].hops`,
    });
  }
  const hops = cfg.hops.map((h, hi) => {
    const hop = (!h.nodes || h.nodes.length === 0) && namedHops.has(h.name) ? namedHops.get(h.name)! : h;
    const nodes: ChainNode[] = (hop.nodes ?? []).map((n, ni) => {
      const where = `chains[${cfg.name}].hops[${hi}].nodes[${ni}]`;
      const dialerType = n.dialer?.type ?? 'tcp';
      const connectorType = n.connector?.type ?? 'tunnel';
      const dmd = new Metadata({ ...(hop.metadata ?? {}), ...(n.metadata ?? {}), ...(n.dialer?.metadata ?? {}) });
      const cmd = new Metadata({ ...(hop.metadata ?? {}), ...(n.metadata ?? {}), ...(n.connector?.metadata ?? {}) });
      if (!registered('dialer', dialerType)) throw unknown('dialer', dialerType, DIALER_TYPES, `${where}.dialer.type`);
      if (!registered('connector', connectorType)) throw unknown('connector', connectorType, CONNECTOR_TYPES, `${where}.connector.type`);
      const dialer: Dialer = DIALERS[dialerType]({ metadata: dmd, tls: n.dialer?.tls, logger });
      let connector: Connector;
      try {
        connector = CONNECTORS[connectorType]({ metadata: cmd, auth: n.connector?.auth, logger });
      } catch (err) {
        if (err instanceof ConfigError && err.path) throw err;
        throw new ConfigError((err as Error).message, { path: `${where}.connector.metadata` });
      }
      return {
        name: n.name,
        addr: n.addr,
        dialerType,
        connectorType,
        dialer,
        connector,
        metadata: cmd,
        fails: 0,
        failedAt: 0,
      };
    });
    const failTimeoutMs = hop.selector?.failTimeout ? parseGoDurationMs(hop.selector.failTimeout) : undefined;
    return new Hop(hop.name, nodes, failTimeoutMs ?? DEFAULTS.selectorFailTimeoutMs, hop.selector?.maxFails || 1);
  });
  return new Chain(cfg.name, hops, logger);
}

/** An ingress's or auther's http source with its timeout in ms. */
function httpSource(http: { url: string; timeout?: string } | undefined): HttpSourceConfig | undefined {
  if (!http) return undefined;
  return { url: http.url, timeoutMs: http.timeout ? parseGoDurationMs(http.timeout) : undefined };
}

function buildIngress(cfg: NonNullable<Config['ingresses']>[number], logger: Logger): Ingress {
  const reloadMs = cfg.reload ? parseGoDurationMs(cfg.reload) : undefined;
  return new Ingress({
    name: cfg.name,
    rules: cfg.rules ?? [],
    filePath: cfg.file?.path,
    redis: cfg.redis,
    http: httpSource(cfg.http),
    reloadMs,
    logger,
  });
}

/** What a listener or handler of one service is built from. */
interface PartContext {
  svc: ServiceConfig;
  where: string;
  slog: Logger;
  lmd: Metadata;
  hmd: Metadata;
  chain: Chain | undefined;
  chains: Map<string, Chain>;
  ltype: ListenerType;
  ingresses: Map<string, Ingress>;
  authers: Map<string, Auther>;
  /** `sds:` entries by name, for a tunnel handler's `sd`. */
  sds: Map<string, SdConfig>;
  hooks: BuildHooks;
  reverseListeners: ReverseListener[];
  tunnelHandlers: Map<string, ReturnType<typeof createTunnelHandler>>;
  globalTls: Config['tls'];
}

function reverseListener(network: 'tcp' | 'udp') {
  return (c: PartContext): StreamListener => {
    const ltype = network === 'udp' ? 'rudp' : 'rtcp';
    if (!c.chain) {
      throw new ConfigError(`${ltype} listener needs a chain ending in a tunnel connector (-F tunnel://server:port?tunnel.id=...)`, {
        path: `${c.where}.listener.chain`,
      });
    }
    // `tunnel.all` on the nodes: a session to every server of the node list at once, so each
    // routes to this client locally; otherwise one server at a time, the next on failure.
    const last = c.chain.hops[c.chain.hops.length - 1];
    const all = last?.nodes.some((n) => n.metadata.getBool('tunnel.all') === true) ?? false;
    const chains = all ? c.chain.perNode() : [c.chain];
    const rl = combineReverseListeners(
      chains.map((chain) =>
        createReverseListener({
          addr: c.svc.addr,
          network,
          chain,
          logger: c.slog.child({ kind: 'listener', listener: ltype }),
          onBound: (info) => c.hooks.onBound?.(c.svc.name, info),
        }),
      ),
    );
    c.reverseListeners.push(rl);
    return rl;
  };
}

const streamListener = (type: keyof typeof LISTENERS) => (c: PartContext): StreamListener =>
  LISTENERS[type]({ addr: c.svc.addr, metadata: c.lmd, tls: c.svc.listener.tls, globalTls: c.globalTls, logger: c.slog });

/** Every registered listener, by name; the type makes a missing one a compile error. */
const LISTENER_IMPLS: Record<ListenerType, (c: PartContext) => StreamListener> = {
  tcp: streamListener('tcp'),
  tls: streamListener('tls'),
  ws: streamListener('ws'),
  wss: streamListener('wss'),
  mtls: streamListener('mtls'),
  mws: streamListener('mws'),
  mwss: streamListener('mwss'),
  udp: (c) => createUdpListener({ addr: c.svc.addr, metadata: c.lmd, tls: c.svc.listener.tls, globalTls: c.globalTls, logger: c.slog }),
  rtcp: reverseListener('tcp'),
  rudp: reverseListener('udp'),
};

function tunnelHandler(c: PartContext): Handler {
  const { svc, where, slog } = c;
  const o = parseOptions(TUNNEL_HANDLER_OPTIONS, c.hmd, { path: `${where}.handler.metadata` });
  const ingName = svc.handler.ingress ?? o.ingress;
  let ingress = ingName ? c.ingresses.get(ingName) : undefined;
  if (!ingress && o.tunnel) {
    ingress = new Ingress({ name: '@internal', rules: parseTunnelShorthand(o.tunnel), logger: slog });
  }
  const names = [...(svc.handler.auther ? [svc.handler.auther] : []), ...(svc.handler.authers ?? [])];
  const list: Auther[] = [];
  for (const n of names) {
    const a = c.authers.get(n);
    if (!a) throw new ConfigError(`auther "${n}" is not defined`, { path: `${where}.handler.auther` });
    list.push(a);
  }
  if (svc.handler.auth && (svc.handler.auth.username || svc.handler.auth.password)) {
    list.push(new Auther({ name: `${svc.name}-auth`, auths: [svc.handler.auth], logger: slog }));
  }
  const h = createTunnelHandler({
    service: svc.name,
    metadata: c.hmd,
    ingress,
    ingresses: c.ingresses,
    auther: list.length ? new AnyAuther(list) : undefined,
    authers: c.authers,
    sds: c.sds,
    logger: slog,
    metrics: c.hooks.metrics,
  });
  c.tunnelHandlers.set(svc.name, h);
  return h;
}

function localForward(c: PartContext): Handler {
  return createLocalForwardHandler({
    network: c.ltype === 'udp' ? 'udp' : 'tcp',
    forwarder: new Forwarder(c.svc.forwarder?.nodes ?? [], c.svc.forwarder?.selector),
    chain: c.svc.handler.chain ? c.chains.get(c.svc.handler.chain) : undefined,
    metadata: c.hmd,
    retries: c.svc.handler.retries ?? 0,
  });
}

const remoteForward = (network: 'tcp' | 'udp') => (c: PartContext): Handler =>
  createRemoteForwardHandler({ network, forwarder: new Forwarder(c.svc.forwarder?.nodes ?? [], c.svc.forwarder?.selector), metadata: c.hmd });

/** Every registered handler, by name; the type makes a missing one a compile error. */
const HANDLER_IMPLS: Record<HandlerType, (c: PartContext) => Handler> = {
  tunnel: tunnelHandler,
  tcp: localForward,
  udp: localForward,
  forward: localForward,
  rtcp: remoteForward('tcp'),
  rudp: remoteForward('udp'),
};

export function buildApp(config: Config, logger: Logger, hooks: BuildHooks = {}, reuse: BuildReuse = {}): BuiltApp {
  const ingresses = new Map<string, Ingress>();
  for (const i of config.ingresses ?? []) ingresses.set(i.name, reuse.ingress?.(i.name) ?? buildIngress(i, logger));
  const authers = new Map<string, Auther>();
  for (const a of config.authers ?? []) {
    const kept = reuse.auther?.(a.name);
    if (kept) {
      authers.set(a.name, kept);
      continue;
    }
    authers.set(
      a.name,
      new Auther({
        name: a.name,
        auths: a.auths,
        filePath: a.file?.path,
        redis: a.redis,
        http: httpSource(a.http),
        plugin:
          a.plugin && (a.plugin.type ?? '').toLowerCase() === 'http'
            ? {
                url: a.plugin.addr,
                timeoutMs: a.plugin.timeout ? parseGoDurationMs(a.plugin.timeout) : undefined,
                tls: a.plugin.tls,
              }
            : undefined,
        reloadMs: a.reload ? parseGoDurationMs(a.reload) : undefined,
        logger,
      }),
    );
  }
  const sds = new Map((config.sds ?? []).map((s) => [s.name, s]));
  const namedHops = new Map((config.hops ?? []).map((h) => [h.name, h]));
  const chains = new Map<string, Chain>();
  for (const c of config.chains ?? []) chains.set(c.name, reuse.chain?.(c.name) ?? buildChain(c, namedHops, logger));

  const services: Service[] = [];
  const reverseListeners: ReverseListener[] = [];
  const tunnelHandlers = new Map<string, ReturnType<typeof createTunnelHandler>>();
  (config.services ?? []).forEach((svc, si) => {
    if (reuse.services && !reuse.services.has(svc.name)) return;
    const where = `services[${si}]`;
    const slog = logger.child({ service: svc.name });
    const lmd = new Metadata({ ...(svc.metadata ?? {}), ...(svc.listener.metadata ?? {}) });
    const hmd = new Metadata({ ...(svc.metadata ?? {}), ...(svc.handler.metadata ?? {}) });
    const chainName = svc.listener.chain ?? svc.handler.chain;
    const chain = chainName ? chains.get(chainName) : undefined;
    if (chainName && !chain) throw new ConfigError(`chain "${chainName}" is not defined`, { path: `${where}.handler.chain` });
    const ltype = svc.listener.type ?? 'tcp';
    const htype = svc.handler.type;
    if (!registered('listener', ltype)) throw unknown('listener', ltype, LISTENER_TYPES, `${where}.listener.type`);
    if (!registered('handler', htype)) throw unknown('handler', htype, HANDLER_TYPES, `${where}.handler.type`);
    const ctx: PartContext = { svc, where, slog, lmd, hmd, chain, chains, ltype, ingresses, authers, sds, hooks, reverseListeners, tunnelHandlers, globalTls: config.tls };
    const listener = LISTENER_IMPLS[ltype](ctx);
    const handler = HANDLER_IMPLS[htype](ctx);
    services.push(
      new Service({
        name: svc.name,
        listener,
        handler,
        listenerType: ltype,
        handlerType: htype,
        network: ltype === 'udp' || ltype === 'rudp' ? 'udp' : 'tcp',
        logger,
        metrics: hooks.metrics,
      }),
    );
  });
  return { services, reverseListeners, chains, ingresses, authers, tunnelHandlers };
}

export type { ServiceConfig };
