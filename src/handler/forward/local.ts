/**
 * Local port forwarding (`tcp`, `udp`, `forward` handlers): each accepted connection goes to a
 * forwarder node, directly or through the service's chain. Through a chain ending in a tunnel
 * connector this is a *visitor* (a private entry point): every TCP connection or UDP session
 * becomes one relay CONNECT for the node's host (behavior.md §7).
 *
 * With `sniffing=true` and no target, the host is read from the traffic: HTTP `Host` (port 80
 * by default) or TLS SNI (port 443). Without a target and without sniffing, the target is ":0"
 * (direct-mode tunnels route by tunnel ID). With `sniffing=true` and nodes chosen by host
 * (`filter.host`, `matcher.rule`), the sniffed HTTP Host (request by request) or TLS SNI picks
 * the node, as in gost's reverse-proxy setup.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Conn } from '../../core/transport';
import { type Later, type Handler, type HandleResult, type Network } from '../../core/handler';
import type { Chain } from '../../chain/chain';
import { Forwarder } from '../../forward/selector';
import { relayThen, destroy, type RelayOptions, type RelayResult, type RelaySettle } from '../../io/pipe';
import { dialUdp } from '../../transport/dial';
import { dialNode } from '../../forward/node-http';
import { BurrowError, isSendTimeout } from '../../core/errors';
import { Metadata } from '../../core/metadata';
import { sniffProtocol } from './sniff';
import { HttpForwarder, nodeRoute, requestMatchInput } from './http-forward';
import { framedDatagrams, isDatagramPort, relayDatagramPorts, relayDatagrams } from '../../io/datagram';
import type { TLSConfig } from '../../core/config';
import { LOCAL_FORWARD_HANDLER_OPTIONS } from '../../core/options/forward';
import { parseOptions } from '../../core/options/options';

export interface LocalForwardOptions {
  network: Network;
  forwarder: Forwarder;
  chain?: Chain;
  metadata: Metadata;
  retries: number;
}

/** Appends ":0" to a target without a port, as gost's forward handler does. */
export function withPort(addr: string): string {
  if (addr.startsWith('[')) return addr.includes(']:') ? addr : `${addr}:0`;
  const colons = addr.split(':').length - 1;
  if (colons === 1) return addr;
  if (colons === 0) return `${addr}:0`;
  return `[${addr}]:0`;
}

/**
 * Relays `a` (the accepted side, `from`) and `b` (`to`); the forward handler's result once the
 * relay settles, a send timeout logged (info). Handlers return this instead of awaiting the
 * relay, so a long relay holds one callback, not the handler's suspended frame or a promise.
 */
export function relayed(a: Duplex, b: Duplex, opts: RelayOptions, log: Logger, from: string, to: string, later: Later): Later {
  relayThen(a, b, opts, new Relayed(log, from, to, later));
  return later;
}

/** What `relayed` keeps for the relay's end: four fields, the method shared by all. */
class Relayed implements RelaySettle {
  constructor(
    readonly log: Logger,
    readonly from: string,
    readonly to: string,
    readonly later: Later,
  ) {}

  relaySettled(res: RelayResult): void {
    settleRelayed(res, res.aToB, res.bToA, this.log, this.from, this.to, this.later);
  }
}

/** A relay's end as the handler's result: a send timeout logged (info), the byte counts. */
function settleRelayed(res: RelayResult, inputBytes: number, outputBytes: number, log: Logger, from: string, to: string, later: Later): void {
  if (isSendTimeout(res.error)) log.info(`${from} >< ${to}: ${res.error.message} (sendTimeout)`);
  later.resolve({ inputBytes, outputBytes });
}

/**
 * A UDP socket side `port` relayed over `stream`, a byte stream that carries its datagrams
 * framed: the datagram fast path when it applies (no relay idle timeout, whose clock needs
 * every datagram), else `relay` over the framed view.
 */
export function relayedDatagrams(
  port: Duplex,
  stream: Duplex,
  opts: RelayOptions,
  log: Logger,
  from: string,
  to: string,
  later: Later,
  /** The connection came in on `stream` (the client's rudp side): its input is what the port sends. */
  streamIsNear = false,
): Later {
  if (!isDatagramPort(port) || (opts.idleTimeoutMs ?? 0) > 0) {
    return streamIsNear
      ? relayed(framedDatagrams(stream), port, opts, log, from, to, later)
      : relayed(port, framedDatagrams(stream), opts, log, from, to, later);
  }
  relayDatagrams(port, stream, { sendTimeoutMs: opts.sendTimeoutMs }, (res) => {
    // aToB: from the port into the stream; bToA: from the stream out of the port.
    if (streamIsNear) settleRelayed(res, res.bToA, res.aToB, log, from, to, later);
    else settleRelayed(res, res.aToB, res.bToA, log, from, to, later);
  });
  return later;
}

export function createLocalForwardHandler(opts: LocalForwardOptions): Handler {
  const o = parseOptions(LOCAL_FORWARD_HANDLER_OPTIONS, opts.metadata);
  const sniffing = o.sniffing;
  const { sniffingTimeout: sniffTimeoutMs, idleTimeout: idleTimeoutMs, sendTimeout: sendTimeoutMs, readTimeout: readTimeoutMs } = o;
  const relayOpts: RelayOptions = { idleTimeoutMs, sendTimeoutMs };
  let httpForwarder: HttpForwarder | undefined;

  async function upstream(network: Network, dst: string, src: string, tls?: TLSConfig): Promise<Duplex> {
    let lastErr: unknown;
    for (let attempt = 0; attempt <= opts.retries; attempt++) {
      try {
        if (opts.chain) return await opts.chain.connect({ network, dst, src });
        return network === 'udp' ? await dialUdp(dst) : await dialNode(dst, tls);
      } catch (err) {
        lastErr = err;
      }
    }
    throw lastErr;
  }

  return {
    async close() {
      httpForwarder?.close();
    },
    async handle(conn: Conn, log: Logger, later: Later): Promise<HandleResult | Later> {
      const network: Network = conn.datagram ? 'udp' : 'tcp';
      const byHost = sniffing && network === 'tcp' && opts.forwarder.routesByHost;
      let node = byHost ? undefined : opts.forwarder.select();
      let dst: string;
      if (byHost) {
        const sniffed = await sniffProtocol(conn.stream, sniffTimeoutMs);
        if (sniffed.kind === 'http') {
          httpForwarder ??= new HttpForwarder({ headersTimeoutMs: sniffTimeoutMs });
          await httpForwarder.serve(conn.stream, {
            route: (target, req) => {
              const n = opts.forwarder.select(target, requestMatchInput(req, conn.remote));
              return nodeRoute(opts.forwarder, n, n && withPort(n.addr), target, (t, nd) => upstream('tcp', t, conn.remote, nd?.tls));
            },
            log,
            readTimeoutMs,
          });
          return { inputBytes: 0, outputBytes: 0 };
        }
        const sni = sniffed.kind === 'tls' ? sniffed.target : undefined;
        node = opts.forwarder.select(sni, { proto: sniffed.kind === 'other' ? undefined : sniffed.kind, clientIP: conn.remote });
        if (!node) {
          destroy(conn.stream);
          throw new BurrowError('BURROW_ERR_DIAL', `node not available for host ${sni || '(none)'}`);
        }
        dst = withPort(node.addr);
      } else if (!node && sniffing && network === 'tcp') {
        const sniffed = await sniffProtocol(conn.stream, sniffTimeoutMs);
        if (sniffed.kind === 'http') {
          // Each request goes to its own Host (port 80 by default) through the chain.
          httpForwarder ??= new HttpForwarder({ headersTimeoutMs: sniffTimeoutMs });
          await httpForwarder.serve(conn.stream, {
            route: (target) => ({ open: () => upstream('tcp', target, conn.remote) }),
            log,
            readTimeoutMs,
          });
          return { inputBytes: 0, outputBytes: 0 };
        }
        if (sniffed.kind === 'tls' && sniffed.target) dst = sniffed.target;
        else if (opts.chain) dst = ':0';
        else throw new BurrowError('BURROW_ERR_DIAL', 'node not available (nothing to route by in the traffic)');
      } else if (node) {
        dst = withPort(node.addr);
      } else if (opts.chain) {
        dst = ':0';
      } else {
        throw new BurrowError('BURROW_ERR_DIAL', 'node not available');
      }
      log.debug(`${conn.remote} >> ${dst}/${network}`);
      let up: Duplex;
      try {
        up = await upstream(network, dst, conn.remote, node?.tls);
      } catch (err) {
        if (node) opts.forwarder.markFailed(node);
        destroy(conn.stream);
        throw err;
      }
      if (node) opts.forwarder.markOk(node);
      // Through a chain, UDP rides the tunnel stream with 2-byte length framing.
      if (network === 'udp' && opts.chain) return relayedDatagrams(conn.stream, up, relayOpts, log, conn.remote, dst, later);
      if (network === 'udp' && !relayOpts.idleTimeoutMs && isDatagramPort(conn.stream) && isDatagramPort(up)) {
        // Plain UDP port forwarding: datagrams go from socket to socket.
        relayDatagramPorts(conn.stream, up, (res) => settleRelayed(res, res.aToB, res.bToA, log, conn.remote, dst, later));
        return later;
      }
      return relayed(conn.stream, up, relayOpts, log, conn.remote, dst, later);
    },
  };
}
