/**
 * One visitor connection of the entry point's HTTP side: reads request heads (head.ts) and
 * bodies from the socket, routes each request by its Host, sends it down a tunnel stream
 * (upstream.ts, kept per connection and between connections by idle-pool.ts) and hands the
 * stream's bytes to the request's exchange (exchange.ts), one request at a time (pipelined ones
 * wait their turn, with a bound on what is buffered). Every direction has backpressure; one
 * deadline at a time (deadlines.ts).
 */
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { abort, destroy } from '../../../../io/pipe';
import { newSid } from '../../../../service/service';
import type { HttpRequestHead } from '../../../../protocol/sniff/http';
import type { BodyFraming } from '../../../../protocol/http/response';
import {
  MAX_HEADER_BYTES,
  TOO_LARGE_RESPONSE,
  planRequest,
  readRequestHead,
  type RequestPlan,
  type HeadRead,
  errorResponse,
  upgradeRequestHead,
  upstreamRequestHead,
} from './head';
import { edgeStep } from './edge';
import { Exchange, requestLog, type ExchangeHost } from './exchange';
import { Deadline, Deadlines, deadlinePassed } from './deadlines';
import { attachVisitor, destroyOnFinish, stopReading, type VisitorEvents } from './visitor';
import { ConnectionStreams } from './idle-pool';
import type { Upstream, UpstreamOwner } from './upstream';
import type { ConnectionHost } from './host';

/** Bytes of later (pipelined) requests buffered while one is served; beyond it reading pauses. */
const MAX_PIPELINED_BYTES = 64 * 1024;

export class EntryConnection implements ExchangeHost, UpstreamOwner, VisitorEvents {
  readonly #p: ConnectionHost;
  readonly socket: net.Socket;
  readonly log: Logger;
  /** The visitor's address ("host:port"). */
  readonly peer: string;
  #buf: Buffer | undefined;
  /** The request line of the pending head was checked (garbage is refused before a whole head). */
  #lineChecked = false;
  #ex: Exchange | undefined;
  readonly #streams = new ConnectionStreams();
  #clientEnded = false;
  #closing = false;
  /** The entry point is shutting down: this connection ends after its current exchange. */
  #draining = false;
  #closed = false;
  get draining(): boolean {
    return this.#draining;
  }
  /** Reading from the visitor is paused because a stream is full. */
  #waitUpstreamDrain = false;
  #paused = false;
  readonly #deadlines = new Deadlines((kind) => this.#expired(kind));

  /** `secure`: the visitor's TLS was terminated here (`socket` is the TLSSocket). */
  constructor(host: ConnectionHost, socket: net.Socket, peer: string, log: Logger, readonly secure = false) {
    this.#p = host;
    this.socket = socket;
    this.log = log;
    this.peer = peer;
  }

  start(first?: Buffer): void {
    const s = this.socket;
    attachVisitor(s, this);
    this.#arm(Deadline.Head, this.#p.headersTimeoutMs);
    // 'data' comes a tick after resume(): `first` is read before anything later.
    s.resume();
    if (first !== undefined) this.socketData(first);
    if (s.readableEnded) this.socketEnd();
  }

  destroy(): void {
    destroy(this.socket);
    this.socketClose();
  }

  /** Cuts the visitor's connection abnormally (TCP RST): a response that cannot be completed. */
  reset(): void {
    abort(this.socket);
    this.socketClose();
  }

  /** Shutdown: closes now when idle between requests, else after the current response. */
  drain(): void {
    if (this.#closed || this.#closing) return;
    const ex = this.#ex;
    if (ex === undefined) {
      if (this.#buf === undefined || this.#buf.length === 0) this.#finish();
      else this.#draining = true;
      return;
    }
    this.#draining = true;
    // Before the response head goes out, it says `Connection: close`; after, the connection
    // ends with the exchange.
    ex.keepClient = false;
  }

  // --- the visitor side ---------------------------------------------------------------------

  socketData(chunk: Buffer): void {
    if (this.#closed) return;
    this.#buf = this.#buf === undefined || this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    this.#pump();
  }

  socketEnd(): void {
    if (this.#clientEnded) return;
    this.#clientEnded = true;
    const ex = this.#ex;
    if (ex && ex.reqDone && !ex.done && (this.#buf === undefined || this.#buf.length === 0)) {
      // A half-close after a request that is already on its way: passed on (see #requestSent).
      ex.noReuse = true;
      ex.up.stream.end();
    }
    this.#pump();
  }

  socketClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#deadlines.stop();
    this.#p.forget(this);
    const ex = this.#ex;
    this.#ex = undefined;
    // A client that went away: the origin sees its stream end (an event stream, a long poll).
    if (ex) {
      ex.ended();
      ex.up.drop();
    }
    // This connection's idle streams wait for later connections from the same client.
    for (const up of this.#streams.takeAll()) this.#p.putIdle(up);
    this.#buf = undefined;
  }

  socketDrain(): void {
    const ex = this.#ex;
    if (ex && !ex.done) ex.up.stream.resume();
  }

  /** Works through what the visitor sent: a new head, or more of the current request's body. */
  #pump(): void {
    for (;;) {
      if (this.#closed || this.#closing) return;
      const ex = this.#ex;
      if (ex) {
        if (!ex.reqDone) {
          if (!this.#forwardBody(ex)) return;
          continue;
        }
        this.#updateReading();
        return;
      }
      const buf = this.#buf;
      if (buf === undefined || buf.length === 0) {
        if (this.#clientEnded) {
          this.#finish();
          return;
        }
        this.#updateReading();
        return;
      }
      if (!this.#startRequest(buf)) return;
    }
  }

  /** Parses and starts the request at the head of the buffer; false while the head is incomplete or the connection ended. */
  #startRequest(buf: Buffer): boolean {
    // Empty lines before a request line are ignored (RFC 9112 §2.2).
    let skip = 0;
    while (skip < buf.length && (buf[skip] === 0x0d || buf[skip] === 0x0a)) skip++;
    if (skip > 0) {
      buf = buf.subarray(skip);
      this.#buf = buf;
      if (buf.length === 0) return true;
    }
    if (this.#deadlines.kind !== Deadline.Head) this.#arm(Deadline.Head, this.#p.headersTimeoutMs);
    let read: HeadRead;
    try {
      read = readRequestHead(buf, this.#lineChecked);
    } catch (err) {
      this.#badRequest(err);
      return false;
    }
    if (read.kind === 'too-large') return this.#tooLarge();
    if (read.kind === 'partial') {
      this.#lineChecked = read.lineChecked;
      if (this.#clientEnded) {
        this.log.debug('entrypoint: connection closed before a complete request head');
        this.destroy();
      }
      return false;
    }
    const head = read.head;
    this.#lineChecked = false;
    this.#buf = buf.length === head.headEnd ? undefined : buf.subarray(head.headEnd);
    this.#deadlines.disarm();
    this.#request(head);
    return true;
  }

  #badRequest(err: unknown): void {
    this.#p.warn(this.log, this.peer, 'HTTP request format', `entrypoint: bad HTTP request: ${(err as Error).message}`);
    this.destroy();
  }

  #tooLarge(): false {
    this.#p.warn(this.log, this.peer, 'request head size', `entrypoint: request head larger than ${MAX_HEADER_BYTES / 1024} KiB, answered 431`);
    this.#closing = true;
    this.#deadlines.disarm();
    this.socket.end(TOO_LARGE_RESPONSE);
    this.#closeAfterWrite();
    return false;
  }

  /** Routes one request and sends it down a stream, or answers it with an error. */
  #request(head: HttpRequestHead): void {
    const p = this.#p;
    let plan: RequestPlan;
    try {
      plan = planRequest(head, p.nodeId);
    } catch (err) {
      this.#badRequest(err);
      return;
    }
    if (head.method === 'CONNECT') {
      this.log.debug('entrypoint: CONNECT requests are not proxied; closing');
      this.destroy();
      return;
    }
    const edged = p.edge === undefined ? head : edgeStep(p.edge, this, head, plan);
    if (edged === undefined) return;
    head = edged;
    const { body: reqBody, upgrade, dst } = plan;
    const keepClient = plan.keepClient && !this.#draining;
    const onEnd = requestLog(this.log, this.socket, this.peer, dst);
    const route = p.route(dst);
    if (!route.ok || plan.loop) {
      const { status, reason } = route.ok ? { status: 503, reason: 'forwarding loop detected' } : route;
      this.log.error(reason);
      // A host no tunnel serves is counted without its name (visitors choose it freely).
      if (route.ok) p.countRequest(route.tunnelId, dst, String(status));
      else p.countRequest('', '', String(status));
      this.#fail(status, head, keepClient && !upgrade, reqBody, onEnd);
      return;
    }
    const src = p.clientOf(head.headers, this.peer);
    if (upgrade) {
      this.#upgrade(head, route.tunnelId, src, dst, onEnd, !plan.forwarded);
      return;
    }
    // With entrypoint.keepalive a keep-alive client keeps its stream for its next requests,
    // and a stream whose exchange is over waits (SHARED_IDLE_MS) for a later connection of the
    // same client IP, so a client that closes after each request (Connection: close, HTTP/1.0)
    // still reuses streams and origin connections. Without it: one stream per request, as gost.
    // Either way the connector is picked per request (weights, weight 255, failover) and only
    // then is an idle stream of that connector reused: a keep-alive connection keeps one stream
    // per connector it was sent to.
    const keep = p.keepalive;
    let got: { up: Upstream; reused: boolean; key: string | undefined };
    try {
      got = p.streamFor(this.#streams, keepClient, route.tunnelId, src, dst, this.peer, !plan.forwarded);
    } catch (err) {
      this.log.error((err as Error).message);
      p.countRequest(route.tunnelId, dst, '503');
      this.#fail(503, head, keepClient, reqBody, onEnd);
      return;
    }
    const { up, reused, key } = got;
    up.owner = this;
    const headText = upstreamRequestHead(head, { sid: newSid(), nodeId: p.nodeId, keepalive: keep });
    const forwardable = !plan.forwarded;
    const ex = new Exchange(this, { up, head, headText, tunnelId: route.tunnelId, dst, key, reused, keepClient, reqBody, keepalive: keep, forwardable, onEnd });
    this.#ex = ex;
    this.#arm(Deadline.Response, p.readTimeoutMs);
    if (ex.reqDone) {
      up.stream.write(headText);
      this.requestSent(ex);
    } else if (!up.stream.write(headText)) {
      // The body follows from #pump, as the stream takes it.
      this.#waitUpstreamDrain = true;
    }
  }

  /**
   * Forwards body bytes of the current request from the buffer. Returns false when it has to
   * wait (no bytes, or a full stream), true when the body is complete.
   */
  #forwardBody(ex: Exchange): boolean {
    if (this.#waitUpstreamDrain) {
      this.#updateReading();
      return false;
    }
    const buf = this.#buf;
    if (buf === undefined || buf.length === 0) {
      if (this.#clientEnded) {
        // The client closed in the middle of its body: the request cannot complete.
        this.log.debug('entrypoint: connection closed in the middle of a request body');
        this.destroy();
      }
      this.#updateReading();
      return false;
    }
    let n: number;
    try {
      n = ex.requestBody(buf);
    } catch (err) {
      this.#badRequest(err);
      return false;
    }
    const part = n === buf.length ? buf : buf.subarray(0, n);
    this.#buf = n === buf.length ? undefined : buf.subarray(n);
    if (ex.done) {
      // The response already came (an early answer): the rest of the body is dropped.
      if (ex.reqDone) ex.complete();
      return true;
    }
    if (!ex.up.stream.write(part)) this.#waitUpstreamDrain = true;
    // `entrypoint.readTimeout` counts from the last body bytes (Go's ResponseHeaderTimeout
    // starts once the request is written): an upload may take as long as it keeps moving.
    this.#arm(Deadline.Response, this.#p.readTimeoutMs);
    if (ex.reqDone) this.requestSent(ex);
    return true;
  }

  upstreamDrain(): void {
    if (!this.#waitUpstreamDrain) return;
    this.#waitUpstreamDrain = false;
    this.#pump();
  }

  /**
   * The whole request is on the stream. A client that half-closed after it (FIN) has its FIN
   * passed on now, so the origin decides, as it would facing the client directly; only the
   * connection's last request does that (a pipelined earlier one must not end a stream).
   */
  requestSent(ex: Exchange): void {
    if (this.#clientEnded && (this.#buf === undefined || this.#buf.length === 0) && !ex.done) {
      ex.noReuse = true;
      ex.up.stream.end();
    }
    this.#updateReading();
  }

  // --- the tunnel side ----------------------------------------------------------------------

  upstreamData(up: Upstream, chunk: Buffer): void {
    const ex = this.#ex;
    // Bytes from a stream with no request on it (an origin talking out of turn): dropped.
    if (!ex || ex.up !== up || ex.done) this.#stray(up);
    else ex.responseData(chunk);
  }

  /** A stream that is not the current exchange's spoke or ended: closed. */
  #stray(up: Upstream): void {
    this.#streams.forget(up);
    up.drop();
  }

  countRequest(tunnelId: string, host: string, code: string): void {
    this.#p.countRequest(tunnelId, host, code);
  }

  responseStarted(): void {
    if (this.#deadlines.kind === Deadline.Response) this.#deadlines.disarm();
  }

  /** The stream ended or failed during the current exchange (or while idle in the pool). */
  upstreamEnd(up: Upstream, err: Error | undefined): void {
    const ex = this.#ex;
    if (!ex || ex.up !== up) this.#stray(up);
    else ex.streamEnded(err);
  }

  exchangeGone(ex: Exchange): void {
    if (this.#ex === ex) this.#ex = undefined;
  }

  keepStream(key: string, up: Upstream): void {
    this.#streams.put(key, up);
  }

  get clientEnded(): boolean {
    return this.#clientEnded;
  }

  openUpstream(tunnelId: string, src: string, dst: string, forwardable: boolean): Upstream {
    return this.#p.openUpstream(tunnelId, src, dst, this.peer, undefined, forwardable);
  }

  clientOf(headers: ReadonlyArray<readonly [string, string]>): string {
    return this.#p.clientOf(headers, this.peer);
  }

  putIdle(up: Upstream): void {
    this.#p.putIdle(up);
  }

  continueOrFinish(keep: boolean): void {
    if (!keep) {
      this.#finish();
      return;
    }
    this.#next();
  }

  #next(): void {
    if (this.socket.destroyed) return;
    this.#arm(this.#buf !== undefined && this.#buf.length > 0 ? Deadline.Head : Deadline.Idle, 0);
    this.#updateReading();
    this.#pump();
  }

  /** An error response for a request that gets no stream; the visitor connection stays open when it can. */
  #fail(status: number, head: HttpRequestHead, keepClient: boolean, body: BodyFraming, onEnd: (() => void) | undefined): void {
    // A request whose body we would have to skip ends the connection after the answer.
    const keep = keepClient && body.kind === 'none' && !this.#clientEnded;
    this.answer(errorResponse(status, head.version, !keep), keep, onEnd);
  }

  /** Answers the current request here; the connection goes on when `keep`. */
  answer(response: string, keep: boolean, onEnd?: () => void): void {
    this.socket.write(response);
    onEnd?.();
    this.continueOrFinish(keep);
  }

  /** `Upgrade` requests (WebSocket): the head goes down a new stream, then bytes are spliced both ways. */
  #upgrade(head: HttpRequestHead, tunnelId: string, src: string, dst: string, onEnd: (() => void) | undefined, forwardable: boolean): void {
    let stream: Duplex;
    try {
      stream = this.#p.openTunnelStream(tunnelId, src, dst, forwardable, this.peer);
    } catch (err) {
      this.log.error((err as Error).message);
      this.#p.countRequest(tunnelId, dst, '503');
      this.#fail(503, head, false, { kind: 'none' }, onEnd);
      return;
    }
    // The answer passes through the splice unread: counted as an upgrade handed to the tunnel.
    this.#p.countRequest(tunnelId, dst, 'upgrade');
    stream.write(upgradeRequestHead(head, this.#p.nodeId));
    onEnd?.();
    this.#detachAndSplice(stream);
  }

  spliceCurrent(ex: Exchange, rest: Buffer): void {
    ex.done = true;
    this.#ex = undefined;
    ex.up.detach();
    if (rest.length > 0) this.socket.write(rest);
    ex.ended();
    this.#detachAndSplice(ex.up.stream);
  }

  #detachAndSplice(stream: Duplex): void {
    this.#closing = true;
    this.#deadlines.stop();
    const s = this.socket;
    stopReading(s);
    if (this.#buf !== undefined && this.#buf.length > 0) stream.write(this.#buf);
    this.#buf = undefined;
    if (this.#clientEnded) stream.end();
    // The splice owns both now; 'close' still tidies this connection's pool.
    this.#p.splice(s, stream, this.peer, this.log);
  }

  /** After a last response: the socket closes once its bytes are out (or at once if they never go). */
  #closeAfterWrite(): void {
    const s = this.socket;
    if (s.destroyed) return;
    destroyOnFinish(s);
    this.#arm(Deadline.Flush, this.#p.readTimeoutMs);
  }

  /** No more requests on this connection: it ends once what was written has gone out. */
  #finish(): void {
    this.#closing = true;
    this.#deadlines.disarm();
    this.socket.end();
    this.#closeAfterWrite();
  }

  // --- reading and deadlines --------------------------------------------------------------------

  /** Reads from the visitor unless a stream is full or enough later requests are buffered. */
  #updateReading(): void {
    if (this.#closed) return;
    const ex = this.#ex;
    const hold =
      this.#waitUpstreamDrain || (ex !== undefined && ex.reqDone && this.#buf !== undefined && this.#buf.length > MAX_PIPELINED_BYTES);
    if (hold && !this.#paused) {
      this.#paused = true;
      this.socket.pause();
    } else if (!hold && this.#paused) {
      this.#paused = false;
      this.socket.resume();
    }
  }

  /** Arms a deadline: Idle is `entrypoint.idleTimeout`; Head with 0 is `entrypoint.sniffTimeout`. */
  #arm(kind: Deadline, ms: number): void {
    if (kind === Deadline.Idle) ms = this.#p.idleTimeoutMs;
    else if (kind === Deadline.Head && ms === 0) ms = this.#p.headersTimeoutMs;
    this.#deadlines.arm(kind, ms);
  }

  #expired(kind: Deadline): void {
    if (!this.#closed) deadlinePassed(kind, this, this.#p, this.#ex);
  }
}
