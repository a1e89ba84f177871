/**
 * What the listeners do with input that is not what they expect: wrong WebSocket path, plain
 * HTTP, garbage instead of TLS, clients that stall in the handshake. Each case is answered or
 * dropped, logged once with the peer address, and the listener keeps serving.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { Metadata } from '../../../src/core/metadata';
import { BurrowError } from '../../../src/core/errors';
import type { Conn, StreamListener } from '../../../src/core/transport';
import { DIALERS, LISTENERS } from '../../../src/transport';
import { makeCa, makeCert, type CertFiles, type TestCa } from '../../helpers/certs';
import { connect, memoryLogger, readN, waitFor, type MemoryLogger } from '../../helpers/net';

let ca: TestCa;
let serverCert: CertFiles;
const cleanups: Array<() => unknown> = [];

before(async () => {
  ca = await makeCa();
  serverCert = await makeCert(ca, { cn: 'localhost', san: ['localhost', '127.0.0.1'] });
});
after(async () => {
  for (const c of cleanups.reverse()) await c();
  await ca?.cleanup();
});

interface Server {
  listener: StreamListener;
  port: number;
  conns: Conn[];
  log: MemoryLogger;
}

async function echoServer(kind: keyof typeof LISTENERS, md: Record<string, unknown> = {}): Promise<Server> {
  const log = memoryLogger('debug');
  const listener = LISTENERS[kind]!({
    addr: '127.0.0.1:0',
    metadata: new Metadata(md),
    tls: { certFile: serverCert.certFile, keyFile: serverCert.keyFile },
    logger: log.logger,
  });
  const conns: Conn[] = [];
  await listener.listen((conn) => {
    conns.push(conn);
    conn.stream.on('error', () => undefined);
    conn.stream.pipe(conn.stream);
  });
  cleanups.push(async () => {
    await listener.close();
    for (const c of conns) c.stream.destroy();
  });
  return { listener, port: Number(listener.address().split(':')[1]), conns, log };
}

/** Raw TCP client: sends `data`, collects everything until the server closes. */
async function rawExchange(port: number, data: string | Buffer, timeoutMs = 5_000): Promise<{ reply: string; closedBy: string }> {
  const sock = await connect(port);
  cleanups.push(() => sock.destroy());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => reject(new Error('server did not close the connection')), timeoutMs);
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('error', () => undefined);
    sock.once('close', () => {
      clearTimeout(timer);
      resolve({ reply: Buffer.concat(chunks).toString('latin1'), closedBy: 'server' });
    });
    sock.once('end', () => sock.end());
    if (data.length) sock.write(data);
  });
}

function upgradeRequest(path: string, extra = ''): string {
  return (
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`
  );
}

async function stillServes(kind: keyof typeof DIALERS, port: number): Promise<void> {
  const dialer = DIALERS[kind]!({ metadata: new Metadata({}), logger: memoryLogger('silent').logger });
  const conn = await dialer.dial(`127.0.0.1:${port}`);
  cleanups.push(() => conn.stream.destroy());
  const reading = readN(conn.stream, 5);
  conn.stream.write('hello');
  assert.equal((await reading).toString(), 'hello');
}

function logged(log: MemoryLogger, msg: string | RegExp): Array<Record<string, unknown>> {
  return log.lines.filter((l) => (typeof msg === 'string' ? l['msg'] === msg : msg.test(String(l['msg']))));
}

describe('ws listener', () => {
  let server: Server;
  before(async () => {
    server = await echoServer('ws', { handshakeTimeout: '400ms' });
  });

  it('answers a WebSocket upgrade on a wrong path with 404 and closes', async () => {
    const { reply } = await rawExchange(server.port, upgradeRequest('/nope'));
    assert.match(reply, /^HTTP\/1\.1 404 Not Found\r\n/);
    assert.ok(reply.endsWith('\r\n\r\n404 page not found\n'));
    const lines = logged(server.log, 'ws: no handler for path');
    assert.equal(lines.length, 1);
    assert.match(String(lines[0]!['remote']), /^127\.0\.0\.1:\d+$/);
    assert.equal(server.conns.length, 0);
  });

  it('answers a plain GET on the ws path with 400 and closes', async () => {
    const { reply } = await rawExchange(server.port, 'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    assert.match(reply, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.equal(logged(server.log, 'ws: not a websocket request').length, 1);
  });

  it('answers a plain GET elsewhere with 404 and closes', async () => {
    const { reply } = await rawExchange(server.port, 'GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    assert.match(reply, /^HTTP\/1\.1 404 Not Found\r\n/);
    assert.match(reply, /404 page not found\n$/);
  });

  it('refuses a broken upgrade (bad Sec-WebSocket-Version) with 400', async () => {
    const bad = upgradeRequest('/ws').replace('Sec-WebSocket-Version: 13', 'Sec-WebSocket-Version: 99');
    const { reply } = await rawExchange(server.port, bad);
    assert.match(reply, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.equal(logged(server.log, 'ws: bad websocket handshake').length, 1);
  });

  it('answers non-HTTP garbage with 400 and closes', async () => {
    const { reply } = await rawExchange(server.port, Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5, 13, 10, 13, 10]));
    assert.match(reply, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.ok(logged(server.log, 'ws: bad HTTP request').length >= 1);
  });

  it('drops a client that sends nothing within handshakeTimeout', async () => {
    const started = Date.now();
    const { reply } = await rawExchange(server.port, '', 5_000);
    const took = Date.now() - started;
    assert.equal(reply, '');
    assert.ok(took >= 350 && took < 60_000, `dropped after ${took}ms`);
    assert.equal(logged(server.log, 'ws: websocket handshake timed out').length, 1);
  });

  it('drops a client that stalls in the middle of its request head', async () => {
    const { reply } = await rawExchange(server.port, 'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n', 5_000);
    assert.equal(reply, '');
  });

  it('still serves a good client', async () => {
    await stillServes('ws', server.port);
  });

  it('the dialer reports a wrong path clearly', async () => {
    const dialer = DIALERS['ws']!({ metadata: new Metadata({ path: '/elsewhere' }), logger: memoryLogger('silent').logger });
    await assert.rejects(dialer.dial(`127.0.0.1:${server.port}`), (err: Error) => {
      assert.ok(err instanceof BurrowError);
      assert.equal(err.code, 'BURROW_ERR_DIAL');
      assert.match(err.message, /websocket handshake with 127\.0\.0\.1:\d+: .*404/);
      return true;
    });
  });
});

for (const kind of ['tls', 'wss'] as const) {
  describe(`${kind} listener`, () => {
    let server: Server;
    before(async () => {
      server = await echoServer(kind, { handshakeTimeout: '400ms' });
    });

    it('logs garbage instead of a ClientHello, closes, and keeps serving', async () => {
      const before = logged(server.log, 'tls handshake failed').length;
      await rawExchange(server.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      await waitFor(() => logged(server.log, 'tls handshake failed').length > before, 5_000, 'log line');
      const line = logged(server.log, 'tls handshake failed').at(-1)!;
      assert.equal(line['level'], 'warn');
      assert.match(String(line['remote']), /^127\.0\.0\.1:\d+$/);
      assert.equal(server.conns.length, 0);
      await stillServes(kind, server.port);
    });

    it('drops a client that never completes the TLS handshake', async () => {
      const before = logged(server.log, 'tls handshake failed').length;
      const started = Date.now();
      await rawExchange(server.port, '', 5_000);
      const took = Date.now() - started;
      assert.ok(took >= 350 && took < 60_000, `dropped after ${took}ms`);
      await waitFor(() => logged(server.log, 'tls handshake failed').length > before, 5_000, 'log line');
      assert.match(String(logged(server.log, 'tls handshake failed').at(-1)!['code']), /TIMEOUT/);
      await stillServes(kind, server.port);
    });
  });
}

describe('wss listener after TLS', () => {
  it('drops a client that completes TLS but never sends the upgrade', async () => {
    const server = await echoServer('wss', { handshakeTimeout: '400ms' });
    const sock = tls.connect({ port: server.port, host: '127.0.0.1', rejectUnauthorized: false });
    cleanups.push(() => sock.destroy());
    sock.on('error', () => undefined);
    await new Promise<void>((r) => sock.once('secureConnect', () => r()));
    const started = Date.now();
    await new Promise<void>((r) => sock.once('close', () => r()));
    const took = Date.now() - started;
    assert.ok(took >= 300 && took < 60_000, `dropped after ${took}ms`);
    assert.equal(logged(server.log, 'wss: websocket handshake timed out').length, 1);
  });
});

describe('dialers', () => {
  it('tcp: a refused connection names the address', async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const { port } = probe.address() as net.AddressInfo;
    await new Promise<void>((r) => probe.close(() => r()));
    const dialer = DIALERS['tcp']!({ metadata: new Metadata({}), logger: memoryLogger('silent').logger });
    await assert.rejects(dialer.dial(`127.0.0.1:${port}`), (err: Error) => {
      assert.ok(err instanceof BurrowError);
      assert.equal(err.code, 'BURROW_ERR_DIAL');
      assert.match(err.message, new RegExp(`dial tcp 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
      return true;
    });
  });

  it('tcp: an empty host dials 127.0.0.1', async () => {
    const server = await echoServer('tcp');
    const dialer = DIALERS['tcp']!({ metadata: new Metadata({}), logger: memoryLogger('silent').logger });
    const conn = await dialer.dial(`:${server.port}`);
    cleanups.push(() => conn.stream.destroy());
    assert.equal(conn.remote, `127.0.0.1:${server.port}`);
  });

  for (const kind of ['tcp', 'tls', 'ws', 'wss'] as const) {
    it(`${kind}: an aborted signal stops the dial`, async () => {
      const server = await echoServer(kind);
      const dialer = DIALERS[kind]!({ metadata: new Metadata({}), logger: memoryLogger('silent').logger });
      const ac = new AbortController();
      ac.abort(new Error('shutting down'));
      await assert.rejects(dialer.dial(`127.0.0.1:${server.port}`, ac.signal), /shutting down/);
    });
  }

  for (const kind of ['ws', 'wss', 'tls'] as const) {
    it(`${kind}: a server that never answers the handshake times out`, async () => {
      const sockets: Duplex[] = [];
      // Accepts TCP (and TLS for wss) and then stays silent.
      const silent =
        kind === 'wss'
          ? tls.createServer({ cert: serverCert.certPem, key: serverCert.keyPem }, (s) => sockets.push(s))
          : net.createServer((s) => sockets.push(s));
      await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
      cleanups.push(() => {
        for (const s of sockets) s.destroy();
        return new Promise<void>((r) => silent.close(() => r()));
      });
      const { port } = silent.address() as net.AddressInfo;
      const dialer = DIALERS[kind]!({ metadata: new Metadata({ handshakeTimeout: '300ms' }), logger: memoryLogger('silent').logger });
      const started = Date.now();
      await assert.rejects(dialer.dial(`127.0.0.1:${port}`), (err: Error) => {
        assert.ok(err instanceof BurrowError);
        assert.equal(err.code, 'BURROW_ERR_TIMEOUT');
        assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}.*300ms`));
        return true;
      });
      assert.ok(Date.now() - started < 3_000);
    });
  }
});

describe('listen errors', () => {
  for (const kind of ['tcp', 'tls', 'ws', 'wss'] as const) {
    it(`${kind}: listen() rejects when the address is taken`, async () => {
      const first = await echoServer(kind);
      const second = LISTENERS[kind]!({
        addr: first.listener.address(),
        metadata: new Metadata({}),
        tls: { certFile: serverCert.certFile, keyFile: serverCert.keyFile },
        logger: memoryLogger('silent').logger,
      });
      await assert.rejects(second.listen(() => undefined), /EADDRINUSE/);
      await second.close();
      await stillServes(kind, first.port);
    });
  }
});
