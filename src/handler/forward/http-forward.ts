/**
 * Sniffed HTTP, proxied per request (behavior.md §5.2, §7.1): a connection carrying HTTP/1.x
 * is parsed request by request and each request goes to the upstream its own `Host` selects,
 * as gost's sniffing handlers do — so a keep-alive connection whose requests name different
 * hosts reaches different targets. Upgrades (WebSocket) are spliced after the head.
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
  socketLike,
} from '../../io/http-relay';
import { BurrowError } from '../../core/errors';

export interface HttpForwardContext {
  /** Opens the upstream for a request target ("host:port"). Reject: 502 (no node) or 503. */
  open(target: string): Promise<Duplex>;
  log: Logger;
  readTimeoutMs: number;
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
    ctx.open(target).then(
      (up) => {
        const upReq = http.request({
          method: req.method,
          path: req.url,
          headers: forwardableHeaders(req, 'keep-alive'),
          setHost: false,
          createConnection: () => socketLike(up),
        });
        // One upstream connection per request: release it once the exchange is over.
        res.once('close', () => destroy(up));
        relayHttpExchange(req, res, upReq, { log: ctx.log, readTimeoutMs: ctx.readTimeoutMs, what: target });
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
    ctx.open(target).then(
      (up) => {
        up.write(requestHead(req));
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
