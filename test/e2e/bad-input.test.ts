/**
 * Malformed and hostile input against a running tunnel server (behavior.md §4, §11): garbage on
 * the relay port and the entry point, truncated and malformed relay requests, wrong IDs, idle
 * connection floods, oversized HTTP heads, broken UDP framing, broken smux after a BIND. Each
 * case gets a clean close or the right status, normal traffic works afterwards, the process
 * stays up and its socket count returns to where it was.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { burrow, type BurrowProcess } from '../helpers/cli';
import { connect, randomBytes, waitFor } from '../helpers/net';
import { buildBindRequest, buildConnectRequest, encodeRequest } from '../../src/protocol/relay/message';
import { makeTunnelId, parseTunnelId } from '../../src/protocol/relay/tunnel-id';
import { encodeDatagram, UdpFrameDecoder } from '../../src/protocol/udp-frame';
import { Cleanup, LOCAL, TID, httpRequest, rawHttp, relayConnect, relayStatus, sleep, startHttpService, startUdpService } from './support';

const cleanup = new Cleanup();
after(() => cleanup.run());

const UDP_TID = '5b0e4a9c-1f3d-4e6a-9b7c-2d8e0f1a3c5d';
const UNKNOWN_TID = '0f9e8d7c-6b5a-4938-8271-605f4e3d2c1b';

let server: BurrowProcess;
let port: number;
let ep: number;
let webClient: BurrowProcess;
let udpClient: BurrowProcess;

/** Sends `data` (and FIN when `end`), resolves with what came back once the server closes. */
async function exchange(
  p: number,
  data: Buffer | string,
  opts: { end?: boolean; timeoutMs?: number } = {},
): Promise<{ reply: Buffer; closedAfterMs: number }> {
  const sock = await connect(p);
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`server kept the connection open for ${opts.timeoutMs ?? 5_000} ms (got ${Buffer.concat(chunks).length} bytes)`));
    }, opts.timeoutMs ?? 5_000);
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('error', () => undefined);
    sock.once('end', () => sock.end());
    sock.once('close', () => {
      clearTimeout(timer);
      resolve({ reply: Buffer.concat(chunks), closedAfterMs: Date.now() - t0 });
    });
    sock.write(data);
    if (opts.end) sock.end();
  });
}

function connectReq(tid: string, dst = ':0', udp = false): Buffer {
  return buildConnectRequest({ srcAddr: `${LOCAL}:40000`, dstAddr: dst, tunnelId: parseTunnelId(tid), udp });
}

/** Normal traffic of every kind still works: entry point HTTP, relay CONNECT, UDP in a stream. */
async function normalWorks(): Promise<void> {
  const r = await httpRequest(ep, { host: 'www.example.com', path: '/normal' });
  assert.equal(r.status, 200, `entry point answered ${r.status}`);
  assert.equal(r.body, 'web GET /normal host=www.example.com');

  const c = await relayConnect(port, { tunnelId: TID.example, dst: ':0' });
  try {
    assert.equal(c.status, 0x00);
    c.socket.resume();
    c.socket.write('GET /relay HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const text = await new Promise<string>((resolve) => {
      let s = c.rest.toString();
      c.socket.on('data', (d: Buffer) => (s += d.toString()));
      c.socket.on('end', () => resolve(s));
    });
    assert.match(text, /^HTTP\/1\.1 200 [\s\S]*web GET \/relay host=x$/);
  } finally {
    c.socket.destroy();
  }

  const u = await relayConnect(port, { tunnelId: UDP_TID, dst: ':0', udp: true });
  try {
    assert.equal(u.status, 0x00);
    const dec = new UdpFrameDecoder();
    const got: Buffer[] = [...dec.push(u.rest)];
    u.socket.on('data', (d: Buffer) => got.push(...dec.push(d)));
    u.socket.resume();
    u.socket.write(encodeDatagram(Buffer.from('ping')));
    await waitFor(() => got.length > 0, 3_000, 'UDP echo through the tunnel');
    assert.equal(got[0]!.toString(), 'ping');
  } finally {
    u.socket.destroy();
  }
}

function assertClosedSilently(r: { reply: Buffer }, what: string): void {
  assert.equal(r.reply.length, 0, `${what}: expected no response, got ${r.reply.toString('hex')}`);
}

function assertStatusThenClose(r: { reply: Buffer }, status: number, what: string): void {
  assert.equal(r.reply.toString('hex'), `01${status.toString(16).padStart(2, '0')}0000`, what);
}

let baselineSockets = 0;

before(async () => {
  const web = cleanup.add(await startHttpService('web'));
  const echo = cleanup.add(await startUdpService('udp'));
  server = burrow(
    [
      '-L',
      `tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel=.example.com:${TID.example}&tunnel.direct=true&readTimeout=1s&tunnel.maxStreams=4`,
      '-D',
    ],
    { name: 'server' },
  );
  port = await server.listeningPort();
  ep = await server.entrypointPort();
  webClient = burrow(['-L', `rtcp://:0/127.0.0.1:${web.port}`, '-F', `tunnel://127.0.0.1:${port}?tunnel.id=${TID.example}`, '-D'], {
    name: 'client-web',
  });
  udpClient = burrow(['-L', `rudp://:0/127.0.0.1:${echo.port}`, '-F', `tunnel://127.0.0.1:${port}?tunnel.id=${UDP_TID}`, '-D'], {
    name: 'client-udp',
  });
  await Promise.all([webClient.tunnelCreated(), udpClient.tunnelCreated()]);
  await server.waitFor(() => server.count((l) => /established$/.test(String(l.msg))) >= 2, { what: 'two connectors' });
  await normalWorks();
  await sleep(200);
  baselineSockets = server.socketCount();
});

describe('relay port', () => {
  it('garbage bytes: closed without a response', async () => {
    const junk = randomBytes(1024);
    junk[0] = 0xee;
    assertClosedSilently(await exchange(port, junk), 'garbage');
    assertClosedSilently(await exchange(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'), 'plain HTTP on the relay port');
    await normalWorks();
  });

  it('a truncated request: closed on FIN, and after readTimeout (1 s) when left open', async () => {
    const full = connectReq(TID.example);
    assertClosedSilently(await exchange(port, full.subarray(0, 10), { end: true }), 'truncated + FIN');
    assertClosedSilently(await exchange(port, full.subarray(0, 3), { end: true }), 'header cut short + FIN');
    const held = await exchange(port, full.subarray(0, full.length - 5), { timeoutMs: 5_000 });
    assertClosedSilently(held, 'truncated, held open');
    assert.ok(held.closedAfterMs >= 800 && held.closedAfterMs <= 60_000, `closed after ${held.closedAfterMs} ms`);
    // FEALEN larger than what follows.
    const lying = Buffer.from(full);
    lying.writeUInt16BE(full.length, 2);
    assertClosedSilently(await exchange(port, lying, { end: true }), 'FEALEN past the data');
    await normalWorks();
  });

  it('a wrong version byte or a bad address type: closed without a response', async () => {
    const v2 = Buffer.from(connectReq(TID.example));
    v2[0] = 0x02;
    assertClosedSilently(await exchange(port, v2), 'version 0x02');
    const v0 = Buffer.from(connectReq(TID.example));
    v0[0] = 0x00;
    assertClosedSilently(await exchange(port, v0), 'version 0x00');
    // Addr feature with ATYP 0x09 (src is the first feature: 02 00 07 01 …).
    const badAtyp = Buffer.from(connectReq(TID.example));
    assert.equal(badAtyp[4], 0x02);
    badAtyp[7] = 0x09;
    assertClosedSilently(await exchange(port, badAtyp), 'ATYP 0x09');
    await normalWorks();
  });

  it('an unknown tunnel ID gets 0x05, a zero tunnel ID 0x01, an unknown command 0x01', async () => {
    assertStatusThenClose(await exchange(port, connectReq(UNKNOWN_TID)), 0x05, 'unknown tunnel (direct mode)');
    assertStatusThenClose(await exchange(port, connectReq(UNKNOWN_TID, 'x.example.net:0', true)), 0x05, 'unknown tunnel, udp');
    const zero = buildConnectRequest({
      srcAddr: `${LOCAL}:1`,
      dstAddr: ':0',
      tunnelId: makeTunnelId(Buffer.alloc(16)),
      udp: false,
    });
    assertStatusThenClose(await exchange(port, zero), 0x01, 'zero tunnel ID');
    const noTunnel = encodeRequest({ cmd: 0x01, features: [{ kind: 'addr', host: '127.0.0.1', port: 1 }] });
    assertStatusThenClose(await exchange(port, noTunnel), 0x01, 'no Tunnel feature');
    const associate = encodeRequest({
      cmd: 0x03,
      features: [{ kind: 'tunnel', id: parseTunnelId(TID.example) }],
    });
    assertStatusThenClose(await exchange(port, associate), 0x01, 'ASSOCIATE');
    await normalWorks();
  });

  it('an unknown feature type is skipped', async () => {
    const base = connectReq(TID.example);
    const extra = Buffer.from([0x09, 0x00, 0x03, 0xaa, 0xbb, 0xcc]);
    const req = Buffer.concat([base.subarray(0, 4), extra, base.subarray(4)]);
    req.writeUInt16BE(base.length - 4 + extra.length, 2);
    const sock = await connect(port);
    try {
      sock.write(req);
      const first = await new Promise<Buffer>((resolve, reject) => {
        sock.once('data', resolve);
        sock.once('error', reject);
      });
      assert.equal(first.subarray(0, 4).toString('hex'), '01000000');
    } finally {
      sock.destroy();
    }
    await normalWorks();
  });

  it('a CONNECT without Addr features gets a status and leaks no stream', async () => {
    const noAddr = encodeRequest({ cmd: 0x01, features: [{ kind: 'tunnel', id: parseTunnelId(TID.example) }] });
    // The server allows 4 streams per connector (tunnel.maxStreams=4): a stream left open by a
    // refused request would use one up.
    for (let i = 0; i < 6; i++) {
      const r = await exchange(port, noAddr);
      assert.ok(r.reply.length === 0 || (r.reply.length === 4 && r.reply[0] === 0x01), `reply ${r.reply.toString('hex')}`);
    }
    const opened = await Promise.all(Array.from({ length: 4 }, () => relayConnect(port, { tunnelId: TID.example, dst: ':0' })));
    try {
      assert.deepEqual(
        opened.map((o) => o.status),
        [0, 0, 0, 0],
        'four streams are available on the connector',
      );
    } finally {
      opened.forEach((o) => o.socket.destroy());
    }
    await sleep(200);
    await normalWorks();
  });

  it('a UDP frame whose length runs past the stream: the stream ends cleanly, the session lives', async () => {
    const mark = udpClient.mark();
    for (const tail of [Buffer.from([0xff]), Buffer.from([0x03, 0xe8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])]) {
      const r = await relayConnect(port, { tunnelId: UDP_TID, dst: ':0', udp: true });
      assert.equal(r.status, 0x00);
      r.socket.resume();
      r.socket.end(Buffer.concat([encodeDatagram(Buffer.from('ok')), tail]));
      await Promise.race([r.closed, sleep(5_000).then(() => assert.fail('stream not closed'))]);
    }
    assert.equal(udpClient.count((l) => /^create tunnel on /.test(String(l.msg)), mark), 0, 'the client did not have to re-bind');
    assert.ok(udpClient.alive);
    await normalWorks();
  });

  it('garbage smux frames after a BIND: the session dies, the connector is removed', async () => {
    const tid = '7d3c2b1a-0f9e-4d8c-b7a6-958473625140';
    const sock = await connect(port);
    sock.on('error', () => undefined);
    sock.once('end', () => sock.end());
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    sock.write(buildBindRequest({ srcAddr: `${LOCAL}:1`, bindAddr: ':0', tunnelId: parseTunnelId(tid), udp: false }));
    const head = await new Promise<Buffer>((resolve) => {
      let b = Buffer.alloc(0);
      const on = (c: Buffer): void => {
        b = Buffer.concat([b, c]);
        if (b.length >= 4 && b.length >= 4 + b.readUInt16BE(2)) {
          sock.off('data', on);
          resolve(b);
        }
      };
      sock.on('data', on);
    });
    assert.equal(head[1], 0x00, 'BIND accepted');
    await server.waitForMsg(new RegExp(`tunnel=${tid}, connector=.* established$`));
    sock.resume();
    sock.write(Buffer.from('ffffffffffffffffffffffffffffffff', 'hex'));
    await Promise.race([closed, sleep(5_000).then(() => assert.fail('server kept the broken session open'))]);
    await server.waitForMsg(new RegExp(`^remove connector: ${tid} `));
    assertStatusThenClose(await exchange(port, connectReq(tid)), 0x05, 'the removed tunnel');
    await normalWorks();
  });
});

describe('entry point', () => {
  it('non-HTTP garbage and a TLS ClientHello without SNI: closed without a response', async () => {
    const junk = Buffer.concat([Buffer.from([0x00, 0xff, 0x13, 0x37]), randomBytes(500)]);
    const r = await rawHttp(ep, junk);
    assert.equal(r.closed, true);
    assert.equal(r.data, '');
    // A ClientHello to an IP literal carries no SNI.
    const hello = await new Promise<boolean>((resolve) => {
      const s = tls.connect({ host: LOCAL, port: ep, rejectUnauthorized: false });
      s.on('secureConnect', () => resolve(false));
      s.on('error', () => resolve(true));
      s.on('close', () => resolve(true));
    });
    assert.equal(hello, true, 'the TLS handshake must fail');
    // A relay request cut short at the entry point.
    const cut = connectReq(TID.example).subarray(0, 8);
    assertClosedSilently(await exchange(ep, cut, { end: true }), 'truncated relay request at the entry point');
    await normalWorks();
  });

  it('a relay CONNECT at the entry point: unknown tunnel 0x05, zero tunnel 0x01', async () => {
    assert.equal(await relayStatus(ep, { tunnelId: UNKNOWN_TID, dst: 'www.example.com:80' }), 0x05);
    const zero = buildConnectRequest({ srcAddr: `${LOCAL}:1`, dstAddr: ':0', tunnelId: makeTunnelId(Buffer.alloc(16)), udp: false });
    assertStatusThenClose(await exchange(ep, zero), 0x01, 'zero tunnel ID at the entry point');
  });

  it('a 64 KiB Host header: 431 or a clean close, no crash', async () => {
    const host = 'a'.repeat(64 * 1024) + '.example.com';
    const r = await rawHttp(ep, `GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
    assert.ok(r.data === '' || /^HTTP\/1\.1 431 /.test(r.data), `got ${JSON.stringify(r.data.slice(0, 80))}`);
    assert.equal(r.closed, true);
    // Many huge headers in one head.
    const many = Array.from({ length: 40 }, (_, i) => `X-Filler-${i}: ${'b'.repeat(4000)}\r\n`).join('');
    const r2 = await rawHttp(ep, `GET / HTTP/1.1\r\nHost: www.example.com\r\n${many}\r\n`);
    assert.ok(r2.data === '' || /^HTTP\/1\.1 431 /.test(r2.data), `got ${JSON.stringify(r2.data.slice(0, 80))}`);
    assert.ok(server.alive);
    await normalWorks();
  });

  it('1,000 idle connections are all accepted and the server keeps serving', async () => {
    const socks: net.Socket[] = [];
    try {
      for (let batch = 0; batch < 10; batch++) {
        socks.push(...(await Promise.all(Array.from({ length: 100 }, () => connect(ep)))));
      }
      for (const s of socks) s.on('error', () => undefined);
      await waitFor(() => server.socketCount() >= baselineSockets + 1000, 10_000, 'the server to hold 1,000 more sockets');
      await normalWorks();
      assert.ok(socks.every((s) => !s.destroyed && s.readyState === 'open'), 'all idle connections still open');
    } finally {
      socks.forEach((s) => s.destroy());
    }
  });

  it('with entrypoint.sniffTimeout=1s idle connections are closed after about 1 s', async () => {
    const quick = burrow(
      ['-L', `tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel=.example.com:${TID.example}&entrypoint.sniffTimeout=1s`],
      { name: 'server-sniff-1s' },
    );
    const qep = await quick.entrypointPort();
    const base = quick.socketCount();
    const closedAt: number[] = [];
    const socks: net.Socket[] = [];
    const t0 = Date.now();
    try {
      for (let batch = 0; batch < 10; batch++) {
        const made = await Promise.all(Array.from({ length: 100 }, () => connect(qep)));
        for (const s of made) {
          s.on('error', () => undefined);
          s.once('close', () => closedAt.push(Date.now() - t0));
          s.once('end', () => s.end());
        }
        socks.push(...made);
      }
      const opened = Date.now() - t0;
      await waitFor(() => closedAt.length === 1000, 10_000, 'all 1,000 idle connections to be closed');
      const first = Math.min(...closedAt);
      const last = Math.max(...closedAt);
      assert.ok(first >= 900, `a connection was closed after ${first} ms`);
      assert.ok(last <= opened + 3_000, `the last connection was closed after ${last} ms (all open after ${opened} ms)`);
      await waitFor(() => quick.socketCount() <= base, 5_000, 'the server to release the sockets');
      assert.ok(quick.alive);
    } finally {
      socks.forEach((s) => s.destroy());
    }
  });
});

describe('afterwards', () => {
  it('the server is alive, serves, and holds no more sockets than before', async () => {
    assert.ok(server.alive, 'server exited');
    assert.ok(webClient.alive && udpClient.alive, 'a client exited');
    await normalWorks();
    await waitFor(() => server.socketCount() <= baselineSockets, 5_000, `socket count back to ${baselineSockets}`).catch(() => {
      assert.fail(`server holds ${server.socketCount()} sockets, ${baselineSockets} before the bad input`);
    });
    assert.equal(
      server.count((l) => l.level === 'fatal' || /uncaught|unhandled/i.test(String(l.msg))),
      0,
      'no fatal or uncaught errors logged',
    );
  });
});
