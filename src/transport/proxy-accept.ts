/**
 * Accepting the PROXY protocol (`proxyProtocol=1` on a service, as gost's key): the first bytes
 * of each accepted TCP connection are read for a PROXY header (v1 or v2, either is accepted
 * whatever the value), before TLS or HTTP see the connection.
 *
 * - From a trusted peer (`trustedProxies`): the header's source address becomes the
 *   connection's client address, the one every log line, limit, lockout and idle-stream key
 *   uses. A v2 LOCAL header (the balancer's own health check) or UNKNOWN keeps the socket's.
 * - From anyone else a PROXY header is not believed: the connection is closed, with one warning
 *   per peer a minute, so a stranger can never choose the address it is counted under.
 * - A connection without a header keeps its socket address (direct clients next to the
 *   balancer work as before; a trusted balancer always sends one).
 * - A header that does not complete within `proxyProtocol.timeout`, a malformed header and a
 *   peer that closes early are closed cleanly, each with one warning per peer a minute.
 *
 * The header's bytes are consumed; everything after them is left in the socket for the next
 * reader (the TLS handshake, the HTTP parser, the handler).
 */
import net from 'node:net';
import type { Logger } from 'pino';
import { parseProxyHeader, V2_FIXED_BYTES, type ProxyParse } from '../protocol/proxy/codec';
import { peek } from '../io/peek';
import { joinHostPort, stripPort } from '../core/addr';
import { remoteAddressOf } from './tcp/socket';
import { TrustedPeers } from '../limit/trusted-peers';
import { PeerWarnings } from '../limit/rate';
import type { Metadata } from '../core/metadata';
import { parseOptions } from '../core/options/options';
import { PROXY_PROTOCOL_ACCEPT } from '../core/options/transport';

/** The bytes a header can take: a v2 header with the largest length field. */
const MAX_HEADER_BYTES = V2_FIXED_BYTES + 0xffff;

export interface ProxyAcceptOptions {
  trusted: TrustedPeers;
  /** Deadline for the header (and for the first bytes that tell there is none). */
  timeoutMs: number;
  logger: Pick<Logger, 'warn' | 'debug'>;
  warnings: PeerWarnings;
  /** The listener's name for log lines ("tcp", "tls", "ws"). */
  kind: string;
}

/**
 * Reads the PROXY header at the start of `sock` (`peer` is the socket's "host:port"). Resolves
 * with the client's address ("host:port"), or undefined when the connection was closed.
 */
export async function acceptProxyHeader(sock: net.Socket, peer: string, o: ProxyAcceptOptions): Promise<string | undefined> {
  const host = stripPort(peer);
  const close = (limit: string, msg: string): undefined => {
    o.warnings.warn(o.logger, host, limit, `${o.kind}: ${msg} from ${peer}, connection closed`);
    sock.destroy();
    return undefined;
  };
  let parsed: ProxyParse;
  let bytes: number;
  try {
    const got = await peek<ProxyParse>(sock, (prefix, eof) => {
      const p = parseProxyHeader(prefix);
      return p.kind === 'more' && !eof ? { done: false } : { done: true, value: p };
    }, { timeoutMs: o.timeoutMs, maxBytes: MAX_HEADER_BYTES });
    parsed = got.value;
    bytes = got.prefix.length;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'BURROW_ERR_TIMEOUT') return close('proxyProtocol.timeout', `no complete PROXY header within ${o.timeoutMs} ms`);
    sock.destroy();
    return undefined;
  }
  switch (parsed.kind) {
    case 'none':
      return peer;
    case 'more':
      if (bytes === 0) {
        // Closed before its first byte (a port scan, a balancer's TCP check): nothing to serve.
        sock.destroy();
        return undefined;
      }
      return close('proxyProtocol', 'end of stream inside a PROXY header');
    case 'invalid':
      return close('proxyProtocol', `malformed PROXY header (${parsed.reason})`);
    case 'header':
      break;
  }
  const h = parsed.header;
  if (!o.trusted.trusts(host)) return close('trustedProxies', 'PROXY header from a peer not in trustedProxies');
  // Consume exactly the header; what follows stays buffered for the next reader.
  if (sock.read(h.length) === null) {
    sock.destroy();
    return undefined;
  }
  if (!h.source) return peer;
  o.logger.debug(`${o.kind}: PROXY v${h.version} from ${peer}: client ${joinHostPort(h.source.host, h.source.port)}`);
  return joinHostPort(h.source.host, h.source.port);
}

/** A listener's PROXY header reader, from its metadata; undefined when `proxyProtocol` is off. */
export function proxyAcceptOf(md: Metadata, logger: Logger, kind: string): { accept: (sock: net.Socket, peer: string) => Promise<string | undefined> } | undefined {
  const o = parseOptions(PROXY_PROTOCOL_ACCEPT, md);
  if (o.proxyProtocol === 0) return undefined;
  const opts: ProxyAcceptOptions = {
    trusted: TrustedPeers.parse(o.trustedProxies),
    timeoutMs: o.proxyProtocolTimeout,
    logger,
    warnings: new PeerWarnings(),
    kind,
  };
  if (opts.trusted.empty) logger.warn(`${kind}: PROXY headers are read but no trusted peer is listed (trustedProxies): every PROXY header will be refused`);
  return { accept: (sock, peer) => acceptProxyHeader(sock, peer, opts) };
}

/** Client addresses named by trusted PROXY headers, by raw socket (for TLS and HTTP servers). */
const CLIENTS = new WeakMap<net.Socket, string>();

/** The client address a trusted PROXY header gave `sock`, if any. */
export function proxiedClient(sock: net.Socket | undefined): string | undefined {
  return sock ? CLIENTS.get(sock) : undefined;
}

export type ProxyAccept = NonNullable<ReturnType<typeof proxyAcceptOf>>;

/**
 * A plain TCP server in front of `server` (a tls.Server or http(s).Server that then does not
 * listen itself): each connection's PROXY header is read first, then the socket is handed to
 * `server` as its own connection, with the client's address kept for `proxiedClient`.
 */
export function proxyFront(server: net.Server, proxy: ProxyAccept, opts: net.ServerOpts): net.Server {
  const front = net.createServer(opts, (sock) => {
    void proxy.accept(sock, remoteAddressOf(sock)).then((client) => {
      if (client === undefined) return;
      if (!front.listening) {
        sock.destroy();
        return;
      }
      CLIENTS.set(sock, client);
      server.emit('connection', sock);
    });
  });
  return front;
}
