/**
 * HTTP/2 for visitors of terminated TLS (ALPN `h2`, docs/https.md): Node's HTTP/2 session over
 * the TLSSocket, and each request goes on through the tunnel as HTTP/1.1 on a stream of its own
 * (routed by its `:authority` as an HTTP/1.1 request by its Host; the tunnel client and the
 * origin see HTTP/1.1, as from the HTTP/1.1 side). Bodies stream both ways with flow control
 * (uploads, downloads, server-sent events). Each session takes at most `MAX_H2_STREAMS`
 * concurrent streams: a client that opens more gets them refused (RST_STREAM REFUSED_STREAM),
 * so a flood of streams is bounded in memory. WebSocket over HTTP/2 (RFC 8441) is not offered:
 * clients open WebSockets on an HTTP/1.1 connection.
 */
import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { destroy } from '../../../../io/pipe';
import { HOP_BY_HOP, hostWithPort } from '../../../../io/http-relay';
import { newSid } from '../../../../service/service';
import type { HttpRequestHead } from '../../../../protocol/sniff/http';
import { withForwardedHeaders, type HttpEdgeOptions } from './edge';
import type { HostedConnection } from './host';

/** Concurrent streams a visitor's HTTP/2 session may have open (SETTINGS_MAX_CONCURRENT_STREAMS). */
export const MAX_H2_STREAMS = 100;

/** What the HTTP/2 side needs of the entry point's HTTP side (proxy.ts). */
export interface H2Host {
  readonly nodeId: string;
  readonly readTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly edge: HttpEdgeOptions | undefined;
  route(dst: string): { ok: true; tunnelId: string } | { ok: false; status: 502; reason: string };
  openTunnelStream(tunnelId: string, src: string, dst: string): Duplex;
  /** The client address for the stream header (forwarded-for headers as `entrypoint.trustedProxies` allows). */
  clientOf(headers: ReadonlyArray<readonly [string, string]>, peer: string): string;
  track(conn: HostedConnection): void;
  forget(conn: HostedConnection): void;
}

/** Headers of HTTP/2 that are not passed on as HTTP/1.1 fields (and the ones we set). */
const DROP_REQUEST = new Set([...HOP_BY_HOP, 'host', 'gost-forwarded-node', 'http2-settings']);
const DROP_RESPONSE = new Set([...HOP_BY_HOP]);

/** The one HTTP/2 server object: sessions are made from sockets handed to it, it never listens. */
let h2server: http2.Http2Server | undefined;
function serverFor(): http2.Http2Server {
  h2server ??= http2.createServer({
    settings: { maxConcurrentStreams: MAX_H2_STREAMS, enableConnectProtocol: false },
    // Bounds what one session may hold in nghttp2's buffers (MiB).
    maxSessionMemory: 16,
  });
  return h2server;
}

/** One visitor's HTTP/2 connection. */
class H2Connection implements HostedConnection {
  session: http2.ServerHttp2Session | undefined;
  constructor(
    readonly host: H2Host,
    readonly socket: net.Socket,
    readonly peer: string,
    readonly log: Logger,
  ) {}

  destroy(): void {
    this.session?.destroy();
    destroy(this.socket);
  }

  /** Shutdown: GOAWAY; streams in flight finish. */
  drain(): void {
    this.session?.close();
  }
}

/** Serves a terminated TLS connection that chose `h2` by ALPN. */
export function serveH2(host: H2Host, socket: net.Socket, peer: string, log: Logger): void {
  const conn = new H2Connection(host, socket, peer, log);
  host.track(conn);
  const server = serverFor();
  const onSession = (session: http2.ServerHttp2Session): void => {
    conn.session = session;
  };
  // The server makes the session synchronously in its 'connection' handler.
  server.once('session', onSession);
  server.emit('connection', socket);
  server.off('session', onSession);
  const session = conn.session;
  if (session === undefined) {
    destroy(socket);
    host.forget(conn);
    return;
  }
  session.on('error', (err) => log.debug(`entrypoint: h2 session: ${err.message}`));
  session.setTimeout(host.idleTimeoutMs, () => session.close());
  session.on('close', () => {
    host.forget(conn);
    destroy(socket);
  });
  session.on('stream', (stream, headers) => onStream(conn, stream, headers));
}

function respondError(stream: http2.ServerHttp2Stream, status: number): void {
  if (stream.destroyed || stream.closed) return;
  if (!stream.headersSent) stream.respond({ ':status': status, 'content-length': '0' }, { endStream: true });
  else stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
}

function onStream(conn: H2Connection, stream: http2.ServerHttp2Stream, h: http2.IncomingHttpHeaders): void {
  const { host, log, peer } = conn;
  stream.on('error', () => undefined);
  const method = String(h[':method'] ?? 'GET');
  const authority = String(h[':authority'] ?? h.host ?? '');
  const path = String(h[':path'] ?? '/');
  if (method === 'CONNECT' || authority === '') {
    respondError(stream, 400);
    return;
  }
  const pairs: Array<[string, string]> = [];
  for (const [k, v] of Object.entries(h)) {
    if (k.startsWith(':') || v === undefined || DROP_REQUEST.has(k)) continue;
    // Cookies come as several fields in HTTP/2; HTTP/1.1 joins them with "; " (RFC 9113 §8.2.3).
    if (k === 'cookie' && Array.isArray(v)) pairs.push([k, v.join('; ')]);
    else for (const x of Array.isArray(v) ? v : [v]) pairs.push([k, x]);
  }
  const fwdNode = h['gost-forwarded-node'];
  if (fwdNode !== undefined && String(fwdNode).includes(host.nodeId)) {
    log.error('forwarding loop detected');
    respondError(stream, 503);
    return;
  }
  const dst = hostWithPort(authority, 80);
  const route = host.route(dst);
  if (!route.ok) {
    log.error(route.reason);
    respondError(stream, route.status);
    return;
  }
  let head: HttpRequestHead = {
    complete: true,
    method,
    path,
    version: 'HTTP/1.1',
    headers: pairs,
    host: authority,
    hostname: authority.replace(/:\d+$/, ''),
    port: undefined,
    headEnd: 0,
  };
  if (host.edge !== undefined && host.edge.forwarded !== 'none') head = withForwardedHeaders(head, peer, true, host.edge.trusted);
  const src = host.clientOf(head.headers, peer);
  let tunnel: Duplex;
  try {
    tunnel = host.openTunnelStream(route.tunnelId, src, dst);
  } catch (err) {
    log.error((err as Error).message);
    respondError(stream, 503);
    return;
  }
  const headers: Array<[string, string]> = [['Host', authority], ...head.headers, ['Gost-Sid', newSid()], ['Gost-Forwarded-Node', host.nodeId], ['Connection', 'close']];
  const req = http.request({
    method,
    path,
    setHost: false,
    // No agent: the request goes on this stream (createConnection), which ends with it.
    createConnection: () => tunnel as net.Socket,
    headers: headers.flat(),
  });
  // `entrypoint.readTimeout` counts from the end of the request body, as Go's
  // ResponseHeaderTimeout: an upload may take as long as it takes.
  let timer: NodeJS.Timeout | undefined;
  let responded = false;
  req.on('finish', () => {
    if (req.destroyed || responded) return;
    timer = setTimeout(() => {
      log.error(`no response from tunnel ${route.tunnelId} within ${host.readTimeoutMs} ms`);
      req.destroy();
      respondError(stream, 503);
    }, host.readTimeoutMs);
    timer.unref();
  });
  req.on('error', (err) => {
    clearTimeout(timer);
    log.debug(`entrypoint: h2 request to ${dst}: ${err.message}`);
    respondError(stream, 503);
    destroy(tunnel);
  });
  req.on('response', (res) => {
    responded = true;
    clearTimeout(timer);
    const out: http2.OutgoingHttpHeaders = { ':status': res.statusCode ?? 502 };
    for (let i = 0; i < res.rawHeaders.length; i += 2) {
      const k = res.rawHeaders[i]!.toLowerCase();
      if (DROP_RESPONSE.has(k)) continue;
      const v = res.rawHeaders[i + 1]!;
      const prev = out[k];
      out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [String(prev), v];
    }
    if (stream.destroyed || stream.closed) {
      res.destroy();
      return;
    }
    const bodyless = method === 'HEAD' || res.statusCode === 204 || res.statusCode === 304;
    stream.respond(out, { endStream: bodyless });
    if (bodyless) {
      res.resume();
      return;
    }
    res.pipe(stream);
    res.on('error', () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
    res.on('aborted', () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
  });
  // The visitor went away or reset the stream: the origin sees its request end.
  stream.on('close', () => {
    clearTimeout(timer);
    if (!req.writableFinished || !stream.writableFinished) req.destroy();
  });
  stream.pipe(req);
}
