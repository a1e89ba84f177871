/**
 * HTTP at a public entry point (behavior.md §4.3): an HTTP/1.1 reverse proxy, not a byte
 * splicer, so every request on a keep-alive connection is routed by its own `Host`.
 *
 * For each request: route by Host through the ingress (or public names); 502 for no route or a
 * private rule, 503 for no connector, a loop, or no response head within
 * `entrypoint.readTimeout` (15 s). The request goes down a new tunnel stream whose header
 * carries the client address (CF-Connecting-IP / X-Forwarded-For / X-Real-Ip, else the peer)
 * and `host:80`; it is written in Go's header order (Host, User-Agent, the rest sorted,
 * `Connection: close`) with `Gost-Sid` and `Gost-Forwarded-Node` set as gost does.
 * With `entrypoint.keepalive` (burrow's default; gost's is false) a keep-alive client connection
 * keeps its tunnel stream (one per tunnel, host and client address) for its next requests, so
 * it does not pay for a new stream and a new backend connection per request, and the stream
 * header still names the right client; `entrypoint.keepalive=false` gives gost's exact bytes
 * (`Connection: close`, one stream per request).
 *
 * No per-request delay: sockets have TCP_NODELAY, responses are streamed as they arrive.
 */
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { Metadata } from '../../core/metadata';
import { joinHostPort, splitHostPort } from '../../core/addr';
import { DEFAULTS } from '../../config/model';
import type { Ingress } from '../../ingress/ingress';
import type { TunnelServer } from './handler';
import { destroy } from '../../io/pipe';
import { HOP_BY_HOP, socketLike, hostWithPort, failResponse, relayHttpExchange, requestHead } from '../../io/http-relay';
import { newSid } from '../../service/service';
import { IDLE_STREAM, STREAM_CONNECTOR, type ConnectorEntry } from './pool';

export interface HttpEntryProxyOptions {
  server: TunnelServer;
  ingress: Ingress | undefined;
  metadata: Metadata;
  logger: Logger;
  headersTimeoutMs: number;
}


/** Go's textproto.CanonicalMIMEHeaderKey for ASCII names. */
export function canonicalHeaderKey(name: string): string {
  if (!/^[A-Za-z0-9-]+$/.test(name)) return name;
  return name
    .toLowerCase()
    .split('-')
    .map((p) => (p ? p[0]!.toUpperCase() + p.slice(1) : p))
    .join('-');
}

/** The client address gost reports for an HTTP request (port 0 when taken from a header). */
export function clientAddr(headers: http.IncomingHttpHeaders, peer: string): string {
  const candidates = [
    headers['cf-connecting-ip'],
    typeof headers['x-forwarded-for'] === 'string' ? headers['x-forwarded-for'].split(',')[0] : undefined,
    headers['x-real-ip'],
  ];
  for (const c of candidates) {
    const v = (Array.isArray(c) ? c[0] : c)?.trim();
    if (v && net.isIP(v)) return joinHostPort(v, 0);
  }
  return peer;
}

/**
 * Builds the outgoing header object in Go's Request.Write order: Host, User-Agent, framing
 * headers, the remaining headers sorted by canonical name, then Connection.
 */
export function buildUpstreamHeaders(
  req: http.IncomingMessage,
  extra: { sid: string; nodeId: string; keepalive: boolean },
): Record<string, string | string[]> {
  const byKey = new Map<string, string[]>();
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const key = canonicalHeaderKey(raw[i]!);
    const lower = key.toLowerCase();
    if (HOP_BY_HOP.has(lower) && lower !== 'transfer-encoding') continue;
    if (lower === 'gost-record') continue;
    const list = byKey.get(key);
    if (list) list.push(raw[i + 1]!);
    else byKey.set(key, [raw[i + 1]!]);
  }
  if (!byKey.has('Gost-Sid')) byKey.set('Gost-Sid', [extra.sid]);
  byKey.set('Gost-Forwarded-Node', [extra.nodeId]);
  const out: Record<string, string | string[]> = {};
  const host = byKey.get('Host');
  if (host) out['Host'] = host[0]!;
  out['User-Agent'] = byKey.get('User-Agent')?.[0] ?? 'Go-http-client/1.1';
  for (const k of ['Content-Length', 'Transfer-Encoding']) {
    const v = byKey.get(k);
    if (v) out[k] = v.length === 1 ? v[0]! : v;
  }
  const rest = [...byKey.keys()]
    .filter((k) => !['Host', 'User-Agent', 'Content-Length', 'Transfer-Encoding', 'Trailer'].includes(k))
    .sort();
  for (const k of rest) {
    const v = byKey.get(k)!;
    out[k] = v.length === 1 ? v[0]! : v;
  }
  out['Connection'] = extra.keepalive ? 'keep-alive' : 'close';
  return out;
}

/** Stream pools one visitor connection keeps (tunnel × host × client); the oldest goes beyond it. */
const MAX_AGENTS_PER_CONNECTION = 16;

class TunnelAgent extends http.Agent {
  constructor(
    private readonly open: () => Duplex,
  ) {
    super({ keepAlive: true, maxFreeSockets: 64, scheduling: 'lifo' });
  }
  override createConnection(): Duplex {
    const s = socketLike(this.open());
    // The far side ended an idle stream (its backend closed the keep-alive connection): drop
    // it from the pool now, or the next request would be sent down a stream nobody reads.
    s.on('end', () => {
      if ((s as unknown as Record<symbol, unknown>)[IDLE_STREAM]) s.destroy();
    });
    return s;
  }

  /** A stream goes back to the pool only while its connector takes new streams and both its directions are open. */
  override keepSocketAlive(socket: net.Socket): boolean {
    const entry = (socket as unknown as Record<symbol, ConnectorEntry | undefined>)[STREAM_CONNECTOR];
    if (entry && !entry.usable) return false;
    if (socket.readableEnded || !socket.writable) return false;
    (socket as unknown as Record<symbol, unknown>)[IDLE_STREAM] = true;
    // Node documents a boolean result; @types/node declares void.
    return (super.keepSocketAlive(socket) as unknown as boolean | undefined) !== false;
  }

  override reuseSocket(socket: net.Socket, req: http.ClientRequest): void {
    (socket as unknown as Record<symbol, unknown>)[IDLE_STREAM] = false;
    super.reuseSocket(socket, req);
  }
}

/** The largest request head the entry point reads (Node's maxHeaderSize); larger ones get 431. */
const MAX_HEADER_BYTES = 64 * 1024;

export class HttpEntryProxy {
  readonly #opts: HttpEntryProxyOptions;
  readonly #http: http.Server;
  readonly #readTimeoutMs: number;
  readonly #keepalive: boolean;
  readonly #agents = new WeakMap<object, Map<string, TunnelAgent>>();

  constructor(opts: HttpEntryProxyOptions) {
    this.#opts = opts;
    this.#readTimeoutMs = opts.metadata.getDurationMs('entrypoint.readTimeout') || DEFAULTS.entrypointReadTimeoutMs;
    this.#keepalive = opts.metadata.getBool('entrypoint.keepalive') ?? true;
    this.#http = http.createServer(
      {
        headersTimeout: opts.headersTimeoutMs,
        requestTimeout: 0,
        keepAliveTimeout: (opts.metadata.getDurationMs('entrypoint.idleTimeout') || 60_000),
        maxHeaderSize: MAX_HEADER_BYTES,
        noDelay: true,
        // How often headersTimeout is checked (Node's default, 30 s, would let a slow head live
        // up to 30 s past its deadline).
        connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(opts.headersTimeoutMs / 2))),
      },
      (req, res) => this.#onRequest(req, res),
    );
    // This server never listens (connections are handed to it), and Node only starts the
    // headersTimeout checks on 'listening': without them a request head trickled in byte by
    // byte (slowloris) would hold the connection forever.
    this.#http.emit('listening');
    // A client's FIN after its request is a half-close, not a disconnect: the response still
    // goes out (relayHttpExchange passes the FIN on to the upstream).
    (this.#http as http.Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
    this.#http.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => this.#onUpgrade(req, socket, head));
    this.#http.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
      // Not HTTP, or a malformed/oversized head: close without a response (as gost) unless
      // the head was merely too large, which gets 431. One warning per peer and limit a minute.
      const log = this.#connLogs.get(socket) ?? this.#opts.logger;
      const peer = (socket as net.Socket).remoteAddress ?? '';
      const warn = (limit: string, msg: string): void => this.#opts.server.warnings.warn(log, peer, limit, msg);
      if (err.code === 'HPE_HEADER_OVERFLOW') {
        warn('request head size', `entrypoint: request head larger than ${MAX_HEADER_BYTES / 1024} KiB, answered 431`);
        if ((socket as net.Socket).writable) {
          socket.end('HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
          return;
        }
      } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
        warn('entrypoint.sniffTimeout', `entrypoint: no complete request head within ${opts.headersTimeoutMs} ms (entrypoint.sniffTimeout)`);
      } else if (err.code !== 'ECONNRESET') {
        warn('HTTP request format', `entrypoint: bad HTTP request: ${err.message}`);
      }
      destroy(socket);
    });
  }

  readonly #connLogs = new WeakMap<object, Logger>();

  /** Hands a sniffed connection (its first bytes put back) to the HTTP server. */
  handle(socket: net.Socket, log?: Logger): void {
    if (log) this.#connLogs.set(socket, log);
    this.#http.emit('connection', socket);
  }

  /** Stops serving; pooled streams go with their visitor connections, which the entry point closes. */
  close(): void {
    this.#http.close();
  }

  /** The connection's logger (sid, remote, local, client), as the entry point made it. */
  #log(req: http.IncomingMessage): Logger {
    const known = this.#connLogs.get(req.socket);
    if (known) return known;
    const s = req.socket;
    const remote = joinHostPort(s.remoteAddress ?? '', s.remotePort ?? 0);
    return this.#opts.logger.child({ remote, client: remote, local: joinHostPort(s.localAddress ?? '', s.localPort ?? 0) });
  }

  /** Routes `dst` ("host:port"): the ingress lookup strips the port. */
  #route(dst: string): { ok: true; tunnelId: string } | { ok: false; status: 502; reason: string } {
    const r = this.#opts.server.lookupPublic(dst, this.#opts.ingress);
    if (!r) return { ok: false, status: 502, reason: `no route to host ${dst}` };
    if (r.private) return { ok: false, status: 502, reason: `tunnel ${r.tunnelId} is private for host ${dst}` };
    return { ok: true, tunnelId: r.tunnelId };
  }

  /** gost's per-request lines: `<remote> <-> host` now, `<remote> >-< host` when it ends. */
  #requestLog(req: http.IncomingMessage, res: http.ServerResponse, log: Logger, dst: string): void {
    if (!log.isLevelEnabled('debug')) return;
    const sock = req.socket;
    const started = Date.now();
    const read0 = sock.bytesRead;
    const written0 = sock.bytesWritten;
    const remote = joinHostPort(sock.remoteAddress ?? '', sock.remotePort ?? 0);
    const hostOnly = dst.replace(/:\d+$/, '');
    log.debug({ host: dst }, `${remote} <-> ${hostOnly}`);
    res.once('close', () => {
      log.debug(
        {
          host: dst,
          duration: Date.now() - started,
          inputBytes: sock.bytesRead - read0,
          outputBytes: sock.bytesWritten - written0,
        },
        `${remote} >-< ${hostOnly}`,
      );
    });
  }

  #onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const host = req.headers.host ?? '';
    const dst = hostWithPort(host, 80);
    const log = this.#log(req);
    this.#requestLog(req, res, log, dst);
    const route = this.#route(dst);
    if (!route.ok) {
      log.error(route.reason);
      req.resume();
      failResponse(res, route.status);
      return;
    }
    const fwd = req.headers['gost-forwarded-node'];
    if (typeof fwd === 'string' && fwd.includes(this.#opts.server.nodeId)) {
      log.error('forwarding loop detected');
      req.resume();
      failResponse(res, 503);
      return;
    }
    const peer = joinHostPort(req.socket.remoteAddress ?? '', req.socket.remotePort ?? 0);
    const src = clientAddr(req.headers, peer);
    const open = (): Duplex => this.#opts.server.openTunnelStream(route.tunnelId, 'tcp', src, dst);
    let upReq: http.ClientRequest;
    // A client that closes after this request (Connection: close, HTTP/1.0) has no next
    // request to keep a stream for: one stream for this request, as gost does.
    const keep = this.#keepalive && res.shouldKeepAlive;
    const headers = buildUpstreamHeaders(req, {
      sid: newSid(),
      nodeId: this.#opts.server.nodeId,
      keepalive: keep,
    });
    const base = { method: req.method, path: req.url, headers, setHost: false };
    const pooled = (): http.ClientRequest =>
      http.request({ ...base, agent: this.#agentFor(req.socket, `${route.tunnelId}|${dst.toLowerCase()}|${src}`, open) });
    try {
      if (keep) {
        upReq = pooled();
      } else {
        const stream = open();
        upReq = http.request({ ...base, createConnection: () => socketLike(stream) });
      }
    } catch (err) {
      log.error((err as Error).message);
      req.resume();
      failResponse(res, 503);
      return;
    }
    relayHttpExchange(req, res, upReq, {
      log,
      readTimeoutMs: this.#readTimeoutMs,
      what: `tunnel ${route.tunnelId}`,
      retry: keep ? pooled : undefined,
    });
  }

  /**
   * The streams a visitor connection keeps for its requests, by tunnel, host and client address
   * (the client routes a stream by the host in its header and reports its client address).
   * They are closed with the visitor connection.
   */
  #agentFor(socket: object, key: string, open: () => Duplex): TunnelAgent {
    let agents = this.#agents.get(socket);
    if (!agents) {
      const map = new Map<string, TunnelAgent>();
      agents = map;
      this.#agents.set(socket, map);
      (socket as Duplex).once('close', () => {
        for (const a of map.values()) a.destroy();
        map.clear();
      });
    }
    let a = agents.get(key);
    if (!a) {
      if (agents.size >= MAX_AGENTS_PER_CONNECTION) {
        const [oldKey, oldest] = agents.entries().next().value as [string, TunnelAgent];
        oldest.destroy();
        agents.delete(oldKey);
      }
      a = new TunnelAgent(open);
      agents.set(key, a);
    }
    return a;
  }

  /** `Upgrade` requests (WebSocket): forward the head, then splice both ways. */
  #onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const host = req.headers.host ?? '';
    const dst = hostWithPort(host, 80);
    const log = this.#log(req);
    const route = this.#route(dst);
    if (!route.ok) {
      log.error(route.reason);
      socket.end(`HTTP/1.1 ${route.status} Bad Gateway\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    const peer = joinHostPort((socket as net.Socket).remoteAddress ?? '', (socket as net.Socket).remotePort ?? 0);
    let stream: Duplex;
    try {
      stream = this.#opts.server.openTunnelStream(route.tunnelId, 'tcp', clientAddr(req.headers, peer), dst);
    } catch (err) {
      log.error((err as Error).message);
      socket.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const headText = requestHead(req, [['Gost-Forwarded-Node', this.#opts.server.nodeId]], new Set(['gost-forwarded-node']));
    stream.write(headText);
    if (head.length) stream.write(head);
    void this.#opts.server.splice(socket, stream, peer, log);
  }
}
