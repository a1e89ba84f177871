/**
 * One request on its way through the entry point: the stream it is on, the framing state of
 * its body (read by the connection, connection.ts) and of its response, which this reads from
 * the stream and writes to the visitor — the head in HTTP/1.1 form without hop-by-hop headers,
 * the body as it came, re-chunked for a keep-alive client when the origin delimits it by
 * closing, de-chunked for an HTTP/1.0 client. Interim responses (100, 103) are passed on; a
 * 101 turns the exchange into a byte splice.
 */
import type net from 'node:net';
import type { Logger } from 'pino';
import type { HttpRequestHead } from '../../../../protocol/sniff/http';
import { bodyFraming, headerTokens, parseHttpResponseHead, type BodyFraming, type HttpResponseHead } from '../../../../protocol/http/response';
import { CRLF, ChunkedScanner, LAST_CHUNK, chunkSizeLine } from '../../../../protocol/http/chunked';
import { RESPONSE_DROP, assertStrictFraming, errorResponse, hasBareLf } from './head';
import type { Upstream, UpstreamOwner } from './upstream';
import { hostWithPort } from '../../../../io/http-relay';

/** What an exchange asks of its connection (the owner of its stream). */
export interface ExchangeHost extends UpstreamOwner {
  readonly socket: net.Socket;
  readonly log: Logger;
  /** The visitor's address ("host:port"). */
  readonly peer: string;
  /** The visitor half-closed its side. */
  readonly clientEnded: boolean;
  /** The response head came (or never will): its deadline is off. */
  responseStarted(): void;
  /** The exchange's answer to the visitor is decided (per-tunnel metrics). */
  countRequest(tunnelId: string, host: string, code: string): void;
  /** The exchange is no longer the connection's current one. */
  exchangeGone(ex: Exchange): void;
  /** A 101: the stream and the visitor become one byte pipe (`rest`: bytes after the head). */
  spliceCurrent(ex: Exchange, rest: Buffer): void;
  /** The whole request is on the stream. */
  requestSent(ex: Exchange): void;
  /** A new stream (for a retry; `forwardable`: to another server of the fleet when none is here). */
  openUpstream(tunnelId: string, src: string, dst: string, forwardable: boolean): Upstream;
  /** The visitor's address for a request's headers (ConnectionHost.clientOf). */
  clientOf(headers: ReadonlyArray<readonly [string, string]>): string;
  /** Keeps the stream for the connection's next request under `key`. */
  keepStream(key: string, up: Upstream): void;
  /** Keeps the stream for a later connection, or releases it. */
  putIdle(up: Upstream): void;
  /** The next request (`keep`), or the end of the connection once its bytes are out. */
  continueOrFinish(keep: boolean): void;
  /** Cuts the connection abnormally (TCP RST): a response that cannot be completed. */
  reset(): void;
}

export interface ExchangeInit {
  up: Upstream;
  head: HttpRequestHead;
  headText: string;
  tunnelId: string;
  /** The request's host (for metrics). */
  dst: string;
  key: string | undefined;
  reused: boolean;
  keepClient: boolean;
  reqBody: BodyFraming;
  /** Streams are kept for later requests (`entrypoint.keepalive`). */
  keepalive: boolean;
  /** No `Gost-Forwarded-Node` came: a retry may go to another server of the fleet too. */
  forwardable: boolean;
  onEnd: (() => void) | undefined;
}

/** A response body up to this size is written together with its head (one write). */
const JOIN_LIMIT = 16 * 1024;
const EMPTY = Buffer.alloc(0);

export class Exchange {
  up: Upstream;
  readonly head: HttpRequestHead;
  readonly headText: string;
  readonly tunnelId: string;
  readonly dst: string;
  /** The answer was counted (once per exchange, retries included). */
  #counted = false;
  /** The key of the connection's stream pool (undefined: the stream is not kept by it). */
  readonly key: string | undefined;
  /** The stream was taken from a pool (it may have been closed by the far side meanwhile). */
  reused: boolean;
  retried = false;
  /** An idempotent request without a body: safe to send again on a fresh stream. */
  readonly replayable: boolean;
  readonly forwardable: boolean;
  /** The client keeps its connection after this exchange. */
  keepClient: boolean;
  readonly http10: boolean;
  readonly reqBody: BodyFraming;
  reqLeft: number;
  readonly reqChunks: ChunkedScanner | undefined;
  reqDone: boolean;
  /** Response bytes seen (a retry is only safe before the first). */
  resBytes = 0;
  resBuf: Buffer | undefined;
  res: HttpResponseHead | undefined;
  resFraming: BodyFraming = { kind: 'none' };
  resLeft = 0;
  resChunks: ChunkedScanner | undefined;
  /** Re-chunk a close-delimited body for a keep-alive client; decode chunks for an HTTP/1.0 one. */
  rechunk = false;
  dechunk = false;
  /** The stream is not reused: the origin closes, the request was cut, or keep-alive is off. */
  noReuse: boolean;
  done = false;
  onEnd: (() => void) | undefined;

  constructor(
    readonly host: ExchangeHost,
    init: ExchangeInit,
  ) {
    this.up = init.up;
    this.head = init.head;
    this.headText = init.headText;
    this.tunnelId = init.tunnelId;
    this.dst = init.dst;
    this.key = init.key;
    this.reused = init.reused;
    const m = init.head.method;
    const body = init.reqBody;
    this.replayable = (m === 'GET' || m === 'HEAD' || m === 'OPTIONS') && body.kind === 'none';
    this.keepClient = init.keepClient;
    this.forwardable = init.forwardable;
    this.http10 = init.head.version === 'HTTP/1.0';
    this.reqBody = body;
    this.reqLeft = body.kind === 'length' ? body.length : 0;
    this.reqChunks = body.kind === 'chunked' ? new ChunkedScanner() : undefined;
    this.reqDone = body.kind === 'none';
    this.noReuse = !init.keepalive;
    this.onEnd = init.onEnd;
  }

  #count(code: number): void {
    if (this.#counted) return;
    this.#counted = true;
    this.host.countRequest(this.tunnelId, this.dst, String(code));
  }

  /** Calls the request's end (its log line) once. */
  ended(): void {
    const f = this.onEnd;
    this.onEnd = undefined;
    f?.();
  }

  /**
   * Takes what of `buf` belongs to the request's body (the bytes before the next request);
   * throws on bad chunked framing.
   */
  requestBody(buf: Buffer): number {
    if (this.reqChunks) {
      const end = this.reqChunks.scan(buf, 0, buf.length);
      if (end < 0) return buf.length;
      this.reqDone = true;
      return end;
    }
    const n = Math.min(this.reqLeft, buf.length);
    this.reqLeft -= n;
    if (this.reqLeft === 0) this.reqDone = true;
    return n;
  }

  /** The stream ended (`err` undefined) or failed while this exchange was on it. */
  streamEnded(err: Error | undefined): void {
    if (this.done) return;
    if (this.res === undefined) {
      // A pooled stream that the far side closed while idle fails at once; an idempotent
      // request without a body is safe to send again on a fresh stream (once).
      if (this.reused && !this.retried && this.replayable && this.resBytes === 0) {
        this.#retry();
        return;
      }
      this.host.log.error(err?.message ?? `tunnel ${this.tunnelId}: the stream ended before a response`);
      this.abort(503);
      return;
    }
    if (this.resFraming.kind === 'close' && err === undefined) {
      // The end of a close-delimited body.
      if (this.rechunk) this.host.socket.write(LAST_CHUNK);
      this.done = true;
      this.complete();
      return;
    }
    // The response was cut short: the client must see it too, as a reset (no terminating
    // chunk, no clean FIN after a short body).
    this.done = true;
    this.ended();
    this.host.exchangeGone(this);
    this.up.drop();
    this.host.reset();
  }

  #retry(): void {
    this.retried = true;
    this.up.drop();
    let up: Upstream;
    try {
      up = this.host.openUpstream(this.tunnelId, this.host.clientOf(this.head.headers), hostWithPort(this.head.host ?? '', 80), this.forwardable);
    } catch (err) {
      this.host.log.error((err as Error).message);
      this.abort(503);
      return;
    }
    up.owner = this.host;
    this.up = up;
    this.reused = false;
    this.resBytes = 0;
    this.resBuf = undefined;
    up.stream.write(this.headText);
    this.host.requestSent(this);
  }

  /** Ends the exchange with an error status (or a reset connection if a response head already went out). */
  abort(status: number): void {
    this.done = true;
    this.up.drop();
    this.host.exchangeGone(this);
    this.host.responseStarted();
    if (this.res !== undefined) {
      this.ended();
      this.host.reset();
      return;
    }
    this.#count(status);
    const keep = this.keepClient && this.reqDone && !this.host.clientEnded;
    this.host.socket.write(errorResponse(status, this.head.version, !keep));
    this.ended();
    this.host.continueOrFinish(keep);
  }

  /** The response is complete: reuse or release the stream, then the next request or the end. */
  complete(): void {
    if (!this.reqDone) {
      // The rest of the request body still has to be read past before the next request: not
      // worth it, the connection ends after this response.
      this.keepClient = false;
    }
    this.host.exchangeGone(this);
    const up = this.up;
    if (this.noReuse || !up.reusable) up.release();
    else if (this.key !== undefined && this.keepClient && !this.host.clientEnded) this.host.keepStream(this.key, up);
    else this.host.putIdle(up);
    this.ended();
    this.host.continueOrFinish(this.keepClient);
  }

  /** Bytes of the response from the stream. */
  responseData(chunk: Buffer): void {
    this.resBytes += chunk.length;
    if (this.res !== undefined) {
      this.#responseBody(chunk, undefined);
      return;
    }
    const buf = this.resBuf === undefined ? chunk : Buffer.concat([this.resBuf, chunk]);
    let head: HttpResponseHead | undefined;
    try {
      head = parseHttpResponseHead(buf);
    } catch (err) {
      this.#badResponse(err);
      return;
    }
    if (!head) {
      this.resBuf = buf;
      return;
    }
    this.resBuf = undefined;
    if (hasBareLf(buf, head.headEnd)) {
      this.#badResponse(new Error('bare LF in the response head (CRLF line ends required)'));
      return;
    }
    if (head.status >= 100 && head.status < 200 && head.status !== 101) {
      // An interim response (100 Continue, 103 Early Hints): passed on, then the real one.
      if (!this.http10) this.host.socket.write(buf.subarray(0, head.headEnd));
      const rest = buf.subarray(head.headEnd);
      if (rest.length > 0) this.responseData(rest);
      return;
    }
    this.#responseHead(head, buf.subarray(head.headEnd));
  }

  #badResponse(err: unknown): void {
    this.host.log.error(`tunnel ${this.tunnelId}: bad HTTP response: ${(err as Error).message}`);
    this.abort(502);
  }

  #responseHead(head: HttpResponseHead, rest: Buffer): void {
    this.host.responseStarted();
    let framing: BodyFraming;
    try {
      // Checked even where no body follows: conflicting framing headers are refused either way.
      assertStrictFraming(head.headers);
      framing = bodyFraming(head.headers, false);
      if (this.head.method === 'HEAD' || head.status === 204 || head.status === 304 || head.status === 101) framing = { kind: 'none' };
    } catch (err) {
      this.#badResponse(err);
      return;
    }
    this.#count(head.status);
    if (head.status === 101) {
      // Switching protocols without an Upgrade request: pass it on and splice.
      this.host.socket.write(`HTTP/1.1 101 ${head.reason}\r\n${head.headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
      this.host.spliceCurrent(this, rest);
      return;
    }
    this.res = head;
    this.resFraming = framing;
    this.resLeft = framing.kind === 'length' ? framing.length : 0;
    if (framing.kind === 'chunked') this.resChunks = new ChunkedScanner();
    // The origin closes after this response: `Connection: close`, or HTTP/1.0 without keep-alive.
    const resConn = headerTokens(head.headers, 'connection');
    const originCloses = resConn.includes('close') || (head.version === 'HTTP/1.0' && !resConn.includes('keep-alive'));
    if (originCloses || framing.kind === 'close' || !this.reqDone) this.noReuse = true;
    let out = `HTTP/1.1 ${head.status} ${head.reason}\r\n`;
    for (const [k, v] of head.headers) {
      if (RESPONSE_DROP.has(k.toLowerCase())) continue;
      out += `${k}: ${v}\r\n`;
    }
    // An early answer (before the whole request body came) ends the connection: what remains
    // of the body cannot be told from a next request without reading it all.
    if (!this.reqDone) this.keepClient = false;
    if (framing.kind === 'chunked') {
      if (this.http10) {
        this.dechunk = true;
        this.keepClient = false;
      } else {
        out += 'Transfer-Encoding: chunked\r\n';
      }
    } else if (framing.kind === 'close') {
      if (this.keepClient && !this.http10) {
        this.rechunk = true;
        out += 'Transfer-Encoding: chunked\r\n';
      } else {
        this.keepClient = false;
      }
    } else if (this.head.method === 'HEAD' && headerTokens(head.headers, 'transfer-encoding').includes('chunked') && !this.http10) {
      out += 'Transfer-Encoding: chunked\r\n';
    }
    if (!this.keepClient) out += 'Connection: close\r\n';
    else if (this.http10) out += 'Connection: keep-alive\r\n';
    out += '\r\n';
    this.#responseBody(rest, out);
  }

  /** Relays response body bytes (after `headText` when the head still has to go out). */
  #responseBody(chunk: Buffer, headText: string | undefined): void {
    const f = this.resFraming;
    let body: Buffer | Buffer[] = chunk;
    let complete = false;
    let extra: Buffer | undefined;
    if (f.kind === 'none') {
      complete = true;
      if (chunk.length > 0) extra = chunk;
      body = EMPTY;
    } else if (f.kind === 'length') {
      if (chunk.length >= this.resLeft) {
        if (chunk.length > this.resLeft) extra = chunk.subarray(this.resLeft);
        body = chunk.subarray(0, this.resLeft);
        this.resLeft = 0;
        complete = true;
      } else {
        this.resLeft -= chunk.length;
      }
    } else if (f.kind === 'chunked') {
      let end: number;
      const parts: Buffer[] = [];
      try {
        end = this.resChunks!.scan(chunk, 0, chunk.length, this.dechunk ? (a, b) => parts.push(chunk.subarray(a, b)) : undefined);
      } catch (err) {
        this.#badResponse(err);
        return;
      }
      if (end >= 0) {
        complete = true;
        if (end < chunk.length) extra = chunk.subarray(end);
      }
      const forwarded = end < 0 ? chunk : chunk.subarray(0, end);
      body = this.dechunk ? parts : forwarded;
    } else if (this.rechunk && chunk.length > 0) {
      body = [Buffer.from(chunkSizeLine(chunk.length), 'latin1'), chunk, CRLF];
    }
    if (extra !== undefined && extra.length > 0) {
      // Bytes past the end of the response: the origin is out of step; the stream is not reused.
      this.noReuse = true;
    }
    const ok = writeClient(this.host.socket, headText, body);
    if (complete) {
      this.done = true;
      this.complete();
      return;
    }
    if (!ok) this.up.stream.pause();
  }
}

/** Writes a response part to the visitor: head and small body joined into one write. */
export function writeClient(s: net.Socket, headText: string | undefined, body: Buffer | Buffer[]): boolean {
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

/** gost's per-request lines: `<peer> <-> host` now, `<peer> >-< host` when it ends (undefined below debug). */
export function requestLog(log: Logger, sock: net.Socket, peer: string, dst: string): (() => void) | undefined {
  if (!log.isLevelEnabled('debug')) return undefined;
  const started = Date.now();
  const read0 = sock.bytesRead;
  const written0 = sock.bytesWritten;
  const hostOnly = dst.replace(/:\d+$/, '');
  log.debug({ host: dst }, `${peer} <-> ${hostOnly}`);
  return () =>
    log.debug(
      { host: dst, duration: Date.now() - started, inputBytes: sock.bytesRead - read0, outputBytes: sock.bytesWritten - written0 },
      `${peer} >-< ${hostOnly}`,
    );
}
