/**
 * One request and its response through an Exchange: the visitor side is a real loopback
 * socket, the tunnel stream a PassThrough; the connection is a recording ExchangeHost. What the
 * visitor reads, and what the exchange asks of its connection, for each kind of framing, an
 * interim response, a bad response, a retry on a stale stream, and request body framing.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { PassThrough, type Duplex } from 'node:stream';
import { silentLogger } from '../../../../src/observe/logger';
import { abort } from '../../../../src/io/pipe';
import { Exchange, type ExchangeHost } from '../../../../src/handler/tunnel/entrypoint/http/exchange';
import { Upstream } from '../../../../src/handler/tunnel/entrypoint/http/upstream';
import { readRequestHead } from '../../../../src/handler/tunnel/entrypoint/http/head';
import { bodyFraming } from '../../../../src/protocol/http/response';
import type { HttpRequestHead } from '../../../../src/protocol/sniff/http';

let server: net.Server;
let port = 0;
const accepted: net.Socket[] = [];
before(async () => {
  server = net.createServer({ allowHalfOpen: true }, (s) => accepted.push(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as net.AddressInfo).port;
});
after(() => server.close());

/** A connected pair: `near` is the proxy's socket, `far` the visitor's, with what it read. */
async function pair(): Promise<{ near: net.Socket; far: net.Socket; read: () => string }> {
  const far = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await new Promise<void>((r) => far.once('connect', () => r()));
  while (accepted.length === 0) await new Promise((r) => setImmediate(r));
  const near = accepted.shift()!;
  let text = '';
  far.on('data', (c: Buffer) => (text += c.toString('latin1')));
  return { near, far, read: () => text };
}

class Host implements ExchangeHost {
  readonly log = silentLogger;
  readonly peer = '10.1.1.1:4000';
  clientEnded = false;
  readonly calls: string[] = [];
  reopened: PassThrough[] = [];
  /** What was written to the streams opened for retries. */
  written = '';
  constructor(readonly socket: net.Socket) {}
  upstreamData(): void {}
  upstreamEnd(): void {}
  upstreamDrain(): void {}
  /** Requests counted for metrics: "tunnel host code". */
  readonly counted: string[] = [];
  countRequest(tunnelId: string, host: string, code: string): void {
    this.counted.push(`${tunnelId} ${host} ${code}`);
  }
  responseStarted(): void {
    this.calls.push('responseStarted');
  }
  exchangeGone(): void {
    this.calls.push('gone');
  }
  spliceCurrent(_ex: Exchange, rest: Buffer): void {
    this.calls.push(`splice:${rest.toString('latin1')}`);
  }
  requestSent(): void {
    this.calls.push('sent');
  }
  openUpstream(): Upstream {
    const s = new PassThrough();
    s.on('data', (c: Buffer) => (this.written += c.toString('latin1')));
    this.reopened.push(s);
    return new Upstream(s, 'app.local:80', this.peer, this.peer);
  }
  clientOf(): string {
    return this.peer;
  }
  keepStream(key: string): void {
    this.calls.push(`keep:${key}`);
  }
  putIdle(up: Upstream): void {
    this.calls.push('putIdle');
    up.release();
  }
  continueOrFinish(keep: boolean): void {
    this.calls.push(keep ? 'next' : 'finish');
  }
  reset(): void {
    this.calls.push('reset');
    abort(this.socket);
  }
}

function head(text: string): HttpRequestHead {
  const r = readRequestHead(Buffer.from(text, 'latin1'), false);
  assert.equal(r.kind, 'head');
  return (r as { head: HttpRequestHead }).head;
}

function exchange(host: Host, reqText: string, opts: { reused?: boolean; keepClient?: boolean; stream?: Duplex } = {}): Exchange {
  const h = head(reqText);
  const up = new Upstream(opts.stream ?? new PassThrough(), 'app.local:80', host.peer, host.peer);
  up.owner = host;
  return new Exchange(host, {
    up,
    head: h,
    headText: 'HEAD-TEXT',
    tunnelId: 't',
    dst: 'app.local:80',
    key: undefined,
    reused: opts.reused ?? false,
    keepClient: opts.keepClient ?? true,
    reqBody: bodyFraming(h.headers, true),
    keepalive: true,
    forwardable: true,
    onEnd: undefined,
  });
}

async function until(cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('hang guard');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('Exchange: responses', () => {
  test('Content-Length: head and body in one piece, hop-by-hop headers dropped, the stream kept', async () => {
    const { near, far, read } = await pair();
    const host = new Host(near);
    const ex = exchange(host, 'GET / HTTP/1.1\r\nHost: app.local\r\n\r\n');
    ex.responseData(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nKeep-Alive: timeout=5\r\nX-A: 1\r\n\r\nhel'));
    assert.equal(ex.done, false);
    ex.responseData(Buffer.from('lo'));
    await until(() => read().endsWith('hello'));
    assert.equal(read(), 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello');
    assert.deepEqual(host.calls, ['responseStarted', 'gone', 'putIdle', 'next']);
    assert.deepEqual(host.counted, ['t app.local:80 200'], 'counted once, with the status sent');
    far.destroy();
  });

  test('an HTTP/1.0 client gets a chunked body de-chunked, and the connection closes after it', async () => {
    const { near, far, read } = await pair();
    const host = new Host(near);
    const ex = exchange(host, 'GET / HTTP/1.0\r\nHost: app.local\r\n\r\n', { keepClient: false });
    ex.responseData(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n'));
    await until(() => read().endsWith('abcde'));
    assert.equal(read(), 'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabcde');
    assert.equal(host.calls.at(-1), 'finish');
    far.destroy();
  });

  test('a close-delimited body is re-chunked for a keep-alive client, ended by the stream end', async () => {
    const { near, far, read } = await pair();
    const host = new Host(near);
    const ex = exchange(host, 'GET / HTTP/1.1\r\nHost: app.local\r\n\r\n');
    ex.responseData(Buffer.from('HTTP/1.1 200 OK\r\n\r\nabc'));
    ex.streamEnded(undefined);
    await until(() => read().endsWith('0\r\n\r\n'));
    assert.equal(read(), 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n');
    assert.ok(host.calls.includes('next'));
    far.destroy();
  });

  test('an interim 100 goes out before the response', async () => {
    const { near, far, read } = await pair();
    const host = new Host(near);
    const ex = exchange(host, 'GET / HTTP/1.1\r\nHost: app.local\r\n\r\n');
    ex.responseData(Buffer.from('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n'));
    await until(() => read().includes('204'));
    assert.equal(read(), 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n');
    assert.deepEqual(host.counted, ['t app.local:80 204'], 'the interim response is not counted');
    far.destroy();
  });

  test('a bad response head: 502 to the client, the stream dropped', async () => {
    const { near, far, read } = await pair();
    const host = new Host(near);
    const stream = new PassThrough();
    const ex = exchange(host, 'GET / HTTP/1.1\r\nHost: app.local\r\n\r\n', { stream });
    ex.responseData(Buffer.from('NOT HTTP AT ALL\r\n\r\n'));
    await until(() => read().length > 0);
    assert.equal(read(), 'HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n');
    assert.deepEqual(host.counted, ['t app.local:80 502']);
    assert.equal(stream.destroyed, true);
    assert.ok(host.calls.includes('next'), 'a keep-alive client stays');
    far.destroy();
  });

  test('a 101 hands the stream over to a splice with the bytes after the head', async () => {
    const { near, far, read } = await pair();
    const host = new Host(near);
    const ex = exchange(host, 'GET / HTTP/1.1\r\nHost: app.local\r\n\r\n');
    ex.responseData(Buffer.from('HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nRAW'));
    await until(() => read().length > 0);
    assert.equal(read(), 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n');
    assert.equal(host.calls.at(-1), 'splice:RAW');
    assert.deepEqual(host.counted, ['t app.local:80 101']);
    far.destroy();
  });

  test('a response cut short (the stream failed mid-body) resets the client too', async () => {
    const { near, far, read } = await pair();
    const gone = new Promise<string | undefined>((r) => {
      far.once('error', (err: NodeJS.ErrnoException) => r(err.code));
      far.once('end', () => r('end'));
    });
    const host = new Host(near);
    const ex = exchange(host, 'GET / HTTP/1.1\r\nHost: app.local\r\n\r\n');
    ex.responseData(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'));
    // The stream fails after the first bytes reached the visitor (a later event, as in a relay).
    await until(() => read().endsWith('abc'));
    ex.streamEnded(new Error('tunnel stream closed'));
    assert.equal(host.calls.at(-1), 'reset');
    // A reset, not a clean FIN after a short body.
    assert.equal(await gone, 'ECONNRESET');
    far.destroy();
  });
});

describe('Exchange: retries and request bodies', () => {
  test('a reused stream that ends before any response byte: the request goes again on a new stream, once', async () => {
    const { near, far, read } = await pair();
    const host = new Host(near);
    const ex = exchange(host, 'GET / HTTP/1.1\r\nHost: app.local\r\n\r\n', { reused: true });
    ex.streamEnded(undefined);
    assert.equal(host.reopened.length, 1);
    await until(() => host.written.length > 0);
    assert.equal(host.written, 'HEAD-TEXT');
    assert.equal(ex.retried, true);
    // The new stream fails too: no second retry, a 503.
    ex.streamEnded(new Error('gone'));
    await until(() => read().length > 0);
    assert.match(read(), /^HTTP\/1\.1 503 Service Unavailable\r\n/);
    far.destroy();
  });

  test('a POST is not retried', async () => {
    const { near, far, read } = await pair();
    const host = new Host(near);
    const ex = exchange(host, 'POST / HTTP/1.1\r\nHost: app.local\r\nContent-Length: 0\r\n\r\n', { reused: true });
    ex.streamEnded(undefined);
    assert.equal(host.reopened.length, 0);
    await until(() => read().length > 0);
    assert.match(read(), /^HTTP\/1\.1 503 /);
    far.destroy();
  });

  test('request bodies: Content-Length counts down; chunked ends at its last chunk; bad chunks throw', async () => {
    const { near, far } = await pair();
    const host = new Host(near);
    const cl = exchange(host, 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n');
    assert.equal(cl.requestBody(Buffer.from('ab')), 2);
    assert.equal(cl.reqDone, false);
    assert.equal(cl.requestBody(Buffer.from('cdGET / HTTP/1.1')), 2);
    assert.equal(cl.reqDone, true);
    const ch = exchange(host, 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n');
    const body = '2\r\nab\r\n0\r\n\r\n';
    assert.equal(ch.requestBody(Buffer.from(`${body}NEXT`)), body.length);
    assert.equal(ch.reqDone, true);
    const bad = exchange(host, 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n');
    assert.throws(() => bad.requestBody(Buffer.from('zz\r\n')));
    far.destroy();
  });
});
