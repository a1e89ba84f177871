/**
 * HTTP at a public entry point (behavior.md §4.3): an HTTP/1.1 reverse proxy, not a byte
 * splicer, so every request on a keep-alive connection is routed by its own `Host`.
 *
 * For each request: route by Host (the authority of an absolute-form target wins, as Go's
 * `Request.Host`) through the ingress (or public names); 502 for no route or a private rule,
 * 503 for no connector, a loop, or no response head within `entrypoint.readTimeout` (15 s).
 * The request goes down a tunnel stream whose header carries the client address
 * (CF-Connecting-IP / X-Forwarded-For / X-Real-Ip, else the peer) and `host:80`; its head is
 * written in Go's header order (Host, User-Agent, framing headers, the rest sorted,
 * `Connection`) with `Gost-Sid` and `Gost-Forwarded-Node` set as gost does, and its body is
 * forwarded as it came (chunked framing included). With `entrypoint.keepalive` (burrow's
 * default; gost's is false) each request still picks its connector as a new connection does
 * (weights, weight 255, failover), and a keep-alive client connection keeps its tunnel streams
 * (one per connector, host and client address) for its next requests to that connector; a
 * stream whose exchange is over idles up to SHARED_IDLE_MS for a later connection from the same
 * client IP to the same host on the same connector;
 * `entrypoint.keepalive=false` gives gost's exact bytes (`Connection: close`, one stream per
 * request).
 *
 * The HTTP/1.1 framing is done here, by hand, on the raw socket and stream: heads are parsed
 * by the strict parser of protocol/sniff/http.ts and protocol/http/, bodies are forwarded
 * without copies, one request at a time per connection (pipelined requests wait their turn,
 * with a bound on what is buffered). Every direction has backpressure. No per-request delay:
 * sockets have TCP_NODELAY, and a response head goes out with the body bytes that came with it.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { Metadata } from '../../core/metadata';
import { joinHostPort, stripPort } from '../../core/addr';
import { DEFAULTS } from '../../core/config';
import type { Ingress } from '../../ingress/ingress';
import type { TunnelServer } from './server';
import { abort, destroy } from '../../io/pipe';
import { HOP_BY_HOP, hostWithPort } from '../../io/http-relay';
import { newSid } from '../../service/service';
import { parseHttpRequestHead, type HttpRequestHead } from '../../protocol/sniff/http';
import {
  bodyFraming,
  findHeadEnd,
  headerTokens,
  parseHttpResponseHead,
  type BodyFraming,
  type HttpResponseHead,
} from '../../protocol/http/response';
import { CRLF, ChunkedScanner, LAST_CHUNK, chunkSizeLine } from '../../protocol/http/chunked';
import { IDLE_STREAM, STREAM_CONNECTOR, type ConnectorEntry } from './pool';

export interface HttpEntryProxyOptions {
  server: TunnelServer;
  ingress: Ingress | undefined;
  metadata: Metadata;
  logger: Logger;
  headersTimeoutMs: number;
}

/** The largest request head the entry point reads; larger ones get 431. */
const MAX_HEADER_BYTES = 64 * 1024;
/** Bytes of later (pipelined) requests buffered while one is served; beyond it reading pauses. */
const MAX_PIPELINED_BYTES = 64 * 1024;
/** Stream pools one visitor connection keeps (tunnel × host × client); the oldest goes beyond it. */
const MAX_POOLED_PER_CONNECTION = 16;
/** Idle streams the entry point keeps for later connections, per connector × host × client IP. */
const MAX_IDLE_PER_KEY = 64;
/** Idle streams the entry point keeps for later connections, in all. */
const MAX_IDLE = 1024;
/**
 * How long a stream idles for later connections before it is closed: below the shortest
 * keep-alive timeout common among origins (Node's 5 s), so an origin rarely closes a stream
 * just as a request goes down it.
 */
export const SHARED_IDLE_MS = 4_000;
/** A response body up to this size is written together with its head (one write). */
const JOIN_LIMIT = 16 * 1024;

const canonicalCache = new Map<string, string>();

/** Go's textproto.CanonicalMIMEHeaderKey for ASCII names. */
export function canonicalHeaderKey(name: string): string {
  const hit = canonicalCache.get(name);
  if (hit !== undefined) return hit;
  let out = name;
  if (/^[A-Za-z0-9-]+$/.test(name)) {
    out = name
      .toLowerCase()
      .split('-')
      .map((p) => (p ? p[0]!.toUpperCase() + p.slice(1) : p))
      .join('-');
  }
  if (canonicalCache.size < 2048) canonicalCache.set(name, out);
  return out;
}

/** The client address gost reports for an HTTP request (port 0 when taken from a header). */
export function clientAddr(headers: ReadonlyArray<readonly [string, string]>, peer: string): string {
  const first = (name: string): string | undefined => {
    for (const [k, v] of headers) if (k.length === name.length && k.toLowerCase() === name) return v;
    return undefined;
  };
  const xff = first('x-forwarded-for');
  for (const c of [first('cf-connecting-ip'), xff === undefined ? undefined : xff.split(',')[0], first('x-real-ip')]) {
    const v = c?.trim();
    if (v && net.isIP(v)) return joinHostPort(v, 0);
  }
  return peer;
}

const SKIP_SORTED = new Set(['Host', 'User-Agent', 'Content-Length', 'Transfer-Encoding', 'Trailer']);

/**
 * The proxied request head in Go's Request.Write order: request line (origin form, HTTP/1.1),
 * Host, User-Agent, framing headers, the remaining headers sorted by canonical name (several
 * values of one name as several lines), then Connection.
 */
export function upstreamRequestHead(
  head: HttpRequestHead,
  extra: { sid: string; nodeId: string; keepalive: boolean },
): string {
  const byKey = new Map<string, string[]>();
  for (const [name, value] of head.headers) {
    const key = canonicalHeaderKey(name);
    const lower = key.toLowerCase();
    if (HOP_BY_HOP.has(lower) && lower !== 'transfer-encoding') continue;
    if (lower === 'gost-record') continue;
    const list = byKey.get(key);
    if (list) list.push(value);
    else byKey.set(key, [value]);
  }
  if (!byKey.has('Gost-Sid')) byKey.set('Gost-Sid', [extra.sid]);
  byKey.set('Gost-Forwarded-Node', [extra.nodeId]);
  let out = `${head.method} ${originForm(head.path)} HTTP/1.1\r\n`;
  const host = head.host ?? byKey.get('Host')?.[0];
  if (host !== undefined) out += `Host: ${host}\r\n`;
  out += `User-Agent: ${byKey.get('User-Agent')?.[0] ?? 'Go-http-client/1.1'}\r\n`;
  for (const k of ['Content-Length', 'Transfer-Encoding']) {
    const v = byKey.get(k);
    if (v) for (const x of v) out += `${k}: ${x}\r\n`;
  }
  const rest: string[] = [];
  for (const k of byKey.keys()) if (!SKIP_SORTED.has(k)) rest.push(k);
  sortStrings(rest);
  for (const k of rest) for (const x of byKey.get(k)!) out += `${k}: ${x}\r\n`;
  return `${out}Connection: ${extra.keepalive ? 'keep-alive' : 'close'}\r\n\r\n`;
}

/**
 * Sorts in place as Array.prototype.sort() does (UTF-16 code units). A head has a handful of
 * header names: an insertion sort needs no work array (sort() allocates one every call).
 */
function sortStrings(a: string[]): void {
  if (a.length > 16) {
    a.sort();
    return;
  }
  for (let i = 1; i < a.length; i++) {
    const x = a[i]!;
    let j = i - 1;
    while (j >= 0 && a[j]! > x) {
      a[j + 1] = a[j]!;
      j--;
    }
    a[j + 1] = x;
  }
}

/** "http://host/a?b" → "/a?b" (Go writes the origin form); other targets unchanged. */
function originForm(target: string): string {
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(target);
  if (!m) return target;
  const rest = target.slice(m[0].length);
  return rest === '' ? '/' : rest.startsWith('/') ? rest : `/${rest}`;
}

/** Response headers never passed on as they are (hop-by-hop and the framing we redo). */
const RESPONSE_DROP = new Set([...HOP_BY_HOP]);

const REASONS: Record<number, string> = { 431: 'Request Header Fields Too Large', 502: 'Bad Gateway', 503: 'Service Unavailable' };

/** An empty error response as Go's Response.Write makes it (the request's version). */
function errorResponse(status: number, version: string, close: boolean): string {
  return `${version === 'HTTP/1.0' ? 'HTTP/1.0' : 'HTTP/1.1'} ${status} ${REASONS[status] ?? ''}\r\nContent-Length: 0\r\n${
    close ? 'Connection: close\r\n' : ''
  }\r\n`;
}

const kUpstream = Symbol('burrow.entryUpstream');

/** One request on its way: its stream, framing state both ways, and what happens after it. */
interface Exchange {
  up: Upstream;
  head: HttpRequestHead;
  headText: string;
  tunnelId: string;
  key: string | undefined;
  /** The stream was taken from the pool (it may have been closed by the far side meanwhile). */
  reused: boolean;
  retried: boolean;
  replayable: boolean;
  /** The client keeps its connection after this exchange. */
  keepClient: boolean;
  http10: boolean;
  reqBody: BodyFraming;
  reqLeft: number;
  reqChunks: ChunkedScanner | undefined;
  reqDone: boolean;
  /** Response bytes seen (a retry is only safe before the first). */
  resBytes: number;
  resBuf: Buffer | undefined;
  res: HttpResponseHead | undefined;
  resFraming: BodyFraming;
  resLeft: number;
  resChunks: ChunkedScanner | undefined;
  /** Re-chunk a close-delimited body for a keep-alive client; decode chunks for an HTTP/1.0 one. */
  rechunk: boolean;
  dechunk: boolean;
  /** The stream is not reused: the origin closes, the request was cut, or keep-alive is off. */
  noReuse: boolean;
  done: boolean;
  onEnd: (() => void) | undefined;
}

/** A tunnel stream with its listeners attached once; events go to whichever connection owns it now. */
class Upstream {
  conn: EntryConnection | undefined;
  /** Pool key while the stream idles in its connection's pool. */
  idleKey: string | undefined;
  /** The entry point's idle pool while the stream waits there for a later connection. */
  idlePool: HttpEntryProxy | undefined;
  idleSince = 0;
  /** connector × host × socket peer × client IP: where the stream idles between connections. */
  readonly sharedKey: string;
  constructor(
    readonly stream: Duplex,
    dst: string,
    src: string,
    peer: string,
  ) {
    const entry = (stream as unknown as Record<symbol, ConnectorEntry | undefined>)[STREAM_CONNECTOR];
    this.sharedKey = sharedKeyOf(entry?.id ?? '', dst, src, peer);
    (stream as unknown as Record<symbol, unknown>)[kUpstream] = this;
    stream.on('data', onUpstreamData);
    stream.on('end', onUpstreamEnd);
    stream.on('error', onUpstreamError);
    stream.on('close', onUpstreamClose);
    stream.on('drain', onUpstreamDrain);
  }
}

/**
 * `dst` is lower-case host:port; `src` (the client address, from forwarded headers when sent)
 * and `peer` (the socket's) host:port, of which only the hosts count. The socket's address is
 * part of the key because forwarded headers are the sender's word: a stream never goes to a
 * connection from another address that merely names the same client.
 */
function sharedKeyOf(connectorId: string, dst: string, src: string, peer: string): string {
  return [connectorId, dst, stripPort(peer), stripPort(src)].join('|');
}

function upstreamOf(stream: unknown): Upstream {
  return (stream as Record<symbol, Upstream>)[kUpstream]!;
}
/** Bytes or an end from a stream that no request is on (idle, or an origin talking out of turn). */
function dropIdle(up: Upstream): void {
  up.idlePool?.forgetIdle(up);
  destroy(up.stream);
}
function onUpstreamData(this: Duplex, chunk: Buffer): void {
  const up = upstreamOf(this);
  if (up.conn) up.conn.upstreamData(up, chunk);
  else dropIdle(up);
}
function onUpstreamEnd(this: Duplex): void {
  const up = upstreamOf(this);
  if (up.conn) up.conn.upstreamEnd(up, undefined);
  else dropIdle(up);
}
function onUpstreamError(this: Duplex, err: Error): void {
  const up = upstreamOf(this);
  if (up.conn) up.conn.upstreamEnd(up, err);
  else up.idlePool?.forgetIdle(up);
}
function onUpstreamClose(this: Duplex): void {
  const up = upstreamOf(this);
  if (up.conn) up.conn.upstreamEnd(up, new Error('tunnel stream closed'));
  else up.idlePool?.forgetIdle(up);
}

/** A stream that can carry a next request: open both ways, on a connector still in use. */
function reusable(up: Upstream): boolean {
  const s = up.stream;
  const entry = (s as unknown as Record<symbol, ConnectorEntry | undefined>)[STREAM_CONNECTOR];
  return !s.destroyed && !s.readableEnded && !s.writableEnded && (entry === undefined || entry.usable);
}

function markIdle(up: Upstream, idle: boolean): void {
  (up.stream as unknown as Record<symbol, unknown>)[IDLE_STREAM] = idle;
}
function onUpstreamDrain(this: Duplex): void {
  upstreamOf(this).conn?.upstreamDrain();
}

/** Ends a stream we are done with: FIN once what was written has gone, then released. */
function release(up: Upstream): void {
  up.conn = undefined;
  const s = up.stream;
  if (s.destroyed) return;
  if (s.writableLength > 0 && !s.writableEnded) {
    s.end();
    s.once('finish', () => destroy(s));
    setTimeout(() => destroy(s), 5_000).unref();
    return;
  }
  destroy(s);
}

const kConn = Symbol('burrow.entryConnection');

function connOf(socket: unknown): EntryConnection {
  return (socket as Record<symbol, EntryConnection>)[kConn]!;
}
function onSocketData(this: net.Socket, chunk: Buffer): void {
  connOf(this).socketData(chunk);
}
function onSocketEnd(this: net.Socket): void {
  connOf(this).socketEnd();
}
function onSocketClose(this: net.Socket): void {
  connOf(this).socketClose();
}
function onSocketDrain(this: net.Socket): void {
  connOf(this).socketDrain();
}
function onSocketError(): void {
  /* 'close' follows */
}
function onSocketFinish(this: net.Socket): void {
  destroy(this);
}

const enum Deadline {
  None,
  Head,
  Idle,
  Response,
  /** After the last response: the socket goes once its bytes are out, or when this passes. */
  Flush,
}

export class HttpEntryProxy {
  readonly opts: HttpEntryProxyOptions;
  readonly readTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly keepalive: boolean;
  readonly #conns = new Set<EntryConnection>();
  /** Idle streams for later connections, oldest first per key. */
  readonly #idle = new Map<string, Upstream[]>();
  #idleCount = 0;
  #sweep: NodeJS.Timeout | undefined;
  /** Shutting down: connections end after their current exchange, no stream is kept. */
  #draining = false;

  constructor(opts: HttpEntryProxyOptions) {
    this.opts = opts;
    this.readTimeoutMs = opts.metadata.getDurationMs('entrypoint.readTimeout') || DEFAULTS.entrypointReadTimeoutMs;
    this.idleTimeoutMs = opts.metadata.getDurationMs('entrypoint.idleTimeout') || 60_000;
    this.keepalive = opts.metadata.getBool('entrypoint.keepalive') ?? true;
  }

  /** Serves a sniffed connection: its first bytes put back, or handed over as `first`. */
  handle(socket: net.Socket, log?: Logger, first?: Buffer): void {
    const conn = new EntryConnection(this, socket, log ?? this.opts.logger);
    this.#conns.add(conn);
    conn.start(first);
  }

  forget(conn: EntryConnection): void {
    this.#conns.delete(conn);
  }

  /**
   * Shutdown, first step: idle connections close now, the others after their current response
   * (`Connection: close`); idle streams close and no stream is kept for later.
   */
  drain(): void {
    this.#draining = true;
    for (const c of [...this.#conns]) c.drain();
    this.#dropIdle();
  }

  /** Stops serving: every connection and its streams are closed. */
  close(): void {
    for (const c of [...this.#conns]) c.destroy();
    this.#conns.clear();
    this.#dropIdle();
  }

  #dropIdle(): void {
    for (const list of this.#idle.values()) {
      for (const up of list) {
        up.idlePool = undefined;
        destroy(up.stream);
      }
    }
    this.#idle.clear();
    this.#idleCount = 0;
    if (this.#sweep !== undefined) clearInterval(this.#sweep);
    this.#sweep = undefined;
  }

  /**
   * A stream for a request from a connection without one of its own: a connector is picked as
   * for a new stream (so weights and failover work per request), and an idle stream of that
   * connector for the same host and client IP is taken if there is one (the most recent), else
   * a new stream is opened on it. Throws when the tunnel has no connector.
   */
  acquire(
    tunnelId: string,
    src: string,
    dst: string,
    peer: string,
    entry = this.opts.server.pool.select(tunnelId, 'tcp'),
  ): { up: Upstream; reused: boolean } {
    const lowerDst = dst.toLowerCase();
    if (entry !== undefined && this.#idleCount > 0) {
      const key = sharedKeyOf(entry.id, lowerDst, src, peer);
      const list = this.#idle.get(key);
      while (list !== undefined && list.length > 0) {
        const up = this.#left(list.pop()!);
        if (reusable(up)) {
          if (list.length === 0) this.#idle.delete(key);
          return { up, reused: true };
        }
        destroy(up.stream);
      }
      if (list !== undefined) this.#idle.delete(key);
    }
    return { up: this.openUpstream(tunnelId, src, dst, peer, entry), reused: false };
  }

  /** A new tunnel stream for `dst` (on `entry` first when given), with its listeners. */
  openUpstream(tunnelId: string, src: string, dst: string, peer: string, entry?: ConnectorEntry): Upstream {
    return new Upstream(this.opts.server.openTunnelStream(tunnelId, 'tcp', src, dst, entry), dst.toLowerCase(), src, peer);
  }

  /** Bookkeeping for a stream leaving the idle pool (its list entry is already gone). */
  #left(up: Upstream): Upstream {
    this.#idleCount--;
    up.idlePool = undefined;
    markIdle(up, false);
    return up;
  }

  /** Keeps a stream whose exchange is over for a later connection, or releases it. */
  putIdle(up: Upstream): void {
    up.conn = undefined;
    up.idleKey = undefined;
    if (!this.keepalive || this.#draining || !reusable(up) || this.#idleCount >= MAX_IDLE) {
      markIdle(up, false);
      release(up);
      return;
    }
    let list = this.#idle.get(up.sharedKey);
    if (list === undefined) this.#idle.set(up.sharedKey, (list = []));
    if (list.length >= MAX_IDLE_PER_KEY) destroy(this.#left(list.shift()!).stream);
    up.idlePool = this;
    up.idleSince = Date.now();
    markIdle(up, true);
    up.stream.resume();
    list.push(up);
    this.#idleCount++;
    if (this.#sweep === undefined) {
      this.#sweep = setInterval(() => this.#sweepIdle(), 1_000);
      this.#sweep.unref();
    }
  }

  /** An idle stream that ended, failed or spoke: out of the pool. */
  forgetIdle(up: Upstream): void {
    if (up.idlePool !== this) return;
    up.idlePool = undefined;
    const list = this.#idle.get(up.sharedKey);
    const i = list === undefined ? -1 : list.indexOf(up);
    if (i < 0) return;
    list!.splice(i, 1);
    this.#left(up);
    if (list!.length === 0) this.#idle.delete(up.sharedKey);
  }

  #sweepIdle(): void {
    const cutoff = Date.now() - SHARED_IDLE_MS;
    for (const [key, list] of this.#idle) {
      while (list.length > 0 && list[0]!.idleSince <= cutoff) release(this.#left(list.shift()!));
      if (list.length === 0) this.#idle.delete(key);
    }
    if (this.#idleCount === 0 && this.#sweep !== undefined) {
      clearInterval(this.#sweep);
      this.#sweep = undefined;
    }
  }

  /** Routes `dst` ("host:port"): the ingress lookup strips the port. */
  route(dst: string): { ok: true; tunnelId: string } | { ok: false; status: 502; reason: string } {
    const r = this.opts.server.lookupPublic(dst, this.opts.ingress);
    if (!r) return { ok: false, status: 502, reason: `no route to host ${dst}` };
    if (r.private) return { ok: false, status: 502, reason: `tunnel ${r.tunnelId} is private for host ${dst}` };
    return { ok: true, tunnelId: r.tunnelId };
  }

  warn(log: Logger, socket: net.Socket, limit: string, msg: string): void {
    this.opts.server.warnings.warn(log, socket.remoteAddress ?? '', limit, msg);
  }
}

class EntryConnection {
  readonly #p: HttpEntryProxy;
  readonly #socket: net.Socket;
  readonly #log: Logger;
  readonly #peer: string;
  #buf: Buffer | undefined;
  /** The request line of the pending head was checked (garbage is refused before a whole head). */
  #lineChecked = false;
  #ex: Exchange | undefined;
  #pool: Map<string, Upstream> | undefined;
  #clientEnded = false;
  #closing = false;
  /** The entry point is shutting down: this connection ends after its current exchange. */
  #draining = false;
  #closed = false;
  /** Reading from the visitor is paused because a stream is full. */
  #waitUpstreamDrain = false;
  #paused = false;
  #deadline = Deadline.None;
  #deadlineAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #timerAt = 0;

  constructor(proxy: HttpEntryProxy, socket: net.Socket, log: Logger) {
    this.#p = proxy;
    this.#socket = socket;
    this.#log = log;
    this.#peer = joinHostPort(socket.remoteAddress ?? '', socket.remotePort ?? 0);
  }

  start(first?: Buffer): void {
    const s = this.#socket;
    (s as unknown as Record<symbol, unknown>)[kConn] = this;
    s.on('data', onSocketData);
    s.on('end', onSocketEnd);
    s.on('close', onSocketClose);
    s.on('drain', onSocketDrain);
    s.on('error', onSocketError);
    this.#arm(Deadline.Head, this.#p.opts.headersTimeoutMs);
    // 'data' comes a tick after resume(): `first` is read before anything later.
    s.resume();
    if (first !== undefined) this.socketData(first);
    if (s.readableEnded) this.socketEnd();
  }

  destroy(): void {
    destroy(this.#socket);
    this.socketClose();
  }

  /** Cuts the client's connection abnormally (TCP RST): a response that cannot be completed. */
  #reset(): void {
    abort(this.#socket);
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
    this.#stopTimer();
    this.#p.forget(this);
    const ex = this.#ex;
    this.#ex = undefined;
    // A client that went away: the origin sees its stream end (an event stream, a long poll).
    if (ex) {
      ex.onEnd?.();
      ex.up.conn = undefined;
      destroy(ex.up.stream);
    }
    if (this.#pool) {
      // This connection's idle streams wait for later connections from the same client.
      for (const up of this.#pool.values()) this.#p.putIdle(up);
      this.#pool.clear();
    }
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
    if (this.#deadline !== Deadline.Head) this.#arm(Deadline.Head, this.#p.opts.headersTimeoutMs);
    let head: HttpRequestHead;
    try {
      const end = findHeadEnd(buf);
      if (end < 0) {
        if (buf.length > MAX_HEADER_BYTES) return this.#tooLarge();
        if (!this.#lineChecked) this.#checkStart(buf);
        if (this.#clientEnded) {
          this.#log.debug('entrypoint: connection closed before a complete request head');
          this.destroy();
        }
        return false;
      }
      if (end > MAX_HEADER_BYTES) return this.#tooLarge();
      const parsed = parseHttpRequestHead(buf.subarray(0, end), { maxHeadBytes: MAX_HEADER_BYTES + 1 });
      if (!parsed.complete) throw new Error('incomplete request head');
      head = parsed;
    } catch (err) {
      this.#p.warn(this.#log, this.#socket, 'HTTP request format', `entrypoint: bad HTTP request: ${(err as Error).message}`);
      this.destroy();
      return false;
    }
    this.#lineChecked = false;
    this.#buf = buf.length === head.headEnd ? undefined : buf.subarray(head.headEnd);
    this.#disarm();
    this.#request(head);
    return true;
  }

  /** Refuses non-HTTP early: the method must be a short token followed by a space, the request line must parse. */
  #checkStart(buf: Buffer): void {
    const n = Math.min(buf.length, 33);
    let sp = -1;
    for (let i = 0; i < n; i++) {
      const c = buf[i]!;
      if (c === 0x20) {
        sp = i;
        break;
      }
      if (c <= 0x20 || c >= 0x7f || c === 0x3a || c === 0x2f || c === 0x22 || c === 0x28 || c === 0x29 || c === 0x2c) {
        throw new Error(`malformed HTTP method`);
      }
    }
    if (sp === 0 || (sp < 0 && n === 33)) throw new Error('malformed HTTP method');
    const nl = buf.indexOf(0x0a);
    if (nl >= 0) {
      parseHttpRequestHead(buf.subarray(0, nl + 1), { maxHeadBytes: MAX_HEADER_BYTES + 1 });
      this.#lineChecked = true;
    }
  }

  #tooLarge(): false {
    this.#p.warn(this.#log, this.#socket, 'request head size', `entrypoint: request head larger than ${MAX_HEADER_BYTES / 1024} KiB, answered 431`);
    this.#closing = true;
    this.#disarm();
    this.#socket.end('HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    this.#closeAfterWrite();
    return false;
  }

  /** Routes one request and sends it down a stream, or answers it with an error. */
  #request(head: HttpRequestHead): void {
    const p = this.#p;
    const http10 = head.version === 'HTTP/1.0';
    const conn = headerTokens(head.headers, 'connection');
    const keepClient = !this.#draining && (http10 ? conn.includes('keep-alive') : !conn.includes('close'));
    let reqBody: BodyFraming;
    try {
      reqBody = bodyFraming(head.headers, true);
    } catch (err) {
      p.warn(this.#log, this.#socket, 'HTTP request format', `entrypoint: bad HTTP request: ${(err as Error).message}`);
      this.destroy();
      return;
    }
    if (head.method === 'CONNECT') {
      this.#log.debug('entrypoint: CONNECT requests are not proxied; closing');
      this.destroy();
      return;
    }
    const dst = hostWithPort(head.host ?? '', 80);
    const onEnd = this.#requestLog(dst);
    const upgrade = conn.includes('upgrade') && headerTokens(head.headers, 'upgrade').length > 0;
    const route = p.route(dst);
    if (!route.ok) {
      this.#log.error(route.reason);
      this.#fail(route.status, head, keepClient && !upgrade, reqBody, onEnd);
      return;
    }
    const fwd = head.headers.find(([k]) => k.toLowerCase() === 'gost-forwarded-node')?.[1];
    if (fwd !== undefined && fwd.includes(p.opts.server.nodeId)) {
      this.#log.error('forwarding loop detected');
      this.#fail(503, head, keepClient && !upgrade, reqBody, onEnd);
      return;
    }
    const src = clientAddr(head.headers, this.#peer);
    if (upgrade) {
      this.#upgrade(head, route.tunnelId, src, dst, onEnd);
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
    const entry = keep ? p.opts.server.pool.select(route.tunnelId, 'tcp') : undefined;
    const key = keep && keepClient && entry !== undefined ? `${entry.id}|${route.tunnelId}|${dst.toLowerCase()}|${src}` : undefined;
    let up: Upstream | undefined;
    let reused = false;
    if (key !== undefined) {
      up = this.#takePooled(key);
      reused = up !== undefined;
    }
    if (!up) {
      try {
        const got = keep ? p.acquire(route.tunnelId, src, dst, this.#peer, entry) : { up: p.openUpstream(route.tunnelId, src, dst, this.#peer), reused: false };
        up = got.up;
        reused = got.reused;
      } catch (err) {
        this.#log.error((err as Error).message);
        this.#fail(503, head, keepClient, reqBody, onEnd);
        return;
      }
    }
    up.conn = this;
    const headText = upstreamRequestHead(head, { sid: newSid(), nodeId: p.opts.server.nodeId, keepalive: keep });
    const m = head.method;
    const ex: Exchange = {
      up,
      head,
      headText,
      tunnelId: route.tunnelId,
      key,
      reused,
      retried: false,
      replayable: (m === 'GET' || m === 'HEAD' || m === 'OPTIONS') && reqBody.kind === 'none',
      keepClient,
      http10,
      reqBody,
      reqLeft: reqBody.kind === 'length' ? reqBody.length : 0,
      reqChunks: reqBody.kind === 'chunked' ? new ChunkedScanner() : undefined,
      reqDone: reqBody.kind === 'none',
      resBytes: 0,
      resBuf: undefined,
      res: undefined,
      resFraming: { kind: 'none' },
      resLeft: 0,
      resChunks: undefined,
      rechunk: false,
      dechunk: false,
      noReuse: !keep,
      done: false,
      onEnd,
    };
    this.#ex = ex;
    this.#arm(Deadline.Response, p.readTimeoutMs);
    if (ex.reqDone) {
      up.stream.write(headText);
      this.#requestSent(ex);
    } else if (!this.#writeUp(ex, headText)) {
      // The body follows from #pump, as the stream takes it.
      this.#waitUpstreamDrain = true;
    }
  }

  /** Writes to the current stream; false when it wants a 'drain' first. */
  #writeUp(ex: Exchange, data: Buffer | string): boolean {
    return ex.up.stream.write(data);
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
        this.#log.debug('entrypoint: connection closed in the middle of a request body');
        this.destroy();
      }
      this.#updateReading();
      return false;
    }
    let n: number;
    if (ex.reqChunks) {
      let end: number;
      try {
        end = ex.reqChunks.scan(buf, 0, buf.length);
      } catch (err) {
        this.#p.warn(this.#log, this.#socket, 'HTTP request format', `entrypoint: bad HTTP request: ${(err as Error).message}`);
        this.destroy();
        return false;
      }
      n = end < 0 ? buf.length : end;
      if (end >= 0) ex.reqDone = true;
    } else {
      n = Math.min(ex.reqLeft, buf.length);
      ex.reqLeft -= n;
      if (ex.reqLeft === 0) ex.reqDone = true;
    }
    const part = n === buf.length ? buf : buf.subarray(0, n);
    this.#buf = n === buf.length ? undefined : buf.subarray(n);
    if (ex.done) {
      // The response already came (an early answer): the rest of the body is dropped.
      if (ex.reqDone) this.#afterExchange(ex);
      return true;
    }
    if (!this.#writeUp(ex, part)) this.#waitUpstreamDrain = true;
    if (ex.reqDone) this.#requestSent(ex);
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
  #requestSent(ex: Exchange): void {
    if (this.#clientEnded && (this.#buf === undefined || this.#buf.length === 0) && !ex.done) {
      ex.noReuse = true;
      ex.up.stream.end();
    }
    this.#updateReading();
  }

  // --- the tunnel side ----------------------------------------------------------------------

  upstreamData(up: Upstream, chunk: Buffer): void {
    const ex = this.#ex;
    if (!ex || ex.up !== up || ex.done) {
      // Bytes from a stream with no request on it (an origin talking out of turn).
      this.#dropPooled(up);
      up.conn = undefined;
      destroy(up.stream);
      return;
    }
    ex.resBytes += chunk.length;
    if (ex.res === undefined) {
      const buf = ex.resBuf === undefined ? chunk : Buffer.concat([ex.resBuf, chunk]);
      let head: HttpResponseHead | undefined;
      try {
        head = parseHttpResponseHead(buf);
      } catch (err) {
        this.#log.error(`tunnel ${ex.tunnelId}: bad HTTP response: ${(err as Error).message}`);
        this.#abortExchange(ex, 502);
        return;
      }
      if (!head) {
        ex.resBuf = buf;
        return;
      }
      ex.resBuf = undefined;
      if (head.status >= 100 && head.status < 200 && head.status !== 101) {
        // An interim response (100 Continue, 103 Early Hints): passed on, then the real one.
        if (!ex.http10) this.#socket.write(buf.subarray(0, head.headEnd));
        const rest = buf.subarray(head.headEnd);
        if (rest.length > 0) this.upstreamData(up, rest);
        return;
      }
      this.#responseHead(ex, head, buf.subarray(head.headEnd));
      return;
    }
    this.#responseBody(ex, chunk, undefined);
  }

  #responseHead(ex: Exchange, head: HttpResponseHead, rest: Buffer): void {
    if (this.#deadline === Deadline.Response) this.#disarm();
    let framing: BodyFraming;
    try {
      framing =
        ex.head.method === 'HEAD' || head.status === 204 || head.status === 304 || head.status === 101
          ? { kind: 'none' }
          : bodyFraming(head.headers, false);
    } catch (err) {
      this.#log.error(`tunnel ${ex.tunnelId}: bad HTTP response: ${(err as Error).message}`);
      this.#abortExchange(ex, 502);
      return;
    }
    if (head.status === 101) {
      // Switching protocols without an Upgrade request: pass it on and splice.
      this.#socket.write(`HTTP/1.1 101 ${head.reason}\r\n${head.headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
      this.#spliceCurrent(ex, rest);
      return;
    }
    ex.res = head;
    ex.resFraming = framing;
    ex.resLeft = framing.kind === 'length' ? framing.length : 0;
    if (framing.kind === 'chunked') ex.resChunks = new ChunkedScanner();
    // The origin closes after this response: `Connection: close`, or HTTP/1.0 without keep-alive.
    const resConn = headerTokens(head.headers, 'connection');
    const originCloses = resConn.includes('close') || (head.version === 'HTTP/1.0' && !resConn.includes('keep-alive'));
    if (originCloses || framing.kind === 'close' || !ex.reqDone) ex.noReuse = true;
    let out = `HTTP/1.1 ${head.status} ${head.reason}\r\n`;
    for (const [k, v] of head.headers) {
      if (RESPONSE_DROP.has(k.toLowerCase())) continue;
      out += `${k}: ${v}\r\n`;
    }
    // An early answer (before the whole request body came) ends the connection: what remains
    // of the body cannot be told from a next request without reading it all.
    if (!ex.reqDone) ex.keepClient = false;
    if (framing.kind === 'chunked') {
      if (ex.http10) {
        ex.dechunk = true;
        ex.keepClient = false;
      } else {
        out += 'Transfer-Encoding: chunked\r\n';
      }
    } else if (framing.kind === 'close') {
      if (ex.keepClient && !ex.http10) {
        ex.rechunk = true;
        out += 'Transfer-Encoding: chunked\r\n';
      } else {
        ex.keepClient = false;
      }
    } else if (ex.head.method === 'HEAD' && headerTokens(head.headers, 'transfer-encoding').includes('chunked') && !ex.http10) {
      out += 'Transfer-Encoding: chunked\r\n';
    }
    if (!ex.keepClient) out += 'Connection: close\r\n';
    else if (ex.http10) out += 'Connection: keep-alive\r\n';
    out += '\r\n';
    this.#responseBody(ex, rest, out);
  }

  /** Relays response body bytes (after `headText` when the head still has to go out). */
  #responseBody(ex: Exchange, chunk: Buffer, headText: string | undefined): void {
    const f = ex.resFraming;
    let body: Buffer | Buffer[] = chunk;
    let complete = false;
    let extra: Buffer | undefined;
    if (f.kind === 'none') {
      complete = true;
      if (chunk.length > 0) extra = chunk;
      body = EMPTY;
    } else if (f.kind === 'length') {
      if (chunk.length >= ex.resLeft) {
        if (chunk.length > ex.resLeft) extra = chunk.subarray(ex.resLeft);
        body = chunk.subarray(0, ex.resLeft);
        ex.resLeft = 0;
        complete = true;
      } else {
        ex.resLeft -= chunk.length;
      }
    } else if (f.kind === 'chunked') {
      let end: number;
      const parts: Buffer[] = [];
      try {
        end = ex.resChunks!.scan(chunk, 0, chunk.length, ex.dechunk ? (a, b) => parts.push(chunk.subarray(a, b)) : undefined);
      } catch (err) {
        this.#log.error(`tunnel ${ex.tunnelId}: bad HTTP response: ${(err as Error).message}`);
        this.#abortExchange(ex, 502);
        return;
      }
      if (end >= 0) {
        complete = true;
        if (end < chunk.length) extra = chunk.subarray(end);
      }
      const forwarded = end < 0 ? chunk : chunk.subarray(0, end);
      body = ex.dechunk ? parts : forwarded;
    } else if (ex.rechunk && chunk.length > 0) {
      body = [Buffer.from(chunkSizeLine(chunk.length), 'latin1'), chunk, CRLF];
    }
    if (extra !== undefined && extra.length > 0) {
      // Bytes past the end of the response: the origin is out of step; the stream is not reused.
      ex.noReuse = true;
    }
    const ok = this.#writeClient(headText, body);
    if (complete) {
      ex.done = true;
      this.#afterExchange(ex);
      return;
    }
    if (!ok) ex.up.stream.pause();
  }

  /** Writes a response part: head and small body joined into one write. */
  #writeClient(headText: string | undefined, body: Buffer | Buffer[]): boolean {
    const s = this.#socket;
    if (Array.isArray(body)) {
      if (headText === undefined && body.length === 1) return s.write(body[0]!);
      if (headText === undefined && body.length === 0) return true;
      s.cork();
      if (headText !== undefined) s.write(headText, 'latin1');
      let ok = true;
      for (const b of body) ok = s.write(b);
      s.uncork();
      return ok && !s.writableNeedDrain;
    }
    if (headText === undefined) return body.length === 0 ? true : s.write(body);
    if (body.length === 0) return s.write(headText, 'latin1');
    if (body.length <= JOIN_LIMIT) {
      const hl = Buffer.byteLength(headText, 'latin1');
      const out = Buffer.allocUnsafe(hl + body.length);
      out.write(headText, 0, 'latin1');
      body.copy(out, hl);
      return s.write(out);
    }
    s.cork();
    s.write(headText, 'latin1');
    s.write(body);
    s.uncork();
    return !s.writableNeedDrain;
  }

  /** The stream ended or failed during the current exchange (or while idle in the pool). */
  upstreamEnd(up: Upstream, err: Error | undefined): void {
    const ex = this.#ex;
    if (!ex || ex.up !== up) {
      this.#dropPooled(up);
      up.conn = undefined;
      destroy(up.stream);
      return;
    }
    if (ex.done) return;
    if (ex.res === undefined) {
      // A pooled stream that the far side closed while idle fails at once; an idempotent
      // request without a body is safe to send again on a fresh stream (once).
      if (ex.reused && !ex.retried && ex.replayable && ex.resBytes === 0) {
        this.#retry(ex);
        return;
      }
      this.#log.error(err?.message ?? `tunnel ${ex.tunnelId}: the stream ended before a response`);
      this.#abortExchange(ex, 503);
      return;
    }
    if (ex.resFraming.kind === 'close' && err === undefined) {
      // The end of a close-delimited body.
      if (ex.rechunk) this.#socket.write(LAST_CHUNK);
      ex.done = true;
      this.#afterExchange(ex);
      return;
    }
    // The response was cut short: the client must see it too, as a reset (no terminating
    // chunk, no clean FIN after a short body).
    ex.done = true;
    ex.onEnd?.();
    ex.onEnd = undefined;
    this.#ex = undefined;
    up.conn = undefined;
    destroy(up.stream);
    this.#reset();
  }

  #retry(ex: Exchange): void {
    ex.retried = true;
    ex.up.conn = undefined;
    destroy(ex.up.stream);
    let up: Upstream;
    try {
      up = this.#p.openUpstream(ex.tunnelId, clientAddr(ex.head.headers, this.#peer), hostWithPort(ex.head.host ?? '', 80), this.#peer);
    } catch (err) {
      this.#log.error((err as Error).message);
      this.#abortExchange(ex, 503);
      return;
    }
    up.conn = this;
    ex.up = up;
    ex.reused = false;
    ex.resBytes = 0;
    ex.resBuf = undefined;
    up.stream.write(ex.headText);
    this.#requestSent(ex);
  }

  /** Ends the exchange with an error status (or a cut connection if a response head already went out). */
  #abortExchange(ex: Exchange, status: number): void {
    ex.done = true;
    ex.up.conn = undefined;
    destroy(ex.up.stream);
    this.#ex = undefined;
    if (this.#deadline === Deadline.Response) this.#disarm();
    if (ex.res !== undefined) {
      ex.onEnd?.();
      this.#reset();
      return;
    }
    const keep = ex.keepClient && ex.reqDone && !this.#clientEnded;
    this.#socket.write(errorResponse(status, ex.head.version, !keep));
    ex.onEnd?.();
    if (!keep) {
      this.#finish();
      return;
    }
    this.#next();
  }

  /** The response is complete: reuse or release the stream, then the next request or the end. */
  #afterExchange(ex: Exchange): void {
    if (!ex.reqDone) {
      // The rest of the request body still has to be read past before the next request: not
      // worth it, the connection ends after this response.
      ex.keepClient = false;
    }
    this.#ex = undefined;
    const up = ex.up;
    if (ex.noReuse || !reusable(up)) release(up);
    else if (ex.key !== undefined && ex.keepClient && !this.#clientEnded) this.#putPooled(ex.key, up);
    else this.#p.putIdle(up);
    ex.onEnd?.();
    ex.onEnd = undefined;
    if (!ex.keepClient) {
      this.#finish();
      return;
    }
    this.#next();
  }

  #next(): void {
    if (this.#socket.destroyed) return;
    this.#arm(this.#buf !== undefined && this.#buf.length > 0 ? Deadline.Head : Deadline.Idle, 0);
    this.#updateReading();
    this.#pump();
  }

  /** An error response for a request that gets no stream; the visitor connection stays open when it can. */
  #fail(status: number, head: HttpRequestHead, keepClient: boolean, body: BodyFraming, onEnd: (() => void) | undefined): void {
    // A request whose body we would have to skip ends the connection after the answer.
    const keep = keepClient && body.kind === 'none' && !this.#clientEnded;
    this.#socket.write(errorResponse(status, head.version, !keep));
    onEnd?.();
    if (!keep) {
      this.#finish();
      return;
    }
    this.#next();
  }

  /** `Upgrade` requests (WebSocket): the head goes down a new stream, then bytes are spliced both ways. */
  #upgrade(head: HttpRequestHead, tunnelId: string, src: string, dst: string, onEnd: (() => void) | undefined): void {
    let stream: Duplex;
    try {
      stream = this.#p.opts.server.openTunnelStream(tunnelId, 'tcp', src, dst);
    } catch (err) {
      this.#log.error((err as Error).message);
      this.#fail(503, head, false, { kind: 'none' }, onEnd);
      return;
    }
    let text = `${head.method} ${head.path} ${head.version}\r\n`;
    for (const [k, v] of head.headers) if (k.toLowerCase() !== 'gost-forwarded-node') text += `${k}: ${v}\r\n`;
    text += `Gost-Forwarded-Node: ${this.#p.opts.server.nodeId}\r\n\r\n`;
    stream.write(text);
    onEnd?.();
    this.#detachAndSplice(stream);
  }

  /** A 101 on the current exchange: the stream and the connection become one byte pipe. */
  #spliceCurrent(ex: Exchange, rest: Buffer): void {
    ex.done = true;
    this.#ex = undefined;
    const s = ex.up.stream;
    ex.up.conn = undefined;
    s.off('data', onUpstreamData);
    s.off('end', onUpstreamEnd);
    s.off('error', onUpstreamError);
    s.off('close', onUpstreamClose);
    s.off('drain', onUpstreamDrain);
    if (rest.length > 0) this.#socket.write(rest);
    ex.onEnd?.();
    this.#detachAndSplice(s);
  }

  #detachAndSplice(stream: Duplex): void {
    this.#closing = true;
    this.#stopTimer();
    const s = this.#socket;
    s.off('data', onSocketData);
    s.off('end', onSocketEnd);
    s.off('drain', onSocketDrain);
    s.pause();
    if (this.#buf !== undefined && this.#buf.length > 0) stream.write(this.#buf);
    this.#buf = undefined;
    if (this.#clientEnded) stream.end();
    // The splice owns both now; 'close' still tidies this connection's pool.
    this.#p.opts.server.splice(s, stream, this.#peer, this.#log);
  }

  /** After a last response: the socket closes once its bytes are out (or at once if they never go). */
  #closeAfterWrite(): void {
    const s = this.#socket;
    if (s.destroyed) return;
    s.once('finish', onSocketFinish);
    this.#arm(Deadline.Flush, this.#p.readTimeoutMs);
  }

  /** No more requests on this connection: it ends once what was written has gone out. */
  #finish(): void {
    this.#closing = true;
    this.#disarm();
    this.#socket.end();
    this.#closeAfterWrite();
  }

  // --- stream pool ----------------------------------------------------------------------------

  #takePooled(key: string): Upstream | undefined {
    const up = this.#pool?.get(key);
    if (!up) return undefined;
    this.#pool!.delete(key);
    up.idleKey = undefined;
    markIdle(up, false);
    if (!reusable(up)) {
      up.conn = undefined;
      destroy(up.stream);
      return undefined;
    }
    return up;
  }

  #putPooled(key: string, up: Upstream): void {
    const pool = (this.#pool ??= new Map());
    const old = pool.get(key);
    if (old && old !== up) {
      old.conn = undefined;
      destroy(old.stream);
      pool.delete(key);
    }
    if (pool.size >= MAX_POOLED_PER_CONNECTION) {
      const [oldKey, oldest] = pool.entries().next().value as [string, Upstream];
      pool.delete(oldKey);
      oldest.conn = undefined;
      destroy(oldest.stream);
    }
    up.idleKey = key;
    markIdle(up, true);
    up.stream.resume();
    pool.set(key, up);
  }

  #dropPooled(up: Upstream): void {
    if (up.idleKey !== undefined && this.#pool?.get(up.idleKey) === up) this.#pool.delete(up.idleKey);
    up.idleKey = undefined;
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
      this.#socket.pause();
    } else if (!hold && this.#paused) {
      this.#paused = false;
      this.#socket.resume();
    }
  }

  #arm(kind: Deadline, ms: number): void {
    // Once the connection is flushing its last bytes nothing else is waited for.
    if (this.#deadline === Deadline.Flush) return;
    if (kind === Deadline.Idle) ms = this.#p.idleTimeoutMs;
    else if (kind === Deadline.Head && ms === 0) ms = this.#p.opts.headersTimeoutMs;
    this.#deadline = kind;
    const at = Date.now() + ms;
    this.#deadlineAt = at;
    if (this.#timer !== undefined && this.#timerAt <= at) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(EntryConnection.#fire, ms, this);
    this.#timer.unref();
  }

  static #fire(c: EntryConnection): void {
    c.#onTimer();
  }

  #disarm(): void {
    if (this.#deadline !== Deadline.Flush) this.#deadline = Deadline.None;
  }

  /**
   * No deadline any more, and the timer goes too: a pending timer holds this connection (its
   * socket and buffers) until it fires, up to `entrypoint.idleTimeout` later.
   */
  #stopTimer(): void {
    this.#deadline = Deadline.None;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #onTimer(): void {
    this.#timer = undefined;
    if (this.#closed || this.#deadline === Deadline.None) return;
    const now = Date.now();
    if (now < this.#deadlineAt) {
      this.#timerAt = this.#deadlineAt;
      this.#timer = setTimeout(EntryConnection.#fire, this.#deadlineAt - now, this);
      this.#timer.unref();
      return;
    }
    const kind = this.#deadline;
    this.#deadline = Deadline.None;
    if (kind === Deadline.Head) {
      this.#p.warn(
        this.#log,
        this.#socket,
        'entrypoint.sniffTimeout',
        `entrypoint: no complete request head within ${this.#p.opts.headersTimeoutMs} ms (entrypoint.sniffTimeout)`,
      );
      this.destroy();
    } else if (kind === Deadline.Idle || kind === Deadline.Flush) {
      this.destroy();
    } else if (kind === Deadline.Response) {
      const ex = this.#ex;
      if (!ex || ex.res !== undefined) return;
      this.#log.error(`no response from tunnel ${ex.tunnelId} within ${this.#p.readTimeoutMs} ms`);
      this.#abortExchange(ex, 503);
    }
  }

  /** gost's per-request lines: `<remote> <-> host` now, `<remote> >-< host` when it ends. */
  #requestLog(dst: string): (() => void) | undefined {
    const log = this.#log;
    if (!log.isLevelEnabled('debug')) return undefined;
    const sock = this.#socket;
    const started = Date.now();
    const read0 = sock.bytesRead;
    const written0 = sock.bytesWritten;
    const hostOnly = dst.replace(/:\d+$/, '');
    log.debug({ host: dst }, `${this.#peer} <-> ${hostOnly}`);
    return () =>
      log.debug(
        { host: dst, duration: Date.now() - started, inputBytes: sock.bytesRead - read0, outputBytes: sock.bytesWritten - written0 },
        `${this.#peer} >-< ${hostOnly}`,
      );
  }
}

const EMPTY = Buffer.alloc(0);
