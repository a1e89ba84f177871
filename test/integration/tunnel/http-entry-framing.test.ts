/**
 * HTTP/1.1 framing at the entry point, byte by byte: a tunnel server with an entry point and a
 * tunnel client in front of a raw TCP origin the test drives itself, and raw sockets as the
 * visitor. Pipelining, close-delimited and chunked bodies both ways, interim responses,
 * bodiless responses, malformed and early-answered request bodies, split heads, absolute-form
 * targets, bad origin responses, and how tunnel streams (origin connections) are reused.
 */
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type net from 'node:net';
import { startApp } from '../../helpers/inproc';
import { SHARED_IDLE_MS } from '../../../src/handler/tunnel/entrypoint/http/proxy';
import { randomBytes } from '../../helpers/net';
import {
  HTTP_TUNNEL,
  Inbox,
  dial,
  headerValue,
  listenRaw,
  parseHead,
  portOf,
  send,
  sleep,
  type FakeServer,
  type HttpHead,
} from '../../helpers/replay';

/**
 * The Host of the current test: a new name for each test, so that the streams an earlier test
 * left idle in the entry point (kept per connector, host and client IP for later connections)
 * do not carry this test's requests. The (n) tests are about that reuse.
 */
let HOST = 'app.example.com';
let hostSeq = 0;
beforeEach(() => {
  HOST = `t${++hostSeq}.example.com`;
});
const EMPTY = Buffer.alloc(0);

// ---------------------------------------------------------------------------------------------
// the rig: origin <- tunnel client <- tunnel server (entry point) <- visitor

interface Stack {
  /** The entry point's port. */
  entry: number;
  origin: FakeServer;
  stop(): Promise<void>;
}

/** A raw origin, a tunnel server (`query` appended to its URL) and a client publishing the origin for `.example.com`. */
async function startStack(query = ''): Promise<Stack> {
  const origin = await listenRaw();
  const server = await startApp({ L: [`tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel=.example.com:${HTTP_TUNNEL}${query}`], level: 'info' });
  const client = await startApp({ L: [`rtcp://:0/127.0.0.1:${origin.port}`], F: [`tunnel://${server.addr()}?tunnel.id=${HTTP_TUNNEL}`], level: 'info' });
  await client.bound;
  return {
    entry: portOf(server.entrypoint()),
    origin,
    stop: async () => {
      await client.stop();
      await server.stop();
      await origin.close();
    },
  };
}

/** Every socket a test opened, destroyed at the end of the file. */
const opened: net.Socket[] = [];
after(() => {
  for (const s of opened) s.destroy();
});

/** A raw socket talking to the entry point. */
class Visitor {
  readonly inbox: Inbox;
  private constructor(readonly sock: net.Socket) {
    this.inbox = Inbox.of(sock);
    opened.push(sock);
  }

  static async open(stack: Stack): Promise<Visitor> {
    return new Visitor(await dial(stack.entry));
  }

  send(data: Buffer | string): Promise<void> {
    return send(this.sock, data);
  }

  response(opts: ResponseOptions = {}): Promise<Response> {
    return readResponse(this.inbox, opts);
  }

  /** Resolves when the entry point has closed the connection; returns what was left unread. */
  closed(what = 'the entry point to close the connection'): Promise<Buffer> {
    return this.inbox.waitEnd(what);
  }
}

/** One connection accepted by the origin (one tunnel stream). */
class OriginConn {
  readonly inbox: Inbox;
  private constructor(readonly sock: net.Socket) {
    this.inbox = Inbox.of(sock);
    opened.push(sock);
  }

  static async accept(stack: Stack, timeoutMs?: number): Promise<OriginConn> {
    return new OriginConn(await stack.origin.accept(timeoutMs));
  }

  /** The next request head (consumed). */
  async head(what = 'a request head at the origin'): Promise<HttpHead> {
    const head = await this.inbox.waitFor((b) => parseHead(b), what);
    this.inbox.take(head.length);
    return head;
  }

  /** The next request: its head and its Content-Length body (consumed). */
  async request(what?: string): Promise<{ head: HttpHead; body: Buffer }> {
    const head = await this.head(what);
    const body = await this.inbox.read(Number(headerValue(head, 'content-length') ?? 0), 'the request body at the origin');
    return { head, body };
  }

  reply(data: Buffer | string): Promise<void> {
    return send(this.sock, data);
  }
}

/** No (further) connection reaches the origin within `ms`. */
async function noOriginConnection(stack: Stack, ms = 300): Promise<void> {
  await assert.rejects(stack.origin.accept(ms), /no connection accepted/, 'no further connection reaches the origin');
}

// ---------------------------------------------------------------------------------------------
// HTTP, as the test writes and reads it

const get = (path: string, extra = '', method = 'GET'): string => `${method} ${path} HTTP/1.1\r\nHost: ${HOST}\r\n${extra}\r\n`;

/** A 200 response with a Content-Length body. */
function ok(body: Buffer | string, extra = ''): Buffer {
  const b = Buffer.from(body);
  return Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${b.length}\r\n${extra}\r\n`, 'latin1'), b]);
}

/** `data` in chunked framing, one chunk per piece (an extension on the first), with trailers. */
function chunked(pieces: readonly Buffer[], trailers = 'X-Checksum: 42\r\n'): Buffer {
  const parts: Buffer[] = [];
  pieces.forEach((p, i) => parts.push(Buffer.from(`${p.length.toString(16)}${i === 0 ? ';piece=first' : ''}\r\n`), p, Buffer.from('\r\n')));
  parts.push(Buffer.from(`0\r\n${trailers}\r\n`));
  return Buffer.concat(parts);
}

/**
 * A chunked body at `buf[from..]` decoded by the test's own strict reader: its end and its
 * data, or undefined while incomplete. Throws on bad framing.
 */
function decodeChunked(buf: Buffer, from: number): { end: number; data: Buffer } | undefined {
  const parts: Buffer[] = [];
  let i = from;
  for (;;) {
    const nl = buf.indexOf('\r\n', i);
    if (nl < 0) return undefined;
    const sizeText = buf.toString('latin1', i, nl).split(';')[0]!;
    if (!/^[0-9a-fA-F]+$/.test(sizeText)) throw new Error(`bad chunk size line ${JSON.stringify(buf.toString('latin1', i, nl))}`);
    const size = parseInt(sizeText, 16);
    i = nl + 2;
    if (size === 0) {
      for (;;) {
        const end = buf.indexOf('\r\n', i);
        if (end < 0) return undefined;
        const last = end === i;
        i = end + 2;
        if (last) return { end: i, data: Buffer.concat(parts) };
      }
    }
    if (buf.length < i + size + 2) return undefined;
    if (buf[i + size] !== 0x0d || buf[i + size + 1] !== 0x0a) throw new Error('chunk data not followed by CRLF');
    parts.push(buf.subarray(i, i + size));
    i += size + 2;
  }
}

interface ResponseOptions {
  /** The response has no body whatever its headers say (a HEAD request's). */
  bodyless?: boolean;
  timeoutMs?: number;
}

interface Response {
  head: HttpHead;
  status: number;
  /** The body, de-chunked when it was chunked. */
  body: Buffer;
  /** The response exactly as received. */
  raw: Buffer;
}

/** Reads one response off an Inbox: bodyless, chunked, Content-Length or until close. */
async function readResponse(inbox: Inbox, opts: ResponseOptions = {}): Promise<Response> {
  const r = await inbox.waitFor(
    (buf, ended) => {
      const head = parseHead(buf);
      if (!head) return undefined;
      const status = Number(head.startLine.split(' ')[1]);
      if (opts.bodyless || (status >= 100 && status < 200) || status === 204 || status === 304) return { head, status, len: head.length, body: EMPTY };
      if (/chunked/i.test(headerValue(head, 'transfer-encoding') ?? '')) {
        const c = decodeChunked(buf, head.length);
        return c && { head, status, len: c.end, body: c.data };
      }
      const cl = headerValue(head, 'content-length');
      if (cl !== undefined) {
        const len = head.length + Number(cl);
        return buf.length >= len ? { head, status, len, body: buf.subarray(head.length, len) } : undefined;
      }
      return ended ? { head, status, len: buf.length, body: buf.subarray(head.length) } : undefined;
    },
    'an HTTP response at the visitor',
    opts.timeoutMs,
  );
  const body = Buffer.from(r.body);
  return { head: r.head, status: r.status, body, raw: Buffer.from(inbox.take(r.len)) };
}

/** How many header lines named `name` a head has. */
function headerCount(head: HttpHead, name: string): number {
  return head.headers.filter(([k]) => k.toLowerCase() === name).length;
}

// ---------------------------------------------------------------------------------------------

describe('entry point HTTP framing (entrypoint.keepalive default)', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack();
  });
  after(() => stack.stop());

  test('(a) three pipelined GETs written at once: sent on one at a time, three responses in order', async () => {
    const v = await Visitor.open(stack);
    await v.send(get('/p1') + get('/p2') + get('/p3'));
    const o = await OriginConn.accept(stack);
    assert.equal((await o.request()).head.startLine, 'GET /p1 HTTP/1.1');
    await sleep(100);
    assert.equal(o.inbox.buffered.length, 0, 'the second request waits for the first response');
    await o.reply(ok('first'));
    assert.equal((await o.request()).head.startLine, 'GET /p2 HTTP/1.1');
    await o.reply(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'), chunked([Buffer.from('sec'), Buffer.from('ond')])]));
    assert.equal((await o.request()).head.startLine, 'GET /p3 HTTP/1.1');
    await o.reply(ok('third'));
    const bodies: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await v.response();
      assert.equal(r.status, 200);
      bodies.push(r.body.toString());
    }
    assert.deepEqual(bodies, ['first', 'second', 'third']);
    assert.equal(v.inbox.buffered.length, 0, 'nothing after the third response');
    v.sock.destroy();
  });

  test('(b) a close-delimited response reaches an HTTP/1.1 keep-alive client re-chunked, and the connection serves a next request', async () => {
    const v = await Visitor.open(stack);
    await v.send(get('/close-delimited'));
    const o = await OriginConn.accept(stack);
    await o.request();
    const data = randomBytes(200_000);
    await o.reply('HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n');
    for (let i = 0; i < data.length; i += 30_000) {
      await o.reply(data.subarray(i, i + 30_000));
      await sleep(5);
    }
    o.sock.end();
    const r = await v.response();
    assert.equal(r.status, 200);
    assert.equal(headerValue(r.head, 'transfer-encoding'), 'chunked');
    assert.equal(headerValue(r.head, 'content-length'), undefined);
    assert.equal(headerValue(r.head, 'connection'), undefined, 'no Connection: close');
    assert.equal(headerValue(r.head, 'content-type'), 'application/octet-stream');
    assert.ok(r.body.equals(data), 'body intact');
    // Same visitor connection, next request (a new stream: the old one ended with the body).
    await v.send(get('/after-close-delimited'));
    const o2 = await OriginConn.accept(stack);
    assert.equal((await o2.request()).head.startLine, 'GET /after-close-delimited HTTP/1.1');
    await o2.reply(ok('next'));
    const r2 = await v.response();
    assert.equal(r2.status, 200);
    assert.equal(r2.body.toString(), 'next');
    assert.equal(v.sock.destroyed, false);
    v.sock.destroy();
  });

  test('(b) a close-delimited response reaches an HTTP/1.0 client close-delimited, and the connection closes', async () => {
    const v = await Visitor.open(stack);
    await v.send(`GET /ten HTTP/1.0\r\nHost: ${HOST}\r\n\r\n`);
    const o = await OriginConn.accept(stack);
    const { head } = await o.request();
    assert.equal(head.startLine, 'GET /ten HTTP/1.1');
    // Sent on as keep-alive: the stream could serve a later connection (this close-delimited
    // response ends it, though).
    assert.equal(headerValue(head, 'connection'), 'keep-alive');
    const data = randomBytes(50_000);
    await o.reply(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\n\r\n'), data.subarray(0, 20_000)]));
    await sleep(10);
    await o.reply(data.subarray(20_000));
    o.sock.end();
    // Close-delimited: the response is complete when the connection ends.
    const r = await v.response();
    await v.closed();
    assert.equal(r.status, 200);
    assert.equal(headerValue(r.head, 'transfer-encoding'), undefined);
    assert.equal(headerValue(r.head, 'content-length'), undefined);
    assert.equal(headerValue(r.head, 'connection'), 'close');
    assert.ok(r.body.equals(data), 'body intact');
  });

  test('(c) a chunked response reaches an HTTP/1.1 client chunked, as sent, and the stream serves a next request', async () => {
    const v = await Visitor.open(stack);
    await v.send(get('/chunked'));
    const o = await OriginConn.accept(stack);
    await o.request();
    const pieces = [randomBytes(1), randomBytes(70_000), randomBytes(4097), Buffer.from('\r\n0\r\n\r\n')];
    const body = chunked(pieces, 'X-Checksum: 42\r\nX-Other: a, b\r\n');
    const head = Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Origin: yes\r\n\r\n');
    const all = Buffer.concat([head, body]);
    // Cut at awkward places: inside the head, a size line, data, a CRLF, the trailers.
    const cuts = [10, head.length + 2, head.length + 20, head.length + 60_000, all.length - 30, all.length - 3, all.length - 1];
    let from = 0;
    for (const to of [...cuts, all.length]) {
      await o.reply(all.subarray(from, to));
      from = to;
      await sleep(2);
    }
    const r = await v.response();
    assert.equal(r.status, 200);
    assert.equal(headerCount(r.head, 'transfer-encoding'), 1);
    assert.equal(headerValue(r.head, 'transfer-encoding'), 'chunked');
    assert.equal(headerValue(r.head, 'x-origin'), 'yes');
    assert.ok(r.raw.subarray(r.head.length).equals(body), 'the chunked body as the origin sent it, trailers included');
    assert.ok(r.body.equals(Buffer.concat(pieces)));
    // The end of the body was found exactly: the same stream carries the next request.
    await v.send(get('/after-chunked'));
    assert.equal((await o.request()).head.startLine, 'GET /after-chunked HTTP/1.1');
    await o.reply(ok('after'));
    assert.equal((await v.response()).body.toString(), 'after');
    v.sock.destroy();
  });

  test('(c) a chunked response reaches an HTTP/1.0 client de-chunked, and the connection closes', async () => {
    const v = await Visitor.open(stack);
    await v.send(`GET /chunked-ten HTTP/1.0\r\nHost: ${HOST}\r\nConnection: keep-alive\r\n\r\n`);
    const o = await OriginConn.accept(stack);
    await o.request();
    const pieces = [randomBytes(3000), randomBytes(1), randomBytes(65_536)];
    const all = Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'), chunked(pieces)]);
    await o.reply(all.subarray(0, 100));
    await sleep(5);
    await o.reply(all.subarray(100));
    // No Content-Length or chunked framing for a 1.0 client: the response ends with the connection.
    const r = await v.response();
    await v.closed();
    assert.equal(r.status, 200);
    assert.equal(headerValue(r.head, 'transfer-encoding'), undefined);
    assert.equal(headerValue(r.head, 'connection'), 'close');
    assert.ok(r.body.equals(Buffer.concat(pieces)), 'the chunk data, without framing or trailers');
  });

  test('(d) Expect: 100-continue: the origin\'s 100 Continue is passed on before the body is sent, then the final response', async () => {
    const v = await Visitor.open(stack);
    await v.send(`POST /upload HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n`);
    const o = await OriginConn.accept(stack);
    const head = await o.head();
    assert.equal(headerValue(head, 'expect'), '100-continue');
    await o.reply('HTTP/1.1 100 Continue\r\n\r\n');
    const interim = await v.response();
    assert.equal(interim.raw.toString('latin1'), 'HTTP/1.1 100 Continue\r\n\r\n');
    await v.send('hello');
    assert.equal((await o.inbox.read(5, 'the body at the origin')).toString(), 'hello');
    await o.reply('HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok');
    const r = await v.response();
    assert.equal(r.status, 201);
    assert.equal(r.body.toString(), 'ok');
    // An interim response and the final one in one piece from the origin.
    await v.send(get('/hints'));
    await o.request();
    await o.reply(`HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n${ok('final').toString('latin1')}`);
    const hints = await v.response();
    assert.equal(hints.status, 103);
    assert.equal(headerValue(hints.head, 'link'), '</a.css>; rel=preload');
    const final = await v.response();
    assert.equal(final.status, 200);
    assert.equal(final.body.toString(), 'final');
    v.sock.destroy();
  });

  test('(e) HEAD: a response with Content-Length and no body is followed by a next request on the same connection', async () => {
    const v = await Visitor.open(stack);
    await v.send(get('/head', '', 'HEAD'));
    const o = await OriginConn.accept(stack);
    assert.equal((await o.request()).head.startLine, 'HEAD /head HTTP/1.1');
    await o.reply('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nContent-Type: text/html\r\n\r\n');
    const r = await v.response({ bodyless: true });
    assert.equal(r.status, 200);
    assert.equal(headerValue(r.head, 'content-length'), '1000');
    await v.send(get('/after-head'));
    assert.equal((await o.request()).head.startLine, 'GET /after-head HTTP/1.1');
    await o.reply(ok('next'));
    const next = await v.response();
    assert.ok(next.raw.toString('latin1').startsWith('HTTP/1.1 200 OK\r\n'), 'the next bytes are the next response');
    assert.equal(next.body.toString(), 'next');
    // A HEAD whose response says chunked has no body either.
    await v.send(get('/head-chunked', '', 'HEAD'));
    await o.request();
    await o.reply('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
    const rc = await v.response({ bodyless: true });
    assert.equal(headerValue(rc.head, 'transfer-encoding'), 'chunked');
    await v.send(get('/after-head-chunked'));
    assert.equal((await o.request()).head.startLine, 'GET /after-head-chunked HTTP/1.1');
    await o.reply(ok('again'));
    assert.equal((await v.response()).body.toString(), 'again');
    v.sock.destroy();
  });

  test('(f) 204 and 304 have no body (whatever Content-Length says); the next request follows', async () => {
    const v = await Visitor.open(stack);
    let o: OriginConn | undefined;
    for (const [status, reply] of [
      [204, 'HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n'],
      [304, 'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 1234\r\n\r\n'],
    ] as const) {
      await v.send(get(`/status-${status}`));
      o ??= await OriginConn.accept(stack);
      await o.request();
      await o.reply(reply);
      const r = await v.response();
      assert.equal(r.status, status);
      assert.equal(headerValue(r.head, 'transfer-encoding'), undefined);
      assert.equal(r.raw.length, r.head.length, 'no body');
      await v.send(get(`/after-${status}`));
      assert.equal((await o.request()).head.startLine, `GET /after-${status} HTTP/1.1`);
      await o.reply(ok(`after ${status}`));
      const next = await v.response();
      assert.ok(next.raw.toString('latin1').startsWith('HTTP/1.1 200 OK\r\n'), `the response after the ${status}`);
      assert.equal(next.body.toString(), `after ${status}`);
    }
    v.sock.destroy();
  });

  test('(g) a chunked request body with extensions and trailers reaches the origin byte for byte', async () => {
    const v = await Visitor.open(stack);
    await v.send(`POST /chunked-up HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n`);
    const o = await OriginConn.accept(stack);
    const head = await o.head();
    assert.equal(head.startLine, 'POST /chunked-up HTTP/1.1');
    assert.equal(headerValue(head, 'transfer-encoding'), 'chunked');
    assert.equal(headerValue(head, 'content-length'), undefined);
    const body = chunked([Buffer.from('hello'), randomBytes(100_000), Buffer.from('0\r\n\r\n')], 'X-Checksum: abc\r\nX-Other: 1\r\n');
    // Written in uneven pieces.
    for (let i = 0, n = 1; i < body.length; i += n, n = n * 7 + 3) await v.send(body.subarray(i, i + n));
    const got = await o.inbox.read(body.length, 'the chunked body at the origin');
    assert.ok(got.equals(body), 'byte for byte');
    await sleep(50);
    assert.equal(o.inbox.buffered.length, 0, 'nothing after the last chunk and trailers');
    await o.reply(ok('received'));
    assert.equal((await v.response()).body.toString(), 'received');
    // The end was found exactly: the next request goes down the same stream.
    await v.send(get('/after-chunked-up'));
    assert.equal((await o.request()).head.startLine, 'GET /after-chunked-up HTTP/1.1');
    await o.reply(ok('after'));
    assert.equal((await v.response()).body.toString(), 'after');
    v.sock.destroy();
  });

  for (const [what, bad] of [
    ['chunk data not followed by CRLF', '5\r\nhelloXX\r\n0\r\n\r\n'],
    ['a bad hex size', 'zz\r\nhello\r\n0\r\n\r\n'],
    ['a bare LF after the size', '5\nhello\r\n0\r\n\r\n'],
    ['a 13-digit size', '0000000000005\r\nhello\r\n0\r\n\r\n'],
  ] as const) {
    for (const split of [false, true]) {
      test(`(h) a chunked request body with ${what}${split ? ' (after a good chunk)' : ' (one write)'}: closed, the next request never reaches the origin`, async () => {
        const v = await Visitor.open(stack);
        const head = `POST /bad-chunks HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\n\r\n`;
        const smuggled = get('/smuggled');
        const o = split
          ? await (async () => {
              await v.send(`${head}3\r\nabc\r\n`);
              const c = await OriginConn.accept(stack);
              await c.head();
              await c.inbox.read(8, 'the good chunk at the origin');
              await v.send(bad + smuggled);
              return c;
            })()
          : await (async () => {
              await v.send(head + bad + smuggled);
              // The bad framing may be found before the tunnel client has reached the origin,
              // so the stream can end before any origin connection is made: both are clean.
              return OriginConn.accept(stack, 500).catch(() => undefined);
            })();
        const rest = await v.closed();
        assert.doesNotMatch(rest.toString('latin1'), /^HTTP\/1\.1 2/, 'no success response');
        if (o) {
          const atOrigin = Buffer.concat([o.inbox.buffered, await o.inbox.waitEnd('the stream to the origin to end')]).toString('latin1');
          assert.doesNotMatch(atOrigin, /smuggled/);
        }
        await noOriginConnection(stack);
      });
    }
  }

  test('(i) an origin answering 413 (Connection: close) during a large upload: the client gets the 413, the connection closes, the entry point keeps serving', async () => {
    const v = await Visitor.open(stack);
    const total = 64 * 1024 * 1024;
    await v.send(`POST /big-upload HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: ${total}\r\n\r\n`);
    let sent = 0;
    let stop = false;
    const piece = Buffer.alloc(64 * 1024, 0x61);
    const pump = (async () => {
      while (!stop && sent < total) {
        const err = await new Promise<Error | null | undefined>((r) => v.sock.write(piece, r));
        if (err) return;
        sent += piece.length;
      }
    })();
    const o = await OriginConn.accept(stack);
    await o.head();
    await o.inbox.waitFor((b) => (b.length >= 512 * 1024 ? true : undefined), 'some of the upload at the origin');
    await o.reply('HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    o.sock.end();
    const r = await v.response({ timeoutMs: 10_000 });
    assert.equal(r.status, 413);
    assert.equal(headerValue(r.head, 'connection'), 'close');
    await v.closed();
    stop = true;
    await pump;
    assert.ok(sent < total, `the upload was cut short (${sent} of ${total} bytes sent)`);
    o.sock.destroy();
    // Still serving.
    const v2 = await Visitor.open(stack);
    await v2.send(get('/after-413'));
    const o2 = await OriginConn.accept(stack);
    assert.equal((await o2.request()).head.startLine, 'GET /after-413 HTTP/1.1');
    await o2.reply(ok('fine'));
    assert.equal((await v2.response()).body.toString(), 'fine');
    v2.sock.destroy();
  });

  test('(j) a request head (and body) written one byte at a time', async () => {
    const v = await Visitor.open(stack);
    const req = `POST /bytewise?x=1 HTTP/1.1\r\nHost: ${HOST}\r\nX-Pad: ${'p'.repeat(40)}\r\nContent-Length: 11\r\n\r\nhello world`;
    const accepted = OriginConn.accept(stack);
    for (const byte of Buffer.from(req)) {
      await v.send(Buffer.from([byte]));
      await sleep(1);
    }
    const o = await accepted;
    const { head, body } = await o.request();
    assert.equal(head.startLine, 'POST /bytewise?x=1 HTTP/1.1');
    assert.equal(headerValue(head, 'host'), HOST);
    assert.equal(headerValue(head, 'x-pad'), 'p'.repeat(40));
    assert.equal(body.toString(), 'hello world');
    await o.reply(ok('bytes'));
    assert.equal((await v.response()).body.toString(), 'bytes');
    v.sock.destroy();
  });

  for (const [template, line, hostTemplate] of [
    ['http://app.example.com:8080/p/q?x=1', 'GET /p/q?x=1 HTTP/1.1', 'app.example.com:8080'],
    ['http://app.example.com', 'GET / HTTP/1.1', 'app.example.com'],
    ['http://app.example.com?x=1', 'GET /?x=1 HTTP/1.1', 'app.example.com'],
    ['http://user@app.example.com/a', 'GET /a HTTP/1.1', 'app.example.com'],
  ] as const) {
    test(`(k) absolute-form ${template}: sent on as "${line}" with Host ${hostTemplate} (routed by the target, not the Host header)`, async () => {
      const target = template.replace('app.example.com', HOST);
      const host = hostTemplate.replace('app.example.com', HOST);
      const v = await Visitor.open(stack);
      await v.send(`GET ${target} HTTP/1.1\r\nHost: nowhere.invalid\r\n\r\n`);
      const o = await OriginConn.accept(stack);
      const { head } = await o.request();
      assert.equal(head.startLine, line);
      assert.equal(headerCount(head, 'host'), 1);
      assert.equal(headerValue(head, 'host'), host);
      await o.reply(ok('absolute'));
      assert.equal((await v.response()).body.toString(), 'absolute');
      v.sock.destroy();
    });
  }

  test('(l) a response head over 64 KiB gives 502, and the visitor connection serves a next request', async () => {
    const v = await Visitor.open(stack);
    await v.send(get('/huge-head'));
    const o = await OriginConn.accept(stack);
    await o.request();
    let huge = 'HTTP/1.1 200 OK\r\n';
    for (let i = 0; huge.length <= 64 * 1024; i++) huge += `X-Big-${i}: ${'x'.repeat(1000)}\r\n`;
    await o.reply(`${huge}\r\nbody`);
    const r = await v.response();
    assert.equal(r.raw.toString('latin1'), 'HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n');
    await v.send(get('/after-huge-head'));
    const o2 = await OriginConn.accept(stack);
    assert.equal((await o2.request()).head.startLine, 'GET /after-huge-head HTTP/1.1');
    await o2.reply(ok('recovered'));
    assert.equal((await v.response()).body.toString(), 'recovered');
    v.sock.destroy();
  });

  for (const [what, garbage] of [
    ['a line of garbage and an empty line', 'garbage garbage garbage\r\n\r\n'],
    ['binary garbage', '\x00\x01\x02\xff\xfe\n\n'],
    ['an HTTP/2 status line', 'HTTP/2 200\r\n\r\n'],
    ['a status line followed by a malformed header line', 'HTTP/1.1 200 OK\r\nBad Header Line\r\n\r\n'],
    ['a malformed Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\n'],
  ] as const) {
    test(`(l) an origin that sends ${what} instead of a response: 502`, async () => {
      const v = await Visitor.open(stack);
      await v.send(get('/garbage'));
      const o = await OriginConn.accept(stack);
      await o.request();
      await o.reply(Buffer.from(garbage, 'latin1'));
      const r = await v.response();
      assert.equal(r.status, 502);
      assert.equal(r.raw.toString('latin1'), 'HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n');
      v.sock.destroy();
    });
  }

  test('(m) a keep-alive visitor connection: 20 requests down one tunnel stream (one origin connection)', async () => {
    const v = await Visitor.open(stack);
    let o: OriginConn | undefined;
    for (let i = 0; i < 20; i++) {
      await v.send(get(`/k/${i}`));
      o ??= await OriginConn.accept(stack);
      const { head } = await o.request();
      assert.equal(head.startLine, `GET /k/${i} HTTP/1.1`);
      assert.equal(headerValue(head, 'connection'), 'keep-alive');
      await o.reply(ok(`k${i}`));
      const r = await v.response();
      assert.equal(r.body.toString(), `k${i}`);
      assert.equal(headerValue(r.head, 'connection'), undefined);
    }
    await noOriginConnection(stack);
    v.sock.destroy();
  });
});

describe('entry point: idle streams serve later connections of the same client IP', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack();
  });
  after(() => stack.stop());

  /** One request with Connection: close that reaches the origin on a new connection (returned), answered, the visitor closed. */
  async function closingExchange(path: string): Promise<OriginConn> {
    const v = await Visitor.open(stack);
    await v.send(get(path, 'Connection: close\r\n'));
    const o = await OriginConn.accept(stack);
    await o.request();
    await o.reply(ok(path));
    await v.response();
    await v.closed();
    return o;
  }

  test('(n) three visitors with Connection: close one after another: one origin connection, sent on as keep-alive; each visitor gets Connection: close', async () => {
    let o: OriginConn | undefined;
    for (let i = 0; i < 3; i++) {
      const v = await Visitor.open(stack);
      await v.send(get(`/n/${i}`, 'Connection: close\r\n'));
      o ??= await OriginConn.accept(stack);
      const { head } = await o.request();
      assert.equal(head.startLine, `GET /n/${i} HTTP/1.1`);
      assert.equal(headerValue(head, 'connection'), 'keep-alive');
      await o.reply(ok(`n${i}`));
      const r = await v.response();
      assert.equal(r.body.toString(), `n${i}`);
      assert.equal(headerValue(r.head, 'connection'), 'close');
      await v.closed();
    }
    await noOriginConnection(stack);
  });

  test('(n) a keep-alive visitor that leaves: its stream carries the next visitor\'s request', async () => {
    const v1 = await Visitor.open(stack);
    await v1.send(get('/first'));
    const o = await OriginConn.accept(stack);
    await o.request();
    await o.reply(ok('first'));
    assert.equal((await v1.response()).body.toString(), 'first');
    v1.sock.destroy();
    await sleep(50);
    const v2 = await Visitor.open(stack);
    await v2.send(get('/second'));
    assert.equal((await o.request()).head.startLine, 'GET /second HTTP/1.1');
    await o.reply(ok('second'));
    assert.equal((await v2.response()).body.toString(), 'second');
    await noOriginConnection(stack);
    v2.sock.destroy();
  });

  test('(n) another client address (X-Forwarded-For) does not take the idle stream', async () => {
    const o1 = await closingExchange('/mine');
    const v2 = await Visitor.open(stack);
    await v2.send(get('/theirs', 'X-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n'));
    const o2 = await OriginConn.accept(stack);
    assert.equal((await o2.request()).head.startLine, 'GET /theirs HTTP/1.1');
    await o2.reply(ok('theirs'));
    assert.equal((await v2.response()).body.toString(), 'theirs');
    await v2.closed();
    assert.equal(o1.inbox.buffered.length, 0, 'nothing reached the first stream');
  });

  test('(n) an origin that closes an idle stream: the next visitor\'s POST goes down a new one', async () => {
    const o1 = await closingExchange('/before-close');
    o1.sock.end();
    await o1.inbox.waitEnd('the stream to end after the origin closed');
    await sleep(50);
    const v2 = await Visitor.open(stack);
    await v2.send(`POST /after-close HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc`);
    const o2 = await OriginConn.accept(stack);
    const { head, body } = await o2.request();
    assert.equal(head.startLine, 'POST /after-close HTTP/1.1');
    assert.equal(body.toString(), 'abc');
    await o2.reply(ok('posted'));
    const r = await v2.response();
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'posted');
  });

  test(`(n) an idle stream is closed after ${SHARED_IDLE_MS} ms`, async () => {
    const o = await closingExchange('/idle');
    const t0 = Date.now();
    await o.inbox.waitEnd('the idle stream to be closed', SHARED_IDLE_MS + 3_000);
    const waited = Date.now() - t0;
    assert.ok(waited >= SHARED_IDLE_MS - 100, `closed after ${waited} ms`);
  });
});

describe('entry point HTTP framing with entrypoint.keepalive=false', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack('&entrypoint.keepalive=false');
  });
  after(() => stack.stop());

  test('(m) one origin connection per request, each with Connection: close, on one keep-alive visitor connection', async () => {
    const v = await Visitor.open(stack);
    for (let i = 0; i < 20; i++) {
      await v.send(get(`/c/${i}`));
      const o = await OriginConn.accept(stack);
      const { head } = await o.request();
      assert.equal(head.startLine, `GET /c/${i} HTTP/1.1`);
      assert.equal(headerValue(head, 'connection'), 'close');
      await o.reply(ok(`c${i}`));
      const r = await v.response();
      assert.equal(r.body.toString(), `c${i}`);
      assert.equal(headerValue(r.head, 'connection'), undefined, 'the visitor connection stays open');
      await o.inbox.waitEnd('the stream (origin connection) to end after its response');
    }
    await noOriginConnection(stack);
    v.sock.destroy();
  });
});
