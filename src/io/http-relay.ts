/**
 * Pieces shared by the two per-request HTTP proxies (the server's entry point and sniffed
 * HTTP on visitors/clients): relaying one upstream response back to the client with
 * backpressure and a response-head deadline, empty error responses, and the socket shim that
 * lets Node's HTTP client and server run over a tunnel stream.
 */
import http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { joinHostPort, splitHostPort } from '../core/addr';
import { abort, destroy } from './pipe';

/** Hop-by-hop headers, never forwarded as they are. */
export const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Gives a stream the socket methods Node's HTTP client, server and agent call. */
export function socketLike(stream: Duplex): net.Socket {
  const s = stream as unknown as Record<string, unknown>;
  for (const m of ['setKeepAlive', 'setNoDelay', 'ref', 'unref', 'setTimeout']) {
    if (typeof s[m] !== 'function') s[m] = () => stream;
  }
  return stream as unknown as net.Socket;
}

/** "host" or "host:port" → "host:port" with a default port. */
export function hostWithPort(host: string, defPort: number): string {
  try {
    const hp = splitHostPort(host);
    return joinHostPort(hp.host, hp.port || defPort);
  } catch {
    return joinHostPort(host, defPort);
  }
}

/** An empty error response (`Content-Length: 0`); destroys the connection if a head went out. */
export function failResponse(res: http.ServerResponse, status: number): void {
  if (res.headersSent) {
    destroy(res.socket ?? undefined);
    return;
  }
  res.sendDate = false;
  res.writeHead(status, { 'Content-Length': '0' });
  res.end();
}

/** Request headers as an ordered object, hop-by-hop headers dropped (Transfer-Encoding kept). */
export function forwardableHeaders(req: http.IncomingMessage, connection: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = raw[i]!;
    const lower = k.toLowerCase();
    if (HOP_BY_HOP.has(lower) && lower !== 'transfer-encoding') continue;
    const prev = out[k];
    if (prev === undefined) out[k] = raw[i + 1]!;
    else out[k] = Array.isArray(prev) ? [...prev, raw[i + 1]!] : [prev, raw[i + 1]!];
  }
  out['Connection'] = connection;
  return out;
}

/** Sets `set` on `headers`, replacing a header of the same name whatever its case. */
export function setHeaders(headers: Record<string, string | string[]>, set: ReadonlyArray<readonly [string, string]>): void {
  for (const [k, v] of set) {
    const lower = k.toLowerCase();
    for (const have of Object.keys(headers)) if (have.toLowerCase() === lower) delete headers[have];
    headers[k] = v;
  }
}

/**
 * Sends `req` upstream as `upReq` and relays the response into `res`: 503 when no response
 * head arrives within `readTimeoutMs` or the upstream fails before answering; the response
 * body is streamed with backpressure (no buffering: each chunk goes out when it arrives); a
 * client that goes away aborts the upstream request.
 */
/** The latest exchange of each client connection (see relayHttpExchange's half-close). */
const latestExchange = new WeakMap<object, object>();

export function relayHttpExchange(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  upReq: http.ClientRequest,
  opts: {
    log: Logger;
    readTimeoutMs: number;
    what: string;
    retry?: () => http.ClientRequest;
    /** Headers set on the response (a forwarder node's `http.responseHeader`). */
    responseHeaders?: ReadonlyArray<readonly [string, string]>;
    /**
     * A rewrite of the whole response body, when `for` gives one for these response headers;
     * bodies larger than `maxBytes` are passed on unchanged.
     */
    rewriteBody?: { for: (headers: http.IncomingHttpHeaders) => ((body: Buffer) => Buffer) | undefined; maxBytes: number };
  },
): void {
  let current = upReq;
  let retried = false;
  const timer = setTimeout(() => {
    opts.log.error(`no response from ${opts.what} within ${opts.readTimeoutMs} ms`);
    current.destroy();
    failResponse(res, 503);
  }, opts.readTimeoutMs);
  timer.unref();
  const onResponse = (upRes: http.IncomingMessage): void => {
    clearTimeout(timer);
    const headers: Record<string, string | string[]> = {};
    const raw = upRes.rawHeaders;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const k = raw[i]!;
      if (HOP_BY_HOP.has(k.toLowerCase())) continue;
      const prev = headers[k];
      if (prev === undefined) headers[k] = raw[i + 1]!;
      else headers[k] = Array.isArray(prev) ? [...prev, raw[i + 1]!] : [prev, raw[i + 1]!];
    }
    if (opts.responseHeaders) setHeaders(headers, opts.responseHeaders);
    res.sendDate = false;
    const status = upRes.statusCode ?? 502;
    const rewrite = req.method !== 'HEAD' && status !== 204 && status !== 304 ? opts.rewriteBody?.for(upRes.headers) : undefined;
    if (rewrite) {
      bufferAndRewrite(upRes, res, status, headers, rewrite, opts.rewriteBody!.maxBytes, opts.log, opts.what);
      return;
    }
    res.writeHead(status, upRes.statusMessage, headers);
    // The head goes out with the first body bytes when they come in the same turn (one write
    // for a small response); a response whose body comes later (server-sent events, long
    // polls) still gets its head at once.
    setImmediate(() => {
      if (!res.headersSent && !res.writableEnded) res.flushHeaders();
    });
    endOnAbort(upRes, res);
    streamBody(upRes, res);
  };
  const onError = (err: Error): void => {
    // A pooled stream that the far side closed while idle fails at once; an idempotent
    // request without a body is safe to send again on a fresh stream (once).
    if (!retried && opts.retry && current.reusedSocket && !res.headersSent && isReplayable(req)) {
      retried = true;
      current = opts.retry();
      wire(current);
      current.end();
      return;
    }
    clearTimeout(timer);
    opts.log.error(err.message);
    failResponse(res, 503);
  };
  const wire = (r: http.ClientRequest): void => {
    r.on('response', onResponse);
    r.on('error', onError);
  };
  wire(upReq);
  // Half-close: a client that shuts down its write side (FIN) after its request is not taken
  // for gone (the server runs with httpAllowHalfOpen); its FIN is passed on to the upstream once
  // the request has been sent, so the origin decides, as it would facing the client directly:
  // one that honours half-close answers in full, one that takes a FIN for a disconnect (Node's
  // and Go's default) aborts, and the abort comes back as the end of the response.
  // Only the connection's latest request passes the FIN on (a pipelined earlier one must not
  // end a stream the next request still needs).
  const client = req.socket;
  const token = {};
  latestExchange.set(client, token);
  const passFin = (): void => {
    if (latestExchange.get(client) !== token) return;
    const endUpstream = (): void => {
      const s = current.socket;
      if (s && !s.destroyed && s.writable) s.end();
    };
    if (current.writableFinished) endUpstream();
    else current.once('finish', endUpstream);
  };
  if (client.readableEnded) passFin();
  else client.once('end', passFin);
  res.once('close', () => {
    clearTimeout(timer);
    client.off('end', passFin);
    if (!res.writableFinished) current.destroy();
  });
  req.pipe(upReq);
}

/**
 * A response whose body is rewritten: read whole (up to `max` bytes), rewritten, sent with its
 * new Content-Length. A larger body is passed on as it came, the part read so far first.
 */
function bufferAndRewrite(
  upRes: http.IncomingMessage,
  res: http.ServerResponse,
  status: number,
  headers: Record<string, string | string[]>,
  rewrite: (body: Buffer) => Buffer,
  max: number,
  log: Logger,
  what: string,
): void {
  endOnAbort(upRes, res);
  const chunks: Buffer[] = [];
  let size = 0;
  const collect = (chunk: Buffer): void => {
    chunks.push(chunk);
    size += chunk.length;
    if (size <= max) return;
    log.warn(`${what}: response body larger than ${max} bytes, passed on without rewriteBody`);
    upRes.off('data', collect);
    upRes.off('end', rewritten);
    res.writeHead(status, upRes.statusMessage, headers);
    for (const c of chunks.splice(0)) res.write(c);
    streamBody(upRes, res);
  };
  const rewritten = (): void => {
    const body = rewrite(Buffer.concat(chunks));
    for (const k of Object.keys(headers)) {
      const lower = k.toLowerCase();
      if (lower === 'content-length' || lower === 'transfer-encoding') delete headers[k];
    }
    headers['Content-Length'] = String(body.length);
    res.writeHead(status, upRes.statusMessage, headers);
    res.end(body);
  };
  upRes.on('data', collect);
  upRes.once('end', rewritten);
}

/** The rest of a response body from `upRes` into `res`, with backpressure. */
function streamBody(upRes: http.IncomingMessage, res: http.ServerResponse): void {
  upRes.on('data', (chunk: Buffer) => {
    if (!res.write(chunk)) upRes.pause();
  });
  res.on('drain', () => upRes.resume());
  upRes.once('end', () => res.end());
}

/** An upstream response that fails or is cut resets the client's connection (no clean end). */
function endOnAbort(upRes: http.IncomingMessage, res: http.ServerResponse): void {
  upRes.once('error', () => abort(res.socket ?? undefined));
  upRes.once('aborted', () => abort(res.socket ?? undefined));
}

/** A request that can be sent twice: idempotent method and no body. */
function isReplayable(req: http.IncomingMessage): boolean {
  const m = req.method ?? 'GET';
  if (m !== 'GET' && m !== 'HEAD' && m !== 'OPTIONS') return false;
  const len = req.headers['content-length'];
  return !req.headers['transfer-encoding'] && (len === undefined || len === '0');
}

/** Re-serialises an upgrade request head (for splicing after a 101). */
export function requestHead(
  req: http.IncomingMessage,
  extra: ReadonlyArray<readonly [string, string]> = [],
  drop: Set<string> = new Set(),
  url = req.url,
): string {
  let text = `${req.method} ${url} HTTP/${req.httpVersion}\r\n`;
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (drop.has(raw[i]!.toLowerCase())) continue;
    text += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  for (const [k, v] of extra) text += `${k}: ${v}\r\n`;
  return text + '\r\n';
}
