/**
 * The public entry points of a tunnel server (behavior.md §4): `entrypoint=<addr>` and
 * `entrypoints: [{addr, ingress}]` of the tunnel handler. Each is a service of its own, named
 * `<service>-ep-<addr>` as gost names it: a tcp listener (transport/tcp) and the dispatch
 * handler (dispatch.ts) in the service layer's accept loop (service/service.ts), so public
 * traffic has the `gost_service_*` metrics, the per-connection log lines and the stop of every
 * other service. The tunnel handler starts them with itself and stops them when it closes.
 */
import type { Logger } from 'pino';
import { Metadata } from '../../../core/metadata';
import type { TunnelHandlerOptionValues } from '../../../core/options/tunnel';
import type { Ingress } from '../../../ingress/ingress';
import type { ServiceMetrics } from '../../../observe/service-metrics';
import { Service } from '../../../service/service';
import { TcpListener } from '../../../transport/tcp/listener';
import { capBacklog } from '../../../transport/tcp/socket';
import type { TunnelServer } from '../server';
import { EntryDispatch } from './dispatch';
import { HttpEntryProxy, type HttpEntryProxyOptions } from './http/proxy';
import type { RelayServer } from './relay';
import { EntryTls, type EntryTlsOptions } from './terminate';
import type { ForwardedMode } from './http/edge';
import { ConfigError } from '../../../core/errors';
import { FileCertificates, HostPatterns, listOption } from '../../../tls/files';
import type { CertificateProvider } from '../../../tls/provider';
import { TrustedPeers } from '../../../limit/trusted-peers';

export interface EntryPointOptions {
  /** The tunnel handler's service name. */
  service: string;
  addr: string;
  server: TunnelServer;
  ingress: Ingress | undefined;
  /** The tunnel handler's options (`entrypoint.*`). */
  options: TunnelHandlerOptionValues;
  /** The handler's `backlog`, used when `entrypoint.backlog` is not given. */
  backlog: number | undefined;
  logger: Logger;
  metrics?: ServiceMetrics;
  /** Serves a relay request as the tunnel port does. */
  relay: RelayServer;
  /** TLS termination, shared by the handler's entry points (undefined: TLS passes through). */
  tls: EntryTls | undefined;
}

/** What the HTTP side adds to requests: forwarded headers, redirects, challenges. */
function httpEdge(o: TunnelHandlerOptionValues, tls: EntryTls | undefined): HttpEntryProxyOptions['edge'] {
  const fwd = o.entrypointForwardedHeaders;
  const forwarded: ForwardedMode = fwd === undefined ? (tls ? 'tls' : 'none') : fwd ? 'all' : 'none';
  const redirectHttps = o.entrypointRedirectHttps;
  if (forwarded === 'none' && !redirectHttps && tls?.opts.httpChallenge === undefined) return undefined;
  return {
    forwarded,
    trusted: TrustedPeers.parse(o.entrypointTrustedProxies),
    redirectHttps,
    terminates: (host) => tls?.terminates(host) ?? false,
    httpChallenge: tls?.opts.httpChallenge,
  };
}

/**
 * TLS termination from the handler's options (`entrypoint.certFile` / `keyFile`, `passthrough`,
 * `tlsHandshakeTimeout`) and further providers (ACME, after the files); undefined when there is
 * no provider. Certificates that do not load are a configuration error naming the file.
 */
export function entryTlsOf(o: TunnelHandlerOptionValues, more: { providers?: CertificateProvider[] } & Partial<EntryTlsHooks> = {}): EntryTls | undefined {
  const providers: CertificateProvider[] = [];
  const certs = listOption(o.entrypointCertFile);
  const keys = listOption(o.entrypointKeyFile);
  if (certs.length > 0 || keys.length > 0) {
    try {
      providers.push(FileCertificates.load(certs, keys));
    } catch (err) {
      throw new ConfigError((err as Error).message, { path: 'handler.metadata.entrypoint.certFile' });
    }
  }
  providers.push(...(more.providers ?? []));
  if (providers.length === 0) return undefined;
  let passthrough: HostPatterns;
  try {
    passthrough = new HostPatterns(listOption(o.entrypointPassthrough));
  } catch (err) {
    throw new ConfigError((err as Error).message, { path: 'handler.metadata.entrypoint.passthrough' });
  }
  return new EntryTls({
    providers,
    passthrough,
    handshakeTimeoutMs: o.entrypointTlsHandshakeTimeout,
    alpn: o.entrypointHttp2 ? ['h2', 'http/1.1'] : ['http/1.1'],
    httpChallenge: more.httpChallenge,
    alpnChallengeContext: more.alpnChallengeContext,
  });
}

/** The ACME hooks an entry point takes (HTTP-01 on the plain side, TLS-ALPN-01 on the TLS side). */
export type EntryTlsHooks = Pick<EntryTlsOptions, 'httpChallenge' | 'alpnChallengeContext'>;

export class EntryPoint {
  readonly service: Service;
  /** The ingress this entry point routes by (the handler's, or its `entrypoints` item's). */
  readonly ingress: Ingress | undefined;
  readonly #addr: string;

  constructor(opts: EntryPointOptions) {
    const o = opts.options;
    this.#addr = opts.addr;
    this.ingress = opts.ingress;
    const sniffTimeoutMs = o.entrypointSniffTimeout;
    const http = new HttpEntryProxy({
      server: opts.server,
      ingress: opts.ingress,
      options: o,
      logger: opts.logger,
      headersTimeoutMs: sniffTimeoutMs,
      edge: httpEdge(o, opts.tls),
    });
    const handler = new EntryDispatch({
      server: opts.server,
      ingress: opts.ingress,
      sniffTimeoutMs,
      relayEnabled: o.entrypointRelay,
      relay: opts.relay,
      http,
      tls: opts.tls,
    });
    this.service = new Service({
      name: `${opts.service}-ep-${opts.addr}`,
      // `entrypoint.backlog`, else the handler's `backlog` (default 4096, capped by somaxconn).
      listener: new TcpListener({
        addr: opts.addr,
        // PROXY headers (`entrypoint.ProxyProtocol`) believed from `entrypoint.trustedProxies` only:
        // the listener then gives every later step the visitor's address.
        metadata: new Metadata({
          backlog: capBacklog(o.entrypointBacklog ?? opts.backlog),
          proxyProtocol: o.entrypointProxyProtocol,
          trustedProxies: o.entrypointTrustedProxies,
        }),
        logger: opts.logger,
      }),
      handler,
      listenerType: 'tcp',
      handlerType: 'tunnel',
      network: 'tcp',
      logger: opts.logger,
      // gost's fields for entry point lines (the service field stays the tunnel handler's).
      logFields: {},
      announce: (address) => `entrypoint: ${address}`,
      metrics: opts.metrics,
    });
  }

  address(): string {
    return this.service.address();
  }

  /** Connections open now. */
  get connections(): number {
    return this.service.activeConnections;
  }

  async start(): Promise<void> {
    try {
      await this.service.start();
    } catch (err) {
      throw new Error(`entrypoint ${this.#addr}: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Shutdown, first step: stops accepting at once (the port is free for the next process),
   * closes connections that sent nothing yet and idle keep-alive connections; requests in
   * flight go on, and their connections close after their response.
   */
  drain(): void {
    void this.service.stopAccepting();
  }

  /** Stops listening; open connections are closed after `graceMs`. */
  close(graceMs = 0): Promise<void> {
    return this.service.close(graceMs);
  }
}

export interface EntryPointsOptions {
  service: string;
  server: TunnelServer;
  options: TunnelHandlerOptionValues;
  /** The handler's `backlog` (listener option), the entry points' default. */
  backlog: number | undefined;
  /** The handler's ingress (and the one of an `entrypoints` item without a known one). */
  ingress: Ingress | undefined;
  ingresses: Map<string, Ingress>;
  logger: Logger;
  metrics?: ServiceMetrics;
  /** Serves a relay request as the tunnel port does. */
  relay: RelayServer;
  /** TLS termination (entryTlsOf), shared by all entry points. */
  tls?: EntryTls;
}

/** The entry points the handler's options ask for: `entrypoint`, then each of `entrypoints`. */
export function createEntryPoints(opts: EntryPointsOptions): EntryPoint[] {
  const o = opts.options;
  const logger = opts.logger.child({ kind: 'entrypoint', handler: 'tunnel', listener: 'tcp', network: 'tcp', node: opts.server.nodeId });
  const make = (addr: string, ingress: Ingress | undefined): EntryPoint =>
    new EntryPoint({
      service: opts.service,
      addr,
      server: opts.server,
      ingress,
      options: o,
      backlog: opts.backlog,
      logger,
      metrics: opts.metrics,
      relay: opts.relay,
      tls: opts.tls,
    });
  const out: EntryPoint[] = [];
  if (o.entrypoint) out.push(make(o.entrypoint, opts.ingress));
  if (o.entrypoints) {
    for (const e of o.entrypoints) {
      const em = new Metadata(e);
      const addr = em.getString('addr');
      if (!addr) continue;
      const ingName = em.getString('ingress');
      const ingress = (ingName && opts.ingresses.get(ingName)) || opts.ingress;
      if (ingress) opts.server.addRouting(ingress);
      out.push(make(addr, ingress));
    }
  }
  return out;
}
