/**
 * Cross-server routing through the real CLI: three servers share one real Redis for service
 * discovery; a client bound to one of them is reached through every other one (HTTP with
 * keep-alive, TLS passed through by SNI, a visitor's relay CONNECT on the tunnel port and on the
 * entry point, UDP); when the tunnel moves to another server, requests follow it; when no server
 * holds it, the answers are those of a single server (503, status 5). A request another server
 * forwarded is never forwarded again, and what a forwarded request says about its visitor is
 * believed only from a peer in `sd.trusted`.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { burrow, type BurrowProcess } from '../helpers/cli';
import { startRedis, type RedisServer } from '../helpers/redis';
import { makeCa, makeCert } from '../helpers/certs';
import { connect, waitFor } from '../helpers/net';
import { Cleanup, LOCAL, TID, UdpClient, eventually, httpRequest, relayConnect, startHttpService, startUdpService, type HttpService } from './support';
import { encodeForwardRequest } from '../../src/handler/tunnel/forward';
import { parseTunnelId } from '../../src/protocol/relay/tunnel-id';

const cleanup = new Cleanup();
after(() => cleanup.run());

const HOST = 'web.example.com';
const TLS_HOST = 'tls.example.org';
const MOVER = 'mover.example.net';

interface Server {
  proc: BurrowProcess;
  port: number;
  ep: number;
}

let redis: RedisServer;
let db = 0;

async function startServer(name: string, sdDb: number, extra = ''): Promise<Server> {
  const rules = `tunnel=.example.com:${TID.example},${TLS_HOST}:${TID.org},${MOVER}:${TID.public}`;
  const proc = burrow(['-L', `tunnel://${extra}127.0.0.1:0?entrypoint=127.0.0.1:0&${rules}&tunnel.sd=redis://${redis.addr}/${sdDb}&tunnel.direct=true`], {
    name,
  });
  cleanup.fn(() => proc.kill('SIGKILL'));
  return { proc, port: await proc.listeningPort(), ep: await proc.entrypointPort() };
}

function startClient(name: string, server: Server, tid: string, target: string, udp = false): BurrowProcess {
  const l = udp ? `rudp://:0/${target}` : `rtcp://:0/${target}`;
  const c = burrow(['-L', l, '-F', `tunnel://127.0.0.1:${server.port}?tunnel.id=${tid}`], { name });
  cleanup.fn(() => c.kill('SIGKILL'));
  return c;
}

/** One request through a relay CONNECT on `port`: status, then the HTTP answer on the same connection. */
async function httpOverRelay(port: number, tunnelId: string, host: string): Promise<{ status: number | undefined; body: string }> {
  const r = await relayConnect(port, { tunnelId, dst: `${host}:80` });
  if (r.status !== 0) {
    r.socket.destroy();
    return { status: r.status, body: '' };
  }
  r.socket.resume();
  const chunks: Buffer[] = [r.rest];
  r.socket.on('data', (c: Buffer) => chunks.push(c));
  // The answer ends with the origin's close (Connection: close).
  const ended = new Promise<void>((resolve) => r.socket.once('end', resolve));
  r.socket.write(`GET /relay HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  await Promise.race([ended, r.closed]);
  r.socket.destroy();
  return { status: r.status, body: Buffer.concat(chunks).toString('latin1') };
}

/** Sends a relay request and reads the 4-byte status (undefined: closed without one). */
async function rawRelayStatus(port: number, request: Buffer): Promise<number | undefined> {
  const s = await connect(port);
  s.on('error', () => undefined);
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => done(), 10_000);
    const done = (): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(buf.length >= 4 ? buf[1] : undefined);
    };
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (buf.length >= 4) done();
    });
    s.on('end', done);
    s.on('close', done);
    s.write(request);
  });
}

describe('cross-server routing over service discovery', () => {
  let a: Server;
  let b: Server;
  let c: Server;
  let web: HttpService;
  before(async () => {
    redis = await startRedis();
    cleanup.fn(() => redis.stop());
    db = 3;
    [a, b, c] = await Promise.all([startServer('server-a', db), startServer('server-b', db), startServer('server-c', db)]);
    web = await startHttpService('web');
    cleanup.add(web);
  });

  it('a tunnel bound to A is reached through B and C: HTTP keep-alive, relay CONNECT, TLS, UDP', async () => {
    const client = startClient('client-a', a, TID.example, `127.0.0.1:${web.port}`);
    await client.tunnelCreated();
    const r = redis.client(db);
    await waitFor(async () => (await r.hlen(TID.example)) === 1, 10_000, 'the registration');

    // HTTP through B and C, several requests on one keep-alive connection each.
    for (const s of [b, c]) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        for (let i = 0; i < 3; i++) {
          const res = await httpRequest(s.ep, { host: HOST, path: `/ka/${i}`, agent });
          assert.equal(res.status, 200, `through ${s.ep}: ${res.body}`);
          assert.equal(res.body, `web GET /ka/${i} host=${HOST}`);
          if (i > 0) assert.ok(res.reused, 'the visitor connection is kept alive');
        }
      } finally {
        agent.destroy();
      }
    }
    // A visitor's relay CONNECT on B's tunnel port and on C's entry point.
    for (const port of [a.port, b.port, c.ep]) {
      const res = await httpOverRelay(port, TID.example, HOST);
      assert.equal(res.status, 0, `relay CONNECT through ${port}`);
      assert.match(res.body, /^HTTP\/1\.1 200 /);
      assert.match(res.body, new RegExp(`web GET /relay host=${HOST}`));
    }

    // TLS passed through by SNI: a real HTTPS server behind a second client, also on A.
    const ca = await makeCa();
    cleanup.fn(() => ca.cleanup());
    const cert = await makeCert(ca, { cn: TLS_HOST });
    const tlsSrv = https.createServer({ cert: readFileSync(cert.certFile), key: readFileSync(cert.keyFile) }, (_req, res) => res.end('tls-ok'));
    await new Promise<void>((resolve) => tlsSrv.listen(0, LOCAL, resolve));
    cleanup.fn(() => new Promise<void>((resolve) => tlsSrv.close(() => resolve())));
    const tlsPort = (tlsSrv.address() as net.AddressInfo).port;
    const client2 = startClient('client-tls', a, TID.org, `127.0.0.1:${tlsPort}`);
    await client2.tunnelCreated();
    await waitFor(async () => (await r.hlen(TID.org)) === 1, 10_000, 'the TLS tunnel registration');
    for (const s of [b, c]) {
      const body = await new Promise<string>((resolve, reject) => {
        const req = https.request(
          { host: LOCAL, port: s.ep, servername: TLS_HOST, path: '/', ca: readFileSync(ca.certFile), agent: false, timeout: 10_000 },
          (res) => {
            let t = '';
            res.on('data', (d: Buffer) => (t += d.toString()));
            res.on('end', () => resolve(t));
          },
        );
        req.on('error', reject);
        req.on('timeout', () => req.destroy(new Error('TLS request timed out')));
        req.end();
      });
      assert.equal(body, 'tls-ok', `TLS through ${s.ep}`);
    }

    // UDP: a visitor (udp service of a burrow process) on B, to a udp client bound to A.
    const udp = await startUdpService('udp');
    cleanup.add(udp);
    const uc = startClient('client-udp', a, TID.services, `127.0.0.1:${udp.port}`, true);
    await uc.tunnelCreated({ network: 'udp' });
    await waitFor(async () => (await r.hlen(TID.services)) === 1, 10_000, 'the UDP tunnel registration');
    const visitor = burrow(['-L', 'udp://127.0.0.1:0/dns.local?keepalive=true', '-F', `tunnel://127.0.0.1:${b.port}?tunnel.id=${TID.services}`], {
      name: 'visitor-udp',
    });
    cleanup.fn(() => visitor.kill('SIGKILL'));
    const v = await new UdpClient(await visitor.listeningPort({ network: 'udp' })).bind();
    cleanup.fn(() => v.close());
    const echoed = await v.ask('ping over two servers', 2_000, 5);
    assert.equal(echoed?.toString(), 'ping over two servers');
  });

  it('the tunnel moves from A to B: requests through every server follow it; no server holds it: 503 and status 5', async () => {
    const r = redis.client(db);
    const first = startClient('mover-a', a, TID.public, `127.0.0.1:${web.port}`);
    await first.tunnelCreated();
    await waitFor(async () => (await r.hlen(TID.public)) === 1, 10_000, 'the registration on A');
    const host = 'mover.example.com';
    // tunnel.direct: a visitor names its own tunnel; the host goes to the backend as it is.
    for (const port of [b.port, c.port]) assert.equal((await httpOverRelay(port, TID.public, host)).status, 0);

    await first.kill('SIGKILL');
    await waitFor(async () => (await r.hlen(TID.public)) === 0, 10_000, 'A deregisters the dead connector');
    // No server holds the tunnel: each answers as a single server would.
    for (const port of [a.port, b.port, c.port, a.ep, c.ep]) {
      assert.equal((await httpOverRelay(port, TID.public, host)).status, 5, `status 5 through ${port}`);
    }
    for (const s of [a, b, c]) {
      assert.equal((await httpRequest(s.ep, { host: MOVER })).status, 503, `HTTP through ${s.ep}`);
      assert.equal((await httpRequest(s.ep, { host: HOST })).status, 200, 'the other tunnel still answers');
    }

    const second = startClient('mover-b', b, TID.public, `127.0.0.1:${web.port}`);
    await second.tunnelCreated();
    await waitFor(async () => (await r.hlen(TID.public)) === 1, 10_000, 'the registration on B');
    for (const port of [a.port, b.port, c.port, a.ep]) {
      const res = await httpOverRelay(port, TID.public, host);
      assert.equal(res.status, 0, `through ${port} after the move`);
      assert.match(res.body, /web GET \/relay host=mover\.example\.com/);
    }
    for (const s of [a, b, c]) assert.equal((await httpRequest(s.ep, { host: MOVER })).status, 200, `HTTP through ${s.ep} after the move`);
    await second.kill('SIGKILL');
  });

  it('a forwarded request is never forwarded again (loop guard)', async () => {
    const client = startClient('loop-client', a, TID.iperf, `127.0.0.1:${web.port}`);
    await client.tunnelCreated();
    const r = redis.client(db);
    await waitFor(async () => (await r.hlen(TID.iperf)) === 1, 10_000, 'the registration');
    const tid = parseTunnelId(TID.iperf);
    const plain = { tunnelId: TID.iperf, network: 'tcp' as const, src: '127.0.0.1:40000', client: '127.0.0.1:40000', dst: 'loop.example.com:80' };
    // Marked as forwarded: B has no connector and does not send it on.
    assert.equal(await rawRelayStatus(b.port, encodeForwardRequest(plain, tid)), 5);
    assert.equal(await rawRelayStatus(b.ep, encodeForwardRequest(plain, tid)), 5);
    // The same request unmarked is forwarded to A.
    const unmarked = await httpOverRelay(b.port, TID.iperf, 'loop.example.com');
    assert.equal(unmarked.status, 0);
    // HTTP carrying Gost-Forwarded-Node (another entry point sent it): not sent on either.
    const res = await httpRequest(b.ep, { host: HOST, headers: { 'Gost-Forwarded-Node': 'another-node' } });
    assert.equal(res.status, 503);
    assert.equal((await httpRequest(b.ep, { host: HOST })).status, 200);
    await client.kill('SIGKILL');
  });
});

describe('a forwarded request from an untrusted peer gets no more than a visitor', () => {
  it('credentials, limits and lockout: the mark is believed from sd.trusted only', async () => {
    const sdDb = 4;
    const auth = 'user:pass@';
    // U trusts nobody; T trusts 127.0.0.1 (every peer of this test). Both: 2 connections a
    // second per address, an auther, and the tunnel bound to H.
    const mk = async (name: string, trusted: string): Promise<Server> => {
        const proc = burrow(
          [
            '-L',
            `tunnel://${auth}127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel=.example.com:${TID.example}&tunnel.sd=redis://${redis.addr}/${sdDb}` +
              `&tunnel.connRate=0.001&tunnel.connBurst=2${trusted ? `&sd.trusted=${trusted}` : ''}`,
          ],
          { name },
        );
        cleanup.fn(() => proc.kill('SIGKILL'));
        return { proc, port: await proc.listeningPort(), ep: await proc.entrypointPort() };
    };
    const u = await mk('server-untrusting', '');
    const t = await mk('server-trusting', '127.0.0.1');
    const tid = parseTunnelId(TID.example);
    const forged = (client: string, creds: boolean): Buffer =>
      encodeForwardRequest(
        { tunnelId: TID.example, network: 'tcp', src: client, client, dst: `${HOST}:80`, ...(creds ? { username: 'user', password: 'pass' } : {}) },
        tid,
      );
    // No credentials, marked as forwarded for a public host: the untrusting server asks for
    // credentials as from any visitor (2 = unauthorized).
    assert.equal(await rawRelayStatus(u.port, forged('10.0.0.1:1', false)), 2);
    // Every forged mark names another address, yet all count against this socket's address:
    // the burst of 2 is used up, the third connection is closed without an answer.
    assert.equal(await rawRelayStatus(u.port, forged('10.0.0.2:1', true)), 5);
    assert.equal(await rawRelayStatus(u.port, forged('10.0.0.3:1', true)), undefined, 'rate limited by the socket address');
    // From a trusted peer the mark counts: each visitor address has its own burst, and a
    // credential-less forwarded request for a public host is taken as entry point traffic.
    for (let i = 1; i <= 4; i++) assert.equal(await rawRelayStatus(t.port, forged(`10.0.1.${i}:1`, false)), 5, `visitor ${i}`);
    assert.equal(await rawRelayStatus(t.port, forged('10.0.1.1:1', true)), 5);
    assert.equal(await rawRelayStatus(t.port, forged('10.0.1.1:1', true)), undefined, 'the visitor\'s own burst is used up');
    // Marked, credential-less, but for a private or foreign host: credentials are asked for.
    const foreign = encodeForwardRequest({ tunnelId: TID.example, network: 'tcp', src: '10.0.2.1:1', client: '10.0.2.1:1', dst: 'other.example.org:80' }, tid);
    assert.equal(await rawRelayStatus(t.port, foreign), 2);
    await eventually(async () => assert.ok(u.proc.alive && t.proc.alive));
  });
});

describe('a forwarded HTTP exchange keeps its connection to the other server', () => {
  it('keep-alive requests through B share one connection to A, per visitor address, and idle ones wait for the same visitor only', async () => {
    const sdDb = 5;
    const rules = `tunnel=.example.com:${TID.example}&tunnel.sd=redis://${redis.addr}/${sdDb}`;
    const mk = async (name: string, debug: boolean): Promise<Server> => {
      const proc = burrow(['-L', `tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&${rules}`, ...(debug ? ['-D'] : [])], { name });
      cleanup.fn(() => proc.kill('SIGKILL'));
      return { proc, port: await proc.listeningPort(), ep: await proc.entrypointPort() };
    };
    const a = await mk('fwd-server-a', true);
    const b = await mk('fwd-server-b', false);
    const web = await startHttpService('kept');
    cleanup.add(web);
    const client = startClient('fwd-client', a, TID.example, `127.0.0.1:${web.port}`);
    await client.tunnelCreated();
    await waitFor(async () => (await redis.client(sdDb).hlen(TID.example)) === 1, 10_000, 'the registration');

    // Each relay CONNECT A accepts for the tunnel is one connection from B (A logs it at debug).
    const accepted = (): number => a.proc.count((l) => typeof l.msg === 'string' && l.msg === `connect to tunnel=${TID.example} OK`);
    /** Waits until A has logged `n` accepted connections; what it logged before the last is in by then. */
    const acceptedReaches = (n: number): Promise<void> =>
      waitFor(async () => accepted() >= n, 10_000, `${n} connections accepted by A (saw ${accepted()})`);

    // Two visitors, one keep-alive connection each, from two addresses, taking turns.
    const agents = ['127.0.0.1', '127.0.0.2'].map((addr) => new http.Agent({ keepAlive: true, maxSockets: 1, localAddress: addr } as http.AgentOptions));
    const remotes = [new Set<string>(), new Set<string>()];
    for (let i = 0; i < 4; i++) {
      for (const v of [0, 1]) {
        const seen = web.requests.length;
        const res = await httpRequest(b.ep, { host: HOST, path: `/kept/${v}/${i}`, agent: agents[v] });
        assert.equal(res.status, 200, res.body);
        assert.equal(res.body, `kept GET /kept/${v}/${i} host=${HOST}`);
        if (i > 0) assert.ok(res.reused, 'the visitor connection is kept alive');
        assert.equal(web.requests.length, seen + 1);
        remotes[v]!.add(web.requests[seen]!.remote);
      }
    }
    // One connection to the origin per visitor, through one connection from B to A each.
    assert.equal(remotes[0]!.size, 1, `visitor 1's requests came on ${[...remotes[0]!].join(', ')}`);
    assert.equal(remotes[1]!.size, 1, `visitor 2's requests came on ${[...remotes[1]!].join(', ')}`);
    assert.notDeepEqual([...remotes[0]!], [...remotes[1]!], 'two visitors never share a connection');
    assert.equal(web.connections, 2);
    await acceptedReaches(2);

    // Visitor 2 goes away; its connection to A idles for its address only. A third visitor
    // (another address) gets a connection of its own.
    agents[1]!.destroy();
    const third = new http.Agent({ keepAlive: false, localAddress: '127.0.0.3' } as http.AgentOptions);
    const seen3 = web.requests.length;
    assert.equal((await httpRequest(b.ep, { host: HOST, path: '/third', agent: third })).status, 200);
    assert.ok(!remotes[0]!.has(web.requests[seen3]!.remote) && !remotes[1]!.has(web.requests[seen3]!.remote), 'not a connection of another visitor');
    await acceptedReaches(3);
    // Visitor 2 comes back on a new connection: the idle connection to A carries its request.
    const again = new http.Agent({ keepAlive: false, localAddress: '127.0.0.2' } as http.AgentOptions);
    const seen2 = web.requests.length;
    assert.equal((await httpRequest(b.ep, { host: HOST, path: '/again', agent: again })).status, 200);
    assert.ok(remotes[1]!.has(web.requests[seen2]!.remote), 'the idle connection of the same visitor address');
    // A request with Gost-Forwarded-Node is not forwarded, kept connection or not (loop guard).
    const looped = await httpRequest(b.ep, { host: HOST, agent: agents[0], headers: { 'Gost-Forwarded-Node': 'another-node' } });
    assert.equal(looped.status, 503);
    // A marker: one more new visitor; once A logged its connection, any other would be in too.
    assert.equal((await httpRequest(b.ep, { host: HOST, path: '/marker', agent: new http.Agent({ keepAlive: false, localAddress: '127.0.0.4' } as http.AgentOptions) })).status, 200);
    await acceptedReaches(4);
    assert.equal(accepted(), 4, 'B opened one connection to A per visitor address');
    assert.equal(web.connections, 4);
    for (const ag of agents) ag.destroy();
    await client.kill('SIGKILL');
  });
});
