/**
 * Access control, tested as the attacks (real processes, raw relay bytes):
 *
 * - the entry point's relay path (first byte 0x01) gets the tunnel port's checks: auther,
 *   host-to-tunnel rule, privacy, connection rate, also in direct mode and for BIND;
 *   `entrypoint.relay=false` turns it off;
 * - forwarded-for headers on a ws listener count only from `trustedProxies`: rotating them
 *   gives no extra guesses, spoofing a victim's address does not lock the victim out; the entry
 *   point's shared idle streams are not handed to another address naming the same client;
 * - lockout stops a guesser (also one rotating user names) without locking out a correct
 *   client behind the same address as a client with a stale password;
 * - `tunnel.bindAuth` / `tunnel.bindAuther`: BIND needs its own credential (a visitor's is
 *   refused, so a visitor cannot capture a tunnel with weight 255), optionally limited to
 *   listed tunnel IDs; CONNECT is checked by the service's auther alone.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { burrow, stopAll, tempFile, type BurrowProcess } from '../helpers/cli';
import { buildBindRequest, buildConnectRequest, decodeResponse, type UserAuth } from '../../src/protocol/relay/message';
import { parseTunnelId } from '../../src/protocol/relay/tunnel-id';
import { readRelayMessage } from '../../src/io/read-message';
import {
  LOCAL,
  connectTcp,
  established,
  newTid,
  rawExchange,
  request,
  startClient,
  startOrigin,
  startServer,
  type Origin,
  type ServerProc,
} from './support';

type Status = number | 'closed';

/** Sends one relay message on a fresh TCP connection; the status byte, or 'closed'. */
async function relayStatus(port: number, msg: Buffer, localAddress?: string): Promise<Status> {
  const s = await connectTcp(port, LOCAL, localAddress);
  s.on('error', () => undefined);
  try {
    s.write(msg);
    return decodeResponse(await readRelayMessage(s, 5_000)).status;
  } catch {
    return 'closed';
  } finally {
    s.destroy();
  }
}

function connect(tid: string, dst: string, auth?: UserAuth): Buffer {
  return buildConnectRequest({ srcAddr: '10.9.8.7:1234', dstAddr: dst, tunnelId: parseTunnelId(tid), udp: false, auth });
}

function bind(tid: string, auth?: UserAuth, weight = 0): Buffer {
  return buildBindRequest({ srcAddr: '10.9.8.7:1234', bindAddr: ':0', tunnelId: parseTunnelId(tid), udp: false, auth, weight });
}

/** One relay message over a WebSocket to a ws listener, from `localAddress` with `headers`. */
async function wsStatus(port: number, msg: Buffer, localAddress: string, headers: Record<string, string> = {}): Promise<Status> {
  const ws = new WebSocket(`ws://${LOCAL}:${port}/ws`, { localAddress, headers });
  return new Promise<Status>((resolve) => {
    const guard = setTimeout(() => done('closed'), 10_000);
    let got: Buffer = Buffer.alloc(0);
    function done(s: Status): void {
      clearTimeout(guard);
      ws.terminate();
      resolve(s);
    }
    ws.on('open', () => ws.send(msg));
    ws.on('message', (data: Buffer) => {
      got = Buffer.concat([got, data]);
      if (got.length >= 4) done(got[1]!);
    });
    ws.on('error', () => done('closed'));
    ws.on('close', () => done('closed'));
  });
}

const USER = 'vis';
const PASS = 'v1s-P4ss-3c1e';

describe('security: the entry point relay path gets the tunnel port checks', () => {
  const PRIV = newTid();
  const PUB = newTid();
  let secret: Origin;
  let web: Origin;
  let server: BurrowProcess;
  let port: number;
  let ep: number;
  const auth = { username: USER, password: PASS };

  before(async () => {
    secret = await startOrigin();
    web = await startOrigin();
    server = burrow(
      ['-L', `tunnel://${USER}:${PASS}@${LOCAL}:0?entrypoint=${LOCAL}:0&tunnel=srv.local:$${PRIV},www.local:${PUB}&tunnel.connRate=0.001&tunnel.connBurst=40`],
      { name: 'server-ep' },
    );
    port = await server.listeningPort();
    ep = await server.entrypointPort();
    const c1 = burrow(['-L', `rtcp://:0/${LOCAL}:${secret.port}`, '-F', `tunnel://${USER}:${PASS}@${LOCAL}:${port}?tunnel.id=${PRIV}`], { name: 'client-priv' });
    const c2 = burrow(['-L', `rtcp://:0/${LOCAL}:${web.port}`, '-F', `tunnel://${USER}:${PASS}@${LOCAL}:${port}?tunnel.id=${PUB}`], { name: 'client-pub' });
    await Promise.all([c1.tunnelCreated(), c2.tunnelCreated()]);
  });
  after(async () => {
    await stopAll();
    await secret.close();
    await web.close();
  });

  it('without or with wrong credentials a CONNECT or BIND is refused (0x02) on both ports; nothing reaches the tunnel', async () => {
    const before = secret.connections;
    const cases: Array<[string, Buffer]> = [
      ['connect, no credentials', connect(PRIV, 'srv.local:80')],
      ['connect, wrong password', connect(PRIV, 'srv.local:80', { username: USER, password: 'wrong' })],
      ['connect, any host, no credentials', connect(PRIV, 'anything.example:22')],
      ['bind, no credentials', bind(PRIV, undefined, 255)],
    ];
    for (const [what, msg] of cases) {
      assert.equal(await relayStatus(port, msg, '127.0.0.21'), 2, `tunnel port: ${what}`);
      assert.equal(await relayStatus(ep, msg, '127.0.0.22'), 2, `entry point: ${what}`);
    }
    assert.equal(secret.connections, before, 'a refused request reached the private tunnel');
  });

  it('with credentials, the rule check and privacy hold on the entry point as on the tunnel port', async () => {
    const before = secret.connections;
    const cases: Array<[string, Buffer, number]> = [
      // Another tunnel's host: host unreachable (0x06).
      ['the private host through the public tunnel', connect(PUB, 'srv.local:80', auth), 6],
      ['a host without a rule through the private tunnel', connect(PRIV, 'elsewhere.example:80', auth), 6],
      ['a tunnel nobody registered', connect(newTid(), 'srv.local:80', auth), 6],
    ];
    for (const [what, msg, want] of cases) {
      assert.equal(await relayStatus(port, msg), want, `tunnel port: ${what}`);
      assert.equal(await relayStatus(ep, msg), want, `entry point: ${what}`);
    }
    assert.equal(secret.connections, before, 'the private tunnel was reached');
    // Control: the private tunnel's own visitor with credentials gets through on both ports.
    assert.equal(await relayStatus(port, connect(PRIV, 'srv.local:80', auth)), 0);
    assert.equal(await relayStatus(ep, connect(PRIV, 'srv.local:80', auth)), 0);
  });

  it('the connection rate (tunnel.connRate) counts relay requests on the entry point too', async () => {
    const ip = '127.0.0.23';
    const got: Status[] = [];
    // Burst 40, refilled at one per 1000 s: the tunnel port and the entry point share it.
    for (let i = 0; i < 20; i++) got.push(await relayStatus(port, connect(PRIV, 'srv.local:80'), ip));
    for (let i = 0; i < 25; i++) got.push(await relayStatus(ep, connect(PRIV, 'srv.local:80'), ip));
    assert.deepEqual(got.slice(0, 40), new Array(40).fill(2));
    assert.deepEqual(got.slice(40), new Array(5).fill('closed'));
  });

  it('in direct mode the entry point asks for credentials too', async () => {
    const direct = burrow(['-L', `tunnel://${USER}:${PASS}@${LOCAL}:0?entrypoint=${LOCAL}:0&tunnel.direct=true`], { name: 'server-direct-auth' });
    const dport = await direct.listeningPort();
    const dep = await direct.entrypointPort();
    const T = newTid();
    const c = burrow(['-L', `rtcp://:0/${LOCAL}:${secret.port}`, '-F', `tunnel://${USER}:${PASS}@${LOCAL}:${dport}?tunnel.id=${T}`], { name: 'client-direct' });
    await c.tunnelCreated();
    const before = secret.connections;
    assert.equal(await relayStatus(dep, connect(T, 'srv.local:80')), 2);
    assert.equal(await relayStatus(dep, connect(T, ':0', { username: USER, password: 'nope' })), 2);
    assert.equal(secret.connections, before);
    // Control: with credentials the visitor reaches its tunnel through the entry point.
    assert.equal(await relayStatus(dep, connect(T, ':0', auth)), 0);
  });

  it('entrypoint.relay=false: relay bytes on the entry point get no relay answer and reach nothing', async () => {
    const off = burrow(['-L', `tunnel://${LOCAL}:0?entrypoint=${LOCAL}:0&tunnel.direct=true&entrypoint.relay=false`], { name: 'server-relay-off' });
    const oport = await off.listeningPort();
    const oep = await off.entrypointPort();
    const T = newTid();
    const c = await startClient(oport, T, `${LOCAL}:${secret.port}`, { name: 'client-relay-off' });
    await established(off, c.connector);
    const before = secret.connections;
    const r = await rawExchange(oep, connect(T, ':0'), 5_000);
    assert.notEqual(r.data[0], 0x01, 'a relay response came back');
    assert.equal(secret.connections, before);
    // The tunnel port still serves it.
    assert.equal(await relayStatus(oport, connect(T, ':0')), 0);
  });
});

describe('security: forwarded-for headers count only from trusted proxies', () => {
  let plain: BurrowProcess;
  let trusted: BurrowProcess;
  let pport: number;
  let tport: number;
  const T = newTid();
  const guess = (i: number): Buffer => connect(T, ':0', { username: USER, password: `guess-${i}` });
  const right = connect(T, ':0', { username: USER, password: PASS });

  before(async () => {
    plain = burrow(['-L', `tunnel+ws://${USER}:${PASS}@${LOCAL}:0?tunnel.direct=true`], { name: 'server-ws' });
    trusted = burrow(['-L', `tunnel+ws://${USER}:${PASS}@${LOCAL}:0?tunnel.direct=true&trustedProxies=127.0.0.32/32,10.0.0.0/8`], { name: 'server-ws-trusted' });
    [pport, tport] = await Promise.all([plain.listeningPort(), trusted.listeningPort()]);
  });
  after(() => stopAll());

  it('rotating X-Forwarded-For gives a guesser no more guesses (default: nobody trusted)', async () => {
    const got: Status[] = [];
    for (let i = 0; i < 6; i++) got.push(await wsStatus(pport, guess(i), '127.0.0.30', { 'X-Forwarded-For': `203.0.113.${i + 1}` }));
    assert.deepEqual(got, [2, 2, 2, 2, 2, 2]);
    // Even the right password, under yet another forwarded address, waits out the back-off.
    assert.equal(await wsStatus(pport, right, '127.0.0.30', { 'X-Forwarded-For': '203.0.113.99', 'CF-Connecting-IP': '203.0.113.98' }), 2);
    // Direct mode with no connector: admitted, then 0x05.
    assert.equal(await wsStatus(pport, right, '127.0.0.31'), 5);
  });

  it('spoofing a victim address in X-Forwarded-For does not lock the victim out', async () => {
    for (let i = 0; i < 8; i++) await wsStatus(pport, guess(100 + i), '127.0.0.33', { 'X-Forwarded-For': '127.0.0.34', 'X-Real-Ip': '127.0.0.34' });
    assert.equal(await wsStatus(pport, right, '127.0.0.34'), 5, 'the victim was locked out');
  });

  it('from a trusted proxy the forwarded client is the one counted; from anyone else the header is ignored', async () => {
    for (let i = 0; i < 6; i++) await wsStatus(tport, guess(200 + i), '127.0.0.32', { 'X-Forwarded-For': '198.51.100.1' });
    assert.equal(await wsStatus(tport, right, '127.0.0.32', { 'X-Forwarded-For': '198.51.100.1' }), 2, 'the guessing client behind the proxy');
    assert.equal(await wsStatus(tport, right, '127.0.0.32', { 'X-Forwarded-For': '198.51.100.2' }), 5, 'another client behind the same proxy');
    // 127.0.0.35 is not trusted: its headers are its own word.
    for (let i = 0; i < 6; i++) await wsStatus(tport, guess(300 + i), '127.0.0.35', { 'X-Forwarded-For': `198.51.100.${10 + i}` });
    assert.equal(await wsStatus(tport, right, '127.0.0.35', { 'X-Forwarded-For': '198.51.100.50' }), 2);
  });
});

describe('security: shared idle streams of the entry point stay with the address that opened them', () => {
  let origin: Origin;
  let server: ServerProc;
  before(async () => {
    origin = await startOrigin();
    const T = newTid();
    server = await startServer(`tunnel=idle.local:${T}`, { name: 'server-idle' });
    const c = await startClient(server.port, T, `${LOCAL}:${origin.port}`, { name: 'client-idle' });
    await established(server.proc, c.connector);
  });
  after(async () => {
    await stopAll();
    await origin.close();
  });

  it('a request from another address naming the first client in X-Forwarded-For gets its own stream', async () => {
    const get = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nHost: idle.local\r\n${extra}Connection: close\r\n\r\n`;
    const first = await rawExchange(server.ep, get('/victim'), 5_000, '127.0.0.41');
    assert.match(first.data.toString('latin1'), /^HTTP\/1\.1 200 /);
    const conns = origin.connections;
    const spoofed = await rawExchange(server.ep, get('/attacker', 'X-Forwarded-For: 127.0.0.41\r\n'), 5_000, '127.0.0.42');
    assert.match(spoofed.data.toString('latin1'), /^HTTP\/1\.1 200 /);
    assert.equal(origin.connections, conns + 1, "the attacker's request went down the victim's backend connection");
    // Control: the first client's next connection does reuse its own idle stream.
    const again = await rawExchange(server.ep, get('/victim-again'), 5_000, '127.0.0.41');
    assert.match(again.data.toString('latin1'), /^HTTP\/1\.1 200 /);
    assert.equal(origin.connections, conns + 1, 'the control did not reuse its idle stream');
  });
});

describe('security: lockout stops guessing, not the right client', () => {
  let server: BurrowProcess;
  let port: number;
  const T = newTid();
  const as = (username: string, password: string): Buffer => connect(T, ':0', { username, password });

  before(async () => {
    const yaml = `
services:
- name: tunnel
  addr: ${LOCAL}:0
  handler:
    type: tunnel
    auther: users
    metadata: {tunnel.direct: true}
  listener: {type: tcp}
authers:
- name: users
  auths:
  - {username: alice, password: alice-pw}
  - {username: bob, password: bob-pw}
`;
    server = burrow(['-C', tempFile('lockout.yaml', yaml)], { name: 'server-lockout' });
    port = await server.listeningPort();
  });
  after(() => stopAll());

  it('a client with a stale password behind the same address does not lock out the correct client', async () => {
    const stale = burrow(['-L', `rtcp://:0/${LOCAL}:9`, '-F', `tunnel://alice:old-pw@${LOCAL}:${port}?tunnel.id=${T}`], { name: 'client-stale' });
    await stale.waitFor(() => stale.count((l) => /retrying in \d+ms$/.test(String(l.msg))) >= 3, { timeoutMs: 20_000, what: 'three retries' });
    for (let i = 0; i < 10; i++) assert.equal(await relayStatus(port, as('alice', 'old-pw')), 2);
    const good = burrow(['-L', `rtcp://:0/${LOCAL}:9`, '-F', `tunnel://alice:alice-pw@${LOCAL}:${port}?tunnel.id=${T}`], { name: 'client-good' });
    await good.tunnelCreated({ timeoutMs: 15_000 });
    await stale.kill();
  });

  it('a guesser is stopped; rotating user names gives a bounded number of guesses per address', async () => {
    const ip = '127.0.0.51';
    // A user who works from this address logs in first.
    assert.equal(await relayStatus(port, as('alice', 'alice-pw'), ip), 0);
    // 25 user names, one guess each: more than the address's allowance (20).
    for (let i = 0; i < 25; i++) assert.equal(await relayStatus(port, as(`user${i}`, `pw${i}`), ip), 2);
    // bob's right password is not checked now from this address...
    assert.equal(await relayStatus(port, as('bob', 'bob-pw'), ip), 2, 'the address was not stopped');
    // ...but alice, who logged in from here before, is not locked out by someone else's guessing,
    assert.equal(await relayStatus(port, as('alice', 'alice-pw'), ip), 0, 'a user known at the address was locked out');
    // and bob from another address is unaffected.
    assert.equal(await relayStatus(port, as('bob', 'bob-pw'), '127.0.0.52'), 0);
  });
});

describe('security: binding a tunnel needs its own credential', () => {
  let origin: Origin;
  let rogue: Origin;
  before(async () => {
    origin = await startOrigin();
    rogue = await startOrigin();
  });
  after(async () => {
    await stopAll();
    await origin.close();
    await rogue.close();
  });

  it('tunnel.bindAuth: a visitor credential cannot BIND (no capture with weight 255); the bind credential can, and cannot CONNECT', async () => {
    const T = newTid();
    const server = burrow(
      ['-L', `tunnel://${USER}:${PASS}@${LOCAL}:0?entrypoint=${LOCAL}:0&tunnel=app.local:${T}&tunnel.bindAuth=binder:b1nd-pw,other:x:y`],
      { name: 'server-bindauth' },
    );
    const port = await server.listeningPort();
    const ep = await server.entrypointPort();
    const visitor = { username: USER, password: PASS };
    assert.equal(await relayStatus(port, bind(T, visitor, 255)), 2, 'BIND with a visitor credential');
    assert.equal(await relayStatus(ep, bind(T, visitor, 255)), 2, 'BIND with a visitor credential at the entry point');
    assert.equal(await relayStatus(port, bind(T)), 2, 'BIND without a credential');
    // A gost-style client sends the userinfo of its -F URL: the bind credential works unchanged.
    const client = burrow(['-L', `rtcp://:0/${LOCAL}:${origin.port}`, '-F', `tunnel://binder:b1nd-pw@${LOCAL}:${port}?tunnel.id=${T}`], { name: 'client-bind' });
    await client.tunnelCreated();
    // A password may hold ':'.
    assert.equal(await relayStatus(port, bind(newTid(), { username: 'other', password: 'x:y' })), 0);
    // The bind credential is not a visitor credential.
    assert.equal(await relayStatus(port, connect(T, 'app.local:80', { username: 'binder', password: 'b1nd-pw' })), 2);
    assert.equal(await relayStatus(port, connect(T, 'app.local:80', visitor)), 0);
    // All traffic still goes to the real client.
    for (let i = 0; i < 5; i++) assert.equal((await request(ep, { host: 'app.local', path: `/r${i}` })).status, 200);
    assert.equal(rogue.connections, 0);
    assert.equal(origin.seen.filter((u) => /^\/r\d$/.test(u)).length, 5);
  });

  it('tunnel.bindAuther with per-user tunnel lists: a credential binds only its listed tunnels', async () => {
    const A = newTid();
    const B = newTid();
    const yaml = `
services:
- name: tunnel
  addr: ${LOCAL}:0
  handler:
    type: tunnel
    auther: visitors
    metadata: {tunnel.direct: true, tunnel.bindAuther: binders}
  listener: {type: tcp}
authers:
- name: visitors
  auths: [{username: ${USER}, password: ${PASS}}]
- name: binders
  auths:
  - {username: ci, password: ci-pw, tunnels: [${A.toUpperCase()}]}
  - {username: ops, password: ops-pw}
`;
    const server = burrow(['-C', tempFile('bindauther.yaml', yaml)], { name: 'server-bindauther' });
    const port = await server.listeningPort();
    assert.equal(await relayStatus(port, bind(A, { username: 'ci', password: 'ci-pw' })), 0, 'ci binds its own tunnel');
    assert.equal(await relayStatus(port, bind(B, { username: 'ci', password: 'ci-pw' })), 2, 'ci binds a tunnel not listed for it');
    assert.equal(await relayStatus(port, bind(B, { username: 'ops', password: 'ops-pw' })), 0, 'an unlimited bind user');
    assert.equal(await relayStatus(port, bind(A, { username: USER, password: PASS })), 2, 'a visitor credential');
    // CONNECT: the service's auther only.
    assert.equal(await relayStatus(port, connect(A, ':0', { username: 'ops', password: 'ops-pw' })), 2);
    assert.equal(await relayStatus(port, connect(A, ':0', { username: USER, password: PASS })), 5);
  });

  it('a bindAuther that names no auther is a config error (exit 2) naming the path', async () => {
    const yaml = `
services:
- name: tunnel
  addr: ${LOCAL}:0
  handler: {type: tunnel, metadata: {tunnel.bindAuther: nobody}}
  listener: {type: tcp}
`;
    const p = burrow(['-C', tempFile('bad-bindauther.yaml', yaml)], { name: 'server-bad' });
    const exit = await p.exited;
    assert.equal(exit.code, 2);
    assert.match(p.output.join('\n'), /services\[0\]\.handler\.metadata\.tunnel\.bindAuther: auther 'nobody' is not defined/);
  });
});
