/**
 * WebSocket specifics (protocol.md §8.2, config.md §3.5): path, Host and extra headers,
 * response headers, forwarded client IPs, text messages, keepalive pings, compression and
 * backpressure.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type net from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { Metadata } from '../../../src/core/metadata';
import type { Conn, StreamListener } from '../../../src/core/transport';
import { DIALERS, LISTENERS } from '../../../src/transport';
import type { WsStream } from '../../../src/transport/ws';
import { memoryLogger, randomBytes, readN, sha256, waitFor } from '../../helpers/net';

const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

interface Server {
  listener: StreamListener;
  addr: string;
  conns: Conn[];
}

async function wsServer(md: Record<string, unknown> = {}, echo = true): Promise<Server> {
  const listener = LISTENERS['ws']!({ addr: '127.0.0.1:0', metadata: new Metadata(md), logger: memoryLogger('silent').logger });
  const conns: Conn[] = [];
  await listener.listen((conn) => {
    conns.push(conn);
    conn.stream.on('error', () => undefined);
    if (echo) conn.stream.pipe(conn.stream);
  });
  cleanups.push(async () => {
    await listener.close();
    for (const c of conns) c.stream.destroy();
  });
  return { listener, addr: listener.address(), conns };
}

async function dial(addr: string, md: Record<string, unknown> = {}): Promise<Conn> {
  const dialer = DIALERS['ws']!({ metadata: new Metadata(md), logger: memoryLogger('silent').logger });
  const conn = await dialer.dial(addr);
  conn.stream.on('error', () => undefined);
  cleanups.push(() => conn.stream.destroy());
  return conn;
}

async function echoes(conn: Conn): Promise<void> {
  const probe = randomBytes(1000);
  const reading = readN(conn.stream, probe.length);
  conn.stream.write(probe);
  assert.equal(sha256(await reading), sha256(probe));
}

/** A bare HTTP server that records the upgrade request and answers 404. */
async function upgradeRecorder(): Promise<{ addr: string; requests: http.IncomingMessage[] }> {
  const requests: http.IncomingMessage[] = [];
  const server = http.createServer();
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
    requests.push(req);
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return { addr: `127.0.0.1:${(server.address() as net.AddressInfo).port}`, requests };
}

describe('ws handshake options', () => {
  it('uses the path from metadata on both sides', async () => {
    const server = await wsServer({ path: '/tunnel' });
    await echoes(await dial(server.addr, { 'ws.path': '/tunnel' }));
    await assert.rejects(dial(server.addr), /404/);
  });

  it('sends Host and extra headers from metadata', async () => {
    const rec = await upgradeRecorder();
    await assert.rejects(dial(rec.addr, { host: 'cdn.example.com', header: { 'X-Token': 'abc', 'User-Agent': 'burrow-test' } }));
    const req = rec.requests[0]!;
    assert.equal(req.url, '/ws');
    assert.equal(req.headers.host, 'cdn.example.com');
    assert.equal(req.headers['x-token'], 'abc');
    assert.equal(req.headers['user-agent'], 'burrow-test');
    assert.equal(req.headers['sec-websocket-extensions'], undefined);
  });

  it('defaults Host to the node address as given, port included', async () => {
    const rec = await upgradeRecorder();
    await assert.rejects(dial(rec.addr));
    assert.equal(rec.requests[0]!.headers.host, rec.addr);
  });

  it('adds the listener response headers to the 101', async () => {
    const server = await wsServer({ header: { 'X-Served-By': 'burrow' } });
    const ws = new WebSocket(`ws://${server.addr}/ws`);
    cleanups.push(() => ws.terminate());
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      ws.once('upgrade', resolve);
      ws.once('error', reject);
    });
    assert.equal(res.headers['x-served-by'], 'burrow');
  });
});

describe('ws listener client address', () => {
  it('takes X-Forwarded-For (first entry) for Conn.remote from a trusted peer', async () => {
    const server = await wsServer({ trustedProxies: '10.0.0.0/8,127.0.0.1' });
    const conn = await dial(server.addr, { header: { 'X-Forwarded-For': '203.0.113.7, 10.0.0.1' } });
    await echoes(conn);
    assert.equal(server.conns[0]!.remote, '203.0.113.7:0');
  });

  it('prefers CF-Connecting-IP and ignores a header that is not an IP (trusted peer)', async () => {
    const server = await wsServer({ trustedProxies: ['127.0.0.0/8', '::1'] });
    await echoes(await dial(server.addr, { header: { 'CF-Connecting-IP': '2001:db8::1', 'X-Real-Ip': '198.51.100.1' } }));
    assert.equal(server.conns[0]!.remote, '[2001:db8::1]:0');
    const plain = await dial(server.addr, { header: { 'X-Real-Ip': 'not-an-ip' } });
    await echoes(plain);
    assert.equal(server.conns[1]!.remote, plain.local);
  });

  it('ignores forwarded headers from a peer that is not trusted (the default: nobody)', async () => {
    for (const md of [{}, { trustedProxies: '10.0.0.0/8,::1' }]) {
      const server = await wsServer(md);
      const conn = await dial(server.addr, {
        header: { 'X-Forwarded-For': '203.0.113.7', 'CF-Connecting-IP': '203.0.113.8', 'X-Real-Ip': '203.0.113.9' },
      });
      await echoes(conn);
      assert.equal(server.conns[0]!.remote, conn.local, JSON.stringify(md));
    }
  });
});

describe('ws data', () => {
  it('delivers text and binary messages as one byte stream', async () => {
    const server = await wsServer({}, false);
    const ws = new WebSocket(`ws://${server.addr}/ws`, { perMessageDeflate: false });
    cleanups.push(() => ws.terminate());
    await new Promise((r) => ws.once('open', r));
    ws.send('hello ');
    ws.send(Buffer.from('binary '), { binary: true });
    ws.send('world');
    await waitFor(() => server.conns.length === 1);
    assert.equal((await readN(server.conns[0]!.stream, 18)).toString(), 'hello binary world');
  });

  it('negotiates permessage-deflate only with enableCompression=true', async () => {
    const plain = await wsServer();
    const c1 = await dial(plain.addr);
    assert.equal((c1.stream as WsStream).webSocket.extensions, '');

    const zipped = await wsServer({ enableCompression: true });
    const c2 = await dial(zipped.addr, { enableCompression: 'true' });
    assert.equal((c2.stream as WsStream).webSocket.extensions, 'permessage-deflate');
    await echoes(c2);
  });

  it('applies backpressure to a slow reader and loses nothing', async () => {
    const server = await wsServer({}, false);
    const conn = await dial(server.addr);
    const payload = randomBytes(64 * 1024 * 1024);
    const CHUNK = 64 * 1024;
    let off = 0;
    /** Writes until the writer has been blocked for `stallMs`; false when all was written. */
    const writeUntilStalled = async (stallMs: number): Promise<boolean> => {
      while (off < payload.length) {
        const ok = conn.stream.write(payload.subarray(off, off + CHUNK));
        off += CHUNK;
        if (!ok) {
          const drained = await new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => {
              conn.stream.off('drain', onDrain);
              resolve(false);
            }, stallMs);
            const onDrain = (): void => {
              clearTimeout(timer);
              resolve(true);
            };
            conn.stream.once('drain', onDrain);
          });
          if (!drained) return true;
        }
      }
      return false;
    };
    // The reader does not read: the writer must stall long before 64 MiB (kernel buffers and
    // one high-water mark on each side are all that may fill up).
    assert.equal(await writeUntilStalled(300), true, 'writer never stalled');
    assert.ok(off < 32 * 1024 * 1024, `${off} bytes accepted before stalling`);
    await waitFor(() => server.conns.length === 1);
    const peer = server.conns[0]!.stream;
    assert.ok(peer.readableLength <= 1024 * 1024, `peer buffered ${peer.readableLength} bytes`);

    const reading = readN(peer, payload.length, 60_000);
    await new Promise((r) => conn.stream.once('drain', r));
    assert.equal(await writeUntilStalled(10_000), false);
    assert.equal(sha256(await reading), sha256(payload));
  });
});

describe('ws keepalive', () => {
  it('pings every ttl and stays up while pongs come back', async () => {
    const server = await wsServer();
    let pings = 0;
    const conn = await dial(server.addr, { keepalive: true, ttl: '100ms' });
    (conn.stream as WsStream).webSocket.on('pong', () => pings++);
    await new Promise((r) => setTimeout(r, 800));
    assert.ok(pings >= 3, `${pings} pongs`);
    assert.equal(conn.stream.destroyed, false);
    await echoes(conn);
  });

  it('drops the connection when pongs stop', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, autoPong: false });
    await new Promise((r) => wss.once('listening', r));
    cleanups.push(() => {
      for (const c of wss.clients) c.terminate();
      return new Promise<void>((r) => wss.close(() => r()));
    });
    const conn = await dial(`127.0.0.1:${(wss.address() as net.AddressInfo).port}`, { 'ws.keepalive': 'true', 'keepalive.interval': '100ms' });
    const started = Date.now();
    const err = await new Promise<Error | undefined>((resolve) => {
      conn.stream.once('error', resolve);
      conn.stream.once('close', () => resolve(undefined));
    });
    const took = Date.now() - started;
    assert.ok(took >= 180 && took < 60_000, `dropped after ${took}ms`);
    assert.match(String(err?.message), /no pong/);
  });
});
