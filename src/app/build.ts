/**
 * Config model → running parts. The one place where part names meet implementations: roles
 * are configurations (a server is a `tunnel` handler on a listener; a client is an rtcp/rudp
 * service whose chain ends in a tunnel connector; a visitor is a tcp/udp forward whose chain
 * does), never code paths.
 */
import { randomUUID } from 'node:crypto';
import type { HttpSourceConfig } from '../loader/sources';
import type { Logger } from 'pino';
import type { Config, ServiceConfig, ChainConfig, HopConfig } from '../core/config';
import type { StreamListener, Dialer } from '../core/transport';
import type { Connector, Handler } from '../core/handler';
import { ConfigError } from '../core/errors';
import { Metadata, parseGoDurationMs } from '../core/metadata';
import { LISTENERS, DIALERS } from '../transport';
import { createUdpListener } from '../transport/udp/listener';
import { createReverseListener, type ReverseListener, type BoundInfo } from '../listener/reverse';
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
import { LISTENER_TYPES, HANDLER_TYPES, CONNECTOR_TYPES, DIALER_TYPES } from '../core/parts';

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

/** The random tunnel ID of this process for connectors without `tunnel.id` (as gost). */
const PROCESS_TUNNEL_ID = randomUUID();

function unknown(kind: string, type: string, known: readonly string[], where: string): ConfigError {
  return new ConfigError(`unknown ${kind} type "${type}" (known: ${known.join(', ')})`, { path: where });
}

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
      const dialerFactory = DIALERS[dialerType];
      if (!dialerFactory) throw unknown('dialer', dialerType, DIALER_TYPES, `${where}.dialer.type`);
      const dialer: Dialer = dialerFactory({ metadata: dmd, tls: n.dialer?.tls, logger });
      let connector: Connector;
      if (connectorType === 'tunnel') {
        try {
          connector = createTunnelConnector({ metadata: cmd, auth: n.connector?.auth, logger, randomId: PROCESS_TUNNEL_ID });
        } catch (err) {
          throw new ConfigError((err as Error).message, { path: `${where}.connector.metadata` });
        }
      } else if (connectorType === 'forward') {
        // gost's forward connector: the node itself forwards to a fixed target (a port
        // forwarder in front), so the connection is the payload stream as it is.
        connector = { connect: async (conn) => conn.stream };
      } else throw unknown('connector', connectorType, CONNECTOR_TYPES, `${where}.connector.type`);
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

export function buildApp(config: Config, logger: Logger, hooks: BuildHooks = {}): BuiltApp {
  const ingresses = new Map<string, Ingress>();
  for (const i of config.ingresses ?? []) ingresses.set(i.name, buildIngress(i, logger));
  const authers = new Map<string, Auther>();
  for (const a of config.authers ?? []) {
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
  const namedHops = new Map((config.hops ?? []).map((h) => [h.name, h]));
  const chains = new Map<string, Chain>();
  for (const c of config.chains ?? []) chains.set(c.name, buildChain(c, namedHops, logger));

  const services: Service[] = [];
  const reverseListeners: ReverseListener[] = [];
  const tunnelHandlers = new Map<string, ReturnType<typeof createTunnelHandler>>();
  (config.services ?? []).forEach((svc, si) => {
    const where = `services[${si}]`;
    const slog = logger.child({ service: svc.name });
    const lmd = new Metadata({ ...(svc.metadata ?? {}), ...(svc.listener.metadata ?? {}) });
    const hmd = new Metadata({ ...(svc.metadata ?? {}), ...(svc.handler.metadata ?? {}) });
    const chainName = svc.listener.chain ?? svc.handler.chain;
    const chain = chainName ? chains.get(chainName) : undefined;
    if (chainName && !chain) throw new ConfigError(`chain "${chainName}" is not defined`, { path: `${where}.handler.chain` });
    const ltype = svc.listener.type ?? 'tcp';
    const htype = svc.handler.type;

    let listener: StreamListener;
    if (ltype === 'rtcp' || ltype === 'rudp') {
      if (!chain) {
        throw new ConfigError(`${ltype} listener needs a chain ending in a tunnel connector (-F tunnel://server:port?tunnel.id=...)`, {
          path: `${where}.listener.chain`,
        });
      }
      const rl = createReverseListener({
        addr: svc.addr,
        network: ltype === 'rudp' ? 'udp' : 'tcp',
        chain,
        logger: slog.child({ kind: 'listener', listener: ltype }),
        onBound: (info) => hooks.onBound?.(svc.name, info),
      });
      reverseListeners.push(rl);
      listener = rl;
    } else if (ltype === 'udp') {
      listener = createUdpListener({ addr: svc.addr, metadata: lmd, tls: svc.listener.tls, globalTls: config.tls, logger: slog });
    } else {
      const f = LISTENERS[ltype];
      if (!f) throw unknown('listener', ltype, LISTENER_TYPES, `${where}.listener.type`);
      listener = f({ addr: svc.addr, metadata: lmd, tls: svc.listener.tls, globalTls: config.tls, logger: slog });
    }

    const forwarder = new Forwarder(svc.forwarder?.nodes ?? [], svc.forwarder?.selector);
    let handler: Handler;
    switch (htype) {
      case 'tunnel': {
        const ingName = svc.handler.ingress ?? hmd.getString('ingress');
        let ingress = ingName ? ingresses.get(ingName) : undefined;
        const shorthand = hmd.getString('tunnel');
        if (!ingress && shorthand) {
          ingress = new Ingress({ name: '@internal', rules: parseTunnelShorthand(shorthand), logger: slog });
        }
        const names = [...(svc.handler.auther ? [svc.handler.auther] : []), ...(svc.handler.authers ?? [])];
        const list: Auther[] = [];
        for (const n of names) {
          const a = authers.get(n);
          if (!a) throw new ConfigError(`auther "${n}" is not defined`, { path: `${where}.handler.auther` });
          list.push(a);
        }
        if (svc.handler.auth && (svc.handler.auth.username || svc.handler.auth.password)) {
          list.push(new Auther({ name: `${svc.name}-auth`, auths: [svc.handler.auth], logger: slog }));
        }
        const h = createTunnelHandler({
          service: svc.name,
          metadata: hmd,
          ingress,
          ingresses,
          auther: list.length ? new AnyAuther(list) : undefined,
          authers,
          logger: slog,
          metrics: hooks.metrics,
        });
        tunnelHandlers.set(svc.name, h);
        handler = h;
        break;
      }
      case 'tcp':
      case 'udp':
      case 'forward':
        handler = createLocalForwardHandler({
          network: ltype === 'udp' ? 'udp' : 'tcp',
          forwarder,
          chain: svc.handler.chain ? chains.get(svc.handler.chain) : undefined,
          metadata: hmd,
          retries: svc.handler.retries ?? 0,
        });
        break;
      case 'rtcp':
      case 'rudp':
        handler = createRemoteForwardHandler({ network: htype === 'rudp' ? 'udp' : 'tcp', forwarder, metadata: hmd });
        break;
      default:
        throw unknown('handler', htype, HANDLER_TYPES, `${where}.handler.type`);
    }
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
