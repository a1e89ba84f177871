/**
 * The PROXY protocol both ways, with the real CLI:
 *
 * - accepting (`proxyProtocol` on a tunnel server's tcp, tls and ws listeners): a trusted
 *   peer's v1 or v2 header changes the address the connection rate counts and logs; a header
 *   from a peer not in `trustedProxies` closes the connection (one warning a minute); a header
 *   that never completes is closed at `proxyProtocol.timeout`; a malformed one at once; a
 *   connection without a header keeps its own address;
 * - sending (`sendProxyProtocol` on the client's rtcp/rudp service): the local service behind
 *   the client reads a PROXY header naming the visitor's own address (127.0.0.2, 127.0.0.3),
 *   v1 and v2 over TCP, v2 before every UDP datagram;
 * - the entry point (`entrypoint.ProxyProtocol`, `entrypoint.trustedProxies`): a balancer's
 *   PROXY header, and its X-Forwarded-For on plain HTTP, give the visitor's address all the way
 *   to the service behind the client (which gets it in the client's own PROXY header); a
 *   stranger's never count;
 * - where the key cannot apply (udp, rtcp, rudp listeners; v1 on rudp) the start fails with a
 *   config error naming it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import { randomUUID } from 'node:crypto';
import { WebSocket } from 'ws';
import { burrow, stopAll, type BurrowProcess } from '../helpers/cli';
import { LOCAL } from '../helpers/local';
import { buildConnectRequest, decodeResponse } from '../../src/protocol/relay/message';
import { parseTunnelId } from '../../src/protocol/relay/tunnel-id';
import { readRelayMessage } from '../../src/io/read-message';
import { encodeProxyV1, encodeProxyV2, parseProxyHeader, type ProxyHeader, type ProxyParse } from '../../src/protocol/proxy/codec';

after(() => stopAll());

const BALANCER = '127.0.0.2';
const STRANGER = '127.0.0.3';
type Status = number | 'closed';

const v1 = (client: string): Buffer => encodeProxyV1({ source: { host: client, port: 40000 }, destination: { host: LOCAL, port: 1 } });
const v2 = (client: string): Buffer => encodeProxyV2({ source: { host: client, port: 40000 }, destination: { host: LOCAL, port: 1 } });

function connectRequest(): Buffer {
  return buildConnectRequest({ srcAddr: '10.9.8.7:1234', dstAddr: 'nowhere.local:80', tunnelId: parseTunnelId(randomUUID()), udp: false });
}

/** Opens a TCP connection from `localAddress`; resolves once connected. */
function connectFrom(port: number, localAddress: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: LOCAL, localAddress }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Writes `prefix` then a relay CONNECT; the status byte, or 'closed' when the server closed. */
async function statusAfter(port: number, localAddress: string, prefix: Buffer): Promise<Status> {
  const s = await connectFrom(port, localAddress);
  s.on('error', () => undefined);
  try {
    s.write(Buffer.concat([prefix, connectRequest()]));
    return decodeResponse(await readRelayMessage(s, 10_000)).status;
  } catch {
    return 'closed';
  } finally {
    s.destroy();
  }
}

/** Writes `bytes` and waits for the server to close; rejects when it stays open past the guard. */
async function closedAfter(port: number, localAddress: string, bytes: Buffer, guardMs = 20_000): Promise<Buffer> {
  const s = await connectFrom(port, localAddress);
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    const guard = setTimeout(() => {
      s.destroy();
      reject(new Error(`still open after ${guardMs} ms`));
    }, guardMs);
    s.on('data', (c: Buffer) => got.push(c));
    s.on('error', () => undefined);
    s.once('close', () => {
      clearTimeout(guard);
      resolve(Buffer.concat(got));
    });
    s.write(bytes);
  });
}

const rateWarning = (ip: string) => new RegExp(`^connection rate limit exceeded for ${ip.replace(/\./g, '\\.')} `);

describe('accepting PROXY headers on a tunnel server', () => {
  let server: BurrowProcess;
  let port: number;

  before(async () => {
    server = burrow(
      ['-L', `tunnel://${LOCAL}:0?proxyProtocol=1&trustedProxies=${BALANCER}&proxyProtocol.timeout=1s&tunnel.connRate=0.001&tunnel.connBurst=3`],
      { name: 'server-pp' },
    );
    port = await server.listeningPort();
  });

  it('a trusted v1 header makes the named client the one the connection rate counts and logs', async () => {
    const client = '198.51.100.7';
    const got: Status[] = [];
    for (let i = 0; i < 4; i++) got.push(await statusAfter(port, BALANCER, v1(client)));
    assert.notEqual(got[0], 'closed');
    assert.deepEqual(got.slice(1, 3), [got[0], got[0]]);
    assert.equal(got[3], 'closed', 'the fourth connection of one client is over the burst of 3');
    await server.waitForMsg(rateWarning(client), { timeoutMs: 10_000 });
    // Another client behind the same balancer (v2 this time) has its own budget; so has the balancer.
    assert.equal(await statusAfter(port, BALANCER, v2('198.51.100.8')), got[0]);
    assert.equal(await statusAfter(port, BALANCER, Buffer.alloc(0)), got[0]);
    assert.equal(server.count((l) => rateWarning(BALANCER).test(String(l.msg))), 0);
  });

  it('a v2 LOCAL header (the balancer\'s own check) keeps the balancer\'s address', async () => {
    const local = encodeProxyV2({ command: 'local' });
    assert.notEqual(await statusAfter(port, BALANCER, local), 'closed');
  });

  it('a header from a peer not in trustedProxies closes the connection, with one warning a minute', async () => {
    const mark = server.mark();
    const reach = (p: Buffer) => statusAfter(port, STRANGER, p);
    // The stranger names a victim: it is not believed, the connection is closed.
    assert.equal(await reach(v1('198.51.100.50')), 'closed');
    assert.equal(await reach(v2('198.51.100.50')), 'closed');
    await server.waitForMsg(/PROXY header from a peer not in trustedProxies from 127\.0\.0\.3:\d+, connection closed/, { from: mark, timeoutMs: 10_000 });
    assert.equal(server.count((l) => /not in trustedProxies/.test(String(l.msg)) && l.level === 'warn', mark), 1);
    // The victim's budget is untouched: it still gets 3 connections through the balancer.
    for (let i = 0; i < 3; i++) assert.notEqual(await statusAfter(port, BALANCER, v1('198.51.100.50')), 'closed');
    // Without a header the stranger is served under its own address.
    assert.notEqual(await reach(Buffer.alloc(0)), 'closed');
  });

  it('a header that never completes is closed at proxyProtocol.timeout; garbage is closed at once', async () => {
    const mark = server.mark();
    const partial = v2('198.51.100.9').subarray(0, 20);
    assert.deepEqual(await closedAfter(port, BALANCER, partial), Buffer.alloc(0));
    await server.waitForMsg(/no complete PROXY header within 1000 ms from 127\.0\.0\.2:\d+/, { from: mark, timeoutMs: 10_000 });
    const v1Partial = Buffer.from('PROXY TCP4 198.51.100.9 ');
    assert.deepEqual(await closedAfter(port, BALANCER, v1Partial), Buffer.alloc(0));
    for (const junk of ['PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n', `PROXY TCP4 ${'9'.repeat(110)}`, 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n']) {
      assert.deepEqual(await closedAfter(port, BALANCER, Buffer.from(junk)), Buffer.alloc(0), junk);
    }
    const badVersion = Buffer.from(v2('198.51.100.9'));
    badVersion[12] = 0x31;
    assert.deepEqual(await closedAfter(port, BALANCER, badVersion), Buffer.alloc(0));
    await server.waitForMsg(/malformed PROXY header/, { from: mark, timeoutMs: 10_000 });
    assert.ok(server.alive);
  });
});

describe('accepting PROXY headers before TLS and WebSocket', () => {
  it('tls: the header comes before the handshake; the named client is the one counted', async () => {
    const srv = burrow(
      ['-L', `tunnel+tls://${LOCAL}:0?proxyProtocol=2&trustedProxies=${BALANCER}&tunnel.connRate=0.001&tunnel.connBurst=1`],
      { name: 'server-pp-tls' },
    );
    const port = await srv.listeningPort();
    const viaTls = async (client: string): Promise<Status> => {
      const raw = await connectFrom(port, BALANCER);
      raw.write(v2(client));
      const s = tls.connect({ socket: raw, rejectUnauthorized: false });
      s.on('error', () => undefined);
      try {
        await new Promise<void>((resolve, reject) => {
          s.once('secureConnect', resolve);
          s.once('error', reject);
        });
        s.write(connectRequest());
        return decodeResponse(await readRelayMessage(s, 10_000)).status;
      } catch {
        return 'closed';
      } finally {
        s.destroy();
      }
    };
    const first = await viaTls('203.0.113.1');
    assert.notEqual(first, 'closed');
    assert.equal(await viaTls('203.0.113.1'), 'closed');
    await srv.waitForMsg(rateWarning('203.0.113.1'), { timeoutMs: 10_000 });
    assert.equal(await viaTls('203.0.113.2'), first);
  });

  it('ws: the header comes before the HTTP upgrade; a stranger\'s header closes the connection', async () => {
    const srv = burrow(
      ['-L', `tunnel+ws://${LOCAL}:0?proxyProtocol=1&trustedProxies=${BALANCER}&tunnel.connRate=0.001&tunnel.connBurst=1`],
      { name: 'server-pp-ws' },
    );
    const port = await srv.listeningPort();
    const viaWs = (client: string, from: string): Promise<Status> =>
      new Promise((resolve) => {
        const ws = new WebSocket(`ws://${LOCAL}:${port}/ws`, {
          createConnection: () => {
            const s = net.connect({ port, host: LOCAL, localAddress: from });
            s.write(v1(client));
            return s;
          },
        });
        const guard = setTimeout(() => done('closed'), 10_000);
        function done(st: Status): void {
          clearTimeout(guard);
          ws.terminate();
          resolve(st);
        }
        ws.on('open', () => ws.send(connectRequest()));
        ws.on('message', (d: Buffer) => done(d[1]!));
        ws.on('error', () => done('closed'));
        ws.on('close', () => done('closed'));
      });
    const first = await viaWs('203.0.113.5', BALANCER);
    assert.notEqual(first, 'closed');
    assert.equal(await viaWs('203.0.113.5', BALANCER), 'closed');
    await srv.waitForMsg(rateWarning('203.0.113.5'), { timeoutMs: 10_000 });
    assert.equal(await viaWs('203.0.113.6', BALANCER), first);
    assert.equal(await viaWs('203.0.113.7', STRANGER), 'closed');
    await srv.waitForMsg(/not in trustedProxies/, { timeoutMs: 10_000 });
  });
});

/**
 * A TCP service behind a PROXY header: `answer` gets each connection's bytes so far and what
 * the parser made of them; once it returns a reply, that is written and the connection closed.
 */
function startProxiedService(answer: (p: ProxyParse, buf: Buffer) => string | undefined): Promise<{ port: number; close: () => void }> {
  return new Promise((resolve) => {
    const srv = net.createServer((s) => {
      let buf = Buffer.alloc(0);
      s.on('error', () => undefined);
      s.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        const p = parseProxyHeader(buf);
        const reply = p.kind === 'more' ? undefined : answer(p, buf);
        if (reply !== undefined) s.end(reply);
      });
    });
    srv.listen(0, LOCAL, () => resolve({ port: (srv.address() as net.AddressInfo).port, close: () => srv.close() }));
  });
}

/** Reads a PROXY header and 5 bytes (they may come in separate reads); answers with both as one JSON line. */
const startHeaderEcho = () =>
  startProxiedService((p, buf) => {
    if (p.kind !== 'header') return `${JSON.stringify(p)}\n`;
    if (buf.length < p.header.length + 5) return undefined;
    return `${JSON.stringify({ ...p.header, payload: buf.subarray(p.header.length).toString() })}\n`;
  });

async function askThrough(port: number, from: string): Promise<ProxyHeader & { payload: string }> {
  const s = await connectFrom(port, from);
  s.write('hello');
  let text = '';
  s.setEncoding('utf8');
  for await (const c of s) {
    text += c as string;
    if (text.endsWith('\n')) break;
  }
  s.destroy();
  return JSON.parse(text) as ProxyHeader & { payload: string };
}

describe('sending PROXY headers to the service behind a client', () => {
  let serverPort: number;
  let echo: Awaited<ReturnType<typeof startHeaderEcho>>;

  before(async () => {
    const server = burrow(['-L', `tunnel://${LOCAL}:0?tunnel.direct=true`], { name: 'server-send' });
    serverPort = await server.listeningPort();
    echo = await startHeaderEcho();
  });
  after(() => echo.close());

  for (const version of [1, 2] as const) {
    it(`rtcp with sendProxyProtocol=${version}: the service reads the visitor's own address`, async () => {
      const tid = randomUUID();
      const client = burrow(['-L', `rtcp://:0/${LOCAL}:${echo.port}?sendProxyProtocol=${version}`, '-F', `tunnel://${LOCAL}:${serverPort}?tunnel.id=${tid}`], { name: `client-v${version}` });
      await client.tunnelCreated();
      const visitor = burrow(['-L', `tcp://${LOCAL}:0/ignored.local:80`, '-F', `tunnel://${LOCAL}:${serverPort}?tunnel.id=${tid}`], { name: `visitor-v${version}` });
      const vport = await visitor.listeningPort();
      for (const from of [BALANCER, STRANGER]) {
        const h = await askThrough(vport, from);
        assert.equal(h.version, version);
        assert.equal(h.transport, 'tcp4');
        assert.equal(h.source?.host, from);
        assert.deepEqual(h.destination, { host: LOCAL, port: echo.port });
        assert.equal(h.payload, 'hello');
      }
      await Promise.all([client.stop(), visitor.stop()]);
    });
  }

  it('rudp with sendProxyProtocol=2: a v2 UDP header before every datagram, replies unchanged', async () => {
    const svc = dgram.createSocket('udp4');
    const seen: ProxyHeader[] = [];
    svc.on('message', (msg, rinfo) => {
      const p = parseProxyHeader(msg);
      if (p.kind !== 'header') return void svc.send(Buffer.from('no header'), rinfo.port, rinfo.address);
      seen.push(p.header);
      svc.send(Buffer.from(`${p.header.source?.host}|${msg.subarray(p.header.length).toString()}`), rinfo.port, rinfo.address);
    });
    await new Promise<void>((r) => svc.bind(0, LOCAL, () => r()));
    const sport = svc.address().port;
    const tid = randomUUID();
    const client = burrow(['-L', `rudp://:0/${LOCAL}:${sport}?sendProxyProtocol=2`, '-F', `tunnel://${LOCAL}:${serverPort}?tunnel.id=${tid}`], { name: 'client-udp' });
    await client.tunnelCreated({ network: 'udp' });
    const visitor = burrow(['-L', `udp://${LOCAL}:0/ignored.local:53?keepalive=true`, '-F', `tunnel://${LOCAL}:${serverPort}?tunnel.id=${tid}`], { name: 'visitor-udp' });
    const vport = await visitor.listeningPort({ network: 'udp' });
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, STRANGER, () => r()));
    const replies: string[] = [];
    sock.on('message', (m) => replies.push(m.toString()));
    for (let i = 0; i < 40 && replies.length < 2; i++) {
      sock.send(Buffer.from(`dg${replies.length}`), vport, LOCAL);
      await new Promise((r) => setTimeout(r, 250));
    }
    sock.close();
    svc.close();
    assert.ok(replies.length >= 2, `replies: ${JSON.stringify(replies)}`);
    for (const r of replies) assert.match(r, /^127\.0\.0\.3\|dg\d$/);
    assert.ok(seen.length >= 2);
    for (const h of seen) {
      assert.equal(h.version, 2);
      assert.equal(h.transport, 'udp4');
      assert.deepEqual(h.destination, { host: LOCAL, port: sport });
    }
    await Promise.all([client.stop(), visitor.stop()]);
  });
});

describe('where a PROXY key cannot apply', () => {
  const cases: Array<[string, string[], RegExp]> = [
    ['proxyProtocol on a udp listener', ['-L', `tunnel+udp://${LOCAL}:0?proxyProtocol=1`], /proxyProtocol.*udp listener/],
    ['proxyProtocol on rtcp', ['-L', `rtcp://:0/${LOCAL}:9?proxyProtocol=1`, '-F', `tunnel://${LOCAL}:1?tunnel.id=${randomUUID()}`], /sendProxyProtocol/],
    ['sendProxyProtocol=1 on rudp', ['-L', `rudp://:0/${LOCAL}:9?sendProxyProtocol=1`, '-F', `tunnel://${LOCAL}:1?tunnel.id=${randomUUID()}`], /v1 carries TCP only/],
    ['sendProxyProtocol=3', ['-L', `rtcp://:0/${LOCAL}:9?sendProxyProtocol=3`, '-F', `tunnel://${LOCAL}:1?tunnel.id=${randomUUID()}`], /sendProxyProtocol.*from 0 to 2/],
  ];
  for (const [name, args, re] of cases) {
    it(`${name}: a config error naming it (exit 2)`, async () => {
      const p = burrow(args, { name: 'bad-config' });
      const exit = await p.exited;
      assert.equal(exit.code, 2, p.recentOutput());
      assert.match(p.recentOutput(), re);
    });
  }
});

/** An HTTP service behind a PROXY header: answers a connection's first request with the header's source host. */
const startProxiedHttp = () =>
  startProxiedService((p, buf) => {
    const at = p.kind === 'header' ? p.header.length : 0;
    if (buf.indexOf('\r\n\r\n', at) < 0) return undefined;
    const body = p.kind === 'header' ? (p.header.source?.host ?? 'unknown') : 'none';
    return `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`;
  });

describe('the entry point: entrypoint.ProxyProtocol and entrypoint.trustedProxies', () => {
  let ep: number;
  let web: Awaited<ReturnType<typeof startProxiedHttp>>;
  let server: BurrowProcess;

  before(async () => {
    web = await startProxiedHttp();
    const tid = randomUUID();
    server = burrow(
      ['-L', `tunnel://${LOCAL}:0?entrypoint=${LOCAL}:0&entrypoint.ProxyProtocol=1&entrypoint.trustedProxies=${BALANCER}&tunnel=www.example.com:${tid}`],
      { name: 'server-ep' },
    );
    const port = await server.listeningPort();
    ep = await server.entrypointPort();
    const client = burrow(['-L', `rtcp://:0/${LOCAL}:${web.port}?sendProxyProtocol=2`, '-F', `tunnel://${LOCAL}:${port}?tunnel.id=${tid}`], { name: 'client-ep' });
    await client.tunnelCreated();
  });
  after(() => web.close());

  /** One HTTP request to the entry point from `from`, after `prefix`; the body, or 'closed'. */
  async function get(from: string, prefix: Buffer, headers = ''): Promise<string> {
    const s = await connectFrom(ep, from);
    s.on('error', () => undefined);
    s.write(Buffer.concat([prefix, Buffer.from(`GET / HTTP/1.1\r\nHost: www.example.com\r\n${headers}Connection: close\r\n\r\n`)]));
    let text = '';
    s.setEncoding('utf8');
    const guard = setTimeout(() => s.destroy(), 20_000);
    try {
      for await (const c of s) text += c as string;
    } catch {
      /* reset */
    }
    clearTimeout(guard);
    if (!text.startsWith('HTTP/1.1 ')) return 'closed';
    assert.match(text, /^HTTP\/1\.1 200 /, text);
    return text.slice(text.indexOf('\r\n\r\n') + 4);
  }

  it('a trusted balancer\'s PROXY header (v1 or v2) reaches the service behind the client as the visitor', async () => {
    assert.equal(await get(BALANCER, v1('198.51.100.20')), '198.51.100.20');
    assert.equal(await get(BALANCER, v2('2001:db8::20')), '2001:db8::20');
  });

  it('X-Forwarded-For counts from the trusted balancer only', async () => {
    assert.equal(await get(BALANCER, Buffer.alloc(0), 'X-Forwarded-For: 198.51.100.21\r\n'), '198.51.100.21');
    // A stranger's header is not believed: the service sees the stranger itself.
    assert.equal(await get(STRANGER, Buffer.alloc(0), 'X-Forwarded-For: 198.51.100.22\r\n'), STRANGER);
    // Nor is one behind a PROXY header naming a client that is not itself trusted.
    assert.equal(await get(BALANCER, v1('198.51.100.23'), 'X-Forwarded-For: 198.51.100.24\r\n'), '198.51.100.23');
  });

  it('a stranger\'s PROXY header closes the connection; a partial one is closed at the deadline', async () => {
    const mark = server.mark();
    assert.equal(await get(STRANGER, v1('198.51.100.25')), 'closed');
    await server.waitForMsg(/PROXY header from a peer not in trustedProxies from 127\.0\.0\.3:\d+/, { from: mark, timeoutMs: 10_000 });
    assert.deepEqual(await closedAfter(ep, BALANCER, Buffer.from('PROXY TCP4 198.51.100.26')), Buffer.alloc(0));
    await server.waitForMsg(/no complete PROXY header within 10000 ms/, { from: mark, timeoutMs: 10_000 });
    assert.ok(server.alive);
  });
});
