/**
 * Sniffed HTTP, proxied per request (behavior.md §5.2, §7.1): a connection carrying HTTP/1.x
 * is parsed request by request and each request goes to the upstream its own `Host` selects,
 * as gost's sniffing handlers do — so a keep-alive connection whose requests name different
 * hosts reaches different targets. Upgrades (WebSocket) are spliced after the head. The node a
 * request goes to may rewrite it (node-http.ts): Host, headers, Basic auth, URL path.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { destroy, relay } from '../../io/pipe';
import {
  failResponse,
  forwardableHeaders,
  hostWithPort,
  relayHttpExchange,
  requestHead,
  setHeaders,
  socketLike,
} from '../../io/http-relay';
import { BurrowError } from '../../core/errors';
import { REWRITE_BODY_MAX_BYTES, basicAuthOk, bodyRewriter, rewriteUrl, type NodeHttp } from '../../forward/node-http';
import type { MatchInput } from '../../forward/matcher';
import type { ForwardNode, Forwarder } from '../../forward/selector';

export interface HttpRoute {
  http?: NodeHttp;
  open(): Promise<Duplex>;
}

/** What a sniffed HTTP request shows the forwarder's rules. */
export function requestMatchInput(req: http.IncomingMessage, clientIP: string): MatchInput {
  return { proto: 'http', method: req.method, url: req.url, headers: req.headers, clientIP };
}

/**
 * The route of a request to a chosen node (or to none: `target` undefined): the node's HTTP
 * settings, and opening the upstream with `dial`, marking the node failed or fine.
 */
export function nodeRoute(
  forwarder: Forwarder,
  node: ForwardNode | undefined,
  target: string | undefined,
  host: string,
  dial: (target: string, node: ForwardNode | undefined) => Promise<Duplex>,
): HttpRoute {
  return {
    http: node?.http,
    open: async () => {
      if (!target) throw new BurrowError('BURROW_ERR_DIAL', `node not available for host ${host}`);
      try {
        const up = await dial(target, node);
        if (node) forwarder.markOk(node);
        return up;
      } catch (err) {
        if (node) forwarder.markFailed(node);
        throw err;
      }
    },
  };
}

export interface HttpForwardContext {
  /**
   * Where a request target ("host:port") goes: the chosen node's HTTP settings, if any, and how
   * to open the upstream to it (a rejection means 502: no node, or 503).
   */
  route(target: string, req: http.IncomingMessage): HttpRoute;
  log: Logger;
  readTimeoutMs: number;
}

/** The headers a node sets on requests: its Host, then its request headers. */
function headerRewrites(nh: NodeHttp): Array<[string, string]> {
  const set: Array<[string, string]> = [];
  if (nh.host) set.push(['Host', nh.host]);
  if (nh.requestHeader) set.push(...nh.requestHeader);
  return set;
}

function rewriteHeaders(headers: Record<string, string | string[]>, nh: NodeHttp): void {
  const set = headerRewrites(nh);
  if (set.length) setHeaders(headers, set);
  // A body to rewrite must come uncompressed.
  if (nh.rewriteBody) for (const k of Object.keys(headers)) if (k.toLowerCase() === 'accept-encoding') delete headers[k];
}

export class HttpForwarder {
  readonly #server: http.Server;
  readonly #ctx = new WeakMap<object, HttpForwardContext>();

  constructor(opts: { headersTimeoutMs: number; idleTimeoutMs?: number }) {
    this.#server = http.createServer(
      { headersTimeout: opts.headersTimeoutMs, requestTimeout: 0, keepAliveTimeout: opts.idleTimeoutMs ?? 60_000, maxHeaderSize: 64 * 1024 },
      (req, res) => this.#onRequest(req, res),
    );
    this.#server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => this.#onUpgrade(req, socket, head));
    this.#server.on('clientError', (_err: Error, socket: Duplex) => destroy(socket));
    // A client's FIN after its request is a half-close, not a disconnect: the response still
    // goes out (relayHttpExchange passes the FIN on to the upstream).
    (this.#server as http.Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  }

  /** Serves one connection (its sniffed bytes put back); resolves when it is closed. */
  serve(stream: Duplex, ctx: HttpForwardContext): Promise<void> {
    return new Promise((resolve) => {
      const sock = socketLike(stream);
      this.#ctx.set(sock, ctx);
      stream.once('close', () => resolve());
      this.#server.emit('connection', sock);
    });
  }

  /**
   * 502 when there is no route (no node for the host; the server refused the host: relay
   * status 0x03, 0x06 or 0x07), 503 when the route exists but nothing answers.
   */
  #status(err: unknown): number {
    const relayStatus = (err as { status?: unknown } | null)?.status;
    if (relayStatus === 0x03 || relayStatus === 0x06 || relayStatus === 0x07) return 502;
    return err instanceof BurrowError && err.code === 'BURROW_ERR_DIAL' && /node not available/.test(err.message) ? 502 : 503;
  }

  #onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const ctx = this.#ctx.get(req.socket);
    if (!ctx) {
      failResponse(res, 502);
      return;
    }
    const target = hostWithPort(req.headers.host ?? '', 80);
    const route = ctx.route(target, req);
    const nh = route.http;
    if (nh?.authDigest && !basicAuthOk(req, nh.authDigest)) {
      req.resume();
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="burrow"', 'Content-Length': '0' });
      res.end();
      return;
    }
    route.open().then(
      (up) => {
        const headers = forwardableHeaders(req, 'keep-alive');
        if (nh) rewriteHeaders(headers, nh);
        const upReq = http.request({
          method: req.method,
          path: nh?.rewriteURL ? rewriteUrl(req.url ?? '/', nh.rewriteURL) : req.url,
          headers,
          setHost: false,
          createConnection: () => socketLike(up),
        });
        // One upstream connection per request: release it once the exchange is over.
        res.once('close', () => destroy(up));
        relayHttpExchange(req, res, upReq, {
          log: ctx.log,
          readTimeoutMs: ctx.readTimeoutMs,
          what: target,
          responseHeaders: nh?.responseHeader,
          rewriteBody: nh?.rewriteBody ? { for: (h) => bodyRewriter(nh, h), maxBytes: REWRITE_BODY_MAX_BYTES } : undefined,
        });
      },
      (err: unknown) => {
        ctx.log.error(`${target}: ${(err as Error).message}`);
        req.resume();
        failResponse(res, this.#status(err));
      },
    );
  }

  #onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const ctx = this.#ctx.get(socket);
    if (!ctx) {
      destroy(socket);
      return;
    }
    const target = hostWithPort(req.headers.host ?? '', 80);
    const route = ctx.route(target, req);
    const nh = route.http;
    if (nh?.authDigest && !basicAuthOk(req, nh.authDigest)) {
      socket.end('HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="burrow"\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    route.open().then(
      (up) => {
        if (nh) {
          const set = headerRewrites(nh);
          const url = nh.rewriteURL ? rewriteUrl(req.url ?? '/', nh.rewriteURL) : req.url;
          up.write(requestHead(req, set, new Set(set.map(([k]) => k.toLowerCase())), url));
        } else {
          up.write(requestHead(req));
        }
        if (head.length) up.write(head);
        void relay(socket, up);
      },
      (err: unknown) => {
        ctx.log.error(`${target}: ${(err as Error).message}`);
        socket.end(`HTTP/1.1 ${this.#status(err)} ${this.#status(err) === 502 ? 'Bad Gateway' : 'Service Unavailable'}\r\nContent-Length: 0\r\n\r\n`);
      },
    );
  }

  close(): void {
    this.#server.close();
  }
}
