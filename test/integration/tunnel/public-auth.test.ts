import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import dgram from 'node:dgram';
import { startApp, startDirectServerWithAuther, httpServer, get } from '../../helpers/inproc';
import { listenEcho, listenUdpEcho, connect, readN, waitFor } from '../../helpers/net';
import { buildBindRequest, buildConnectRequest } from '../../../src/protocol/relay/message';
import { parseTunnelId, tunnelEndpoint } from '../../../src/protocol/relay/tunnel-id';

async function relayStatus(port: number, request: Buffer): Promise<number> {
  const s = await connect(port);
  s.write(request);
  const resp = await readN(s, 4);
  s.destroy();
  return resp[1]!;
}

describe('public mode (tunnel.publicDomain)', () => {
  test('derives the endpoint as gost does', () => {
    assert.equal(tunnelEndpoint(parseTunnelId('893787fd-fcd2-46a0-8dd4-f9103ae84df4')), '134c714b65d54a4f');
  });

  test('two clients with random UUIDs get <endpoint>.<domain> and are reached by Host', async () => {
    const server = await startApp({ L: ['tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel.publicDomain=example.net'] });
    after(() => server.stop());
    const ep = server.entrypoint();
    const svcA = await httpServer('service A');
    const svcB = await httpServer('service B');
    after(() => svcA.close());
    after(() => svcB.close());
    const idA = randomUUID();
    const idB = randomUUID();
    const a = await startApp({ L: [`rtcp://:0/127.0.0.1:${svcA.port}`], F: [`tunnel://${server.addr()}?tunnel.id=${idA}`] });
    after(() => a.stop());
    const b = await startApp({ L: [`rtcp://:0/127.0.0.1:${svcB.port}`], F: [`tunnel://${server.addr()}?tunnel.id=${idB}`] });
    after(() => b.stop());
    const [ba, bb] = await Promise.all([a.bound, b.bound]);
    const epA = tunnelEndpoint(parseTunnelId(idA));
    const epB = tunnelEndpoint(parseTunnelId(idB));
    assert.equal(ba.endpoint, epA);
    assert.equal(ba.publicHost, `${epA}.example.net`);
    assert.equal(bb.publicHost, `${epB}.example.net`);
    // The client's log line names the endpoint, as gost's does.
    const line = a.logs.find((l) => String(l.msg).startsWith('create tunnel on'));
    assert.ok(line, 'create tunnel log line');
    assert.equal(line.endpoint, epA);
    assert.match(String(line.msg), new RegExp(`^create tunnel on ${epA}:0/tcp OK, tunnel=${idA}, connector=`));
    assert.deepEqual(await get(ep, `${epA}.example.net`), { status: 200, body: 'service A' });
    assert.deepEqual(await get(ep, `${epB}.EXAMPLE.net:80`), { status: 200, body: 'service B' });
    assert.equal((await get(ep, `ffffffffffffffff.example.net`)).status, 502);
  });

  test('names expire tunnel.publicTTL after their tunnel left, and are freed', async () => {
    const server = await startApp({
      L: ['tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel.publicDomain=example.net&tunnel.publicTTL=1s'],
    });
    after(() => server.stop());
    const svc = await httpServer('short lived');
    after(() => svc.close());
    const id = randomUUID();
    const c = await startApp({ L: [`rtcp://:0/127.0.0.1:${svc.port}`], F: [`tunnel://${server.addr()}?tunnel.id=${id}`] });
    const info = await c.bound;
    assert.equal((await get(server.entrypoint(), info.publicHost!)).status, 200);
    await c.stop();
    const pool = server.app.built.tunnelHandlers.get('service-0')!.server.pool;
    await waitFor(() => pool.connectors(id).length === 0, 5000, 'connector gone');
    await new Promise((r) => setTimeout(r, 1200));
    assert.equal((await get(server.entrypoint(), info.publicHost!)).status, 502);
    const names = server.app.built.tunnelHandlers.get('service-0')!.server.publicNames!;
    names.sweep();
    assert.equal(names.size, 0);
  });

  test('a custom name goes to its first binder; a second tunnel asking for it gets the hash name', async () => {
    const server = await startApp({ L: ['tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel.publicDomain=example.net'] });
    after(() => server.stop());
    const s1 = await httpServer('first');
    const s2 = await httpServer('second');
    after(() => s1.close());
    after(() => s2.close());
    const id1 = randomUUID();
    const id2 = randomUUID();
    const c1 = await startApp({ L: [`rtcp://hello/127.0.0.1:${s1.port}`], F: [`tunnel://${server.addr()}?tunnel.id=${id1}`] });
    after(() => c1.stop());
    assert.equal((await c1.bound).publicHost, 'hello.example.net');
    const c2 = await startApp({ L: [`rtcp://hello/127.0.0.1:${s2.port}`], F: [`tunnel://${server.addr()}?tunnel.id=${id2}`] });
    after(() => c2.stop());
    const b2 = await c2.bound;
    assert.equal(b2.publicHost, `${tunnelEndpoint(parseTunnelId(id2))}.example.net`);
    assert.equal((await get(server.entrypoint(), 'hello.example.net')).body, 'first');
    assert.equal((await get(server.entrypoint(), b2.publicHost!)).body, 'second');
  });

  test('TCP and UDP private entry points through a public-mode server', async () => {
    const server = await startApp({ L: ['tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel.publicDomain=example.net'] });
    after(() => server.stop());
    const echo = await listenEcho();
    const uecho = await listenUdpEcho();
    after(() => echo.close());
    after(() => uecho.close());
    const id = randomUUID();
    const host = `${tunnelEndpoint(parseTunnelId(id))}.example.net`;
    const client = await startApp({
      L: [`rtcp://:0/127.0.0.1:${echo.port}`, `rudp://:0/127.0.0.1:${uecho.port}`],
      F: [`tunnel://${server.addr()}?tunnel.id=${id}`],
    });
    after(() => client.stop());
    await client.bound;
    const pool = server.app.built.tunnelHandlers.get('service-0')!.server.pool;
    await waitFor(() => pool.connectors(id).length === 2, 5000, 'tcp and udp connectors');
    const visitor = await startApp({
      L: [`tcp://127.0.0.1:0/${host}`, `udp://127.0.0.1:0/${host}?keepalive=true`],
      F: [`tunnel://${server.addr()}?tunnel.id=${id}`],
    });
    after(() => visitor.stop());
    const s = await connect(visitor.port(0));
    s.write('ping over tcp');
    assert.equal((await readN(s, 13)).toString(), 'ping over tcp');
    s.destroy();
    const u = dgram.createSocket('udp4');
    after(() => u.close());
    const got = new Promise<Buffer>((r) => u.once('message', (m) => r(m)));
    u.send('ping over udp', visitor.port(1), '127.0.0.1');
    assert.equal((await got).toString(), 'ping over udp');
  });

  test('over-limit BINDs are refused with a status and existing tunnels keep working', async () => {
    const server = await startApp({ L: ['tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel=a.local:' + '11111111-1111-4111-8111-111111111111' + '&tunnel.maxTunnels=1&tunnel.maxConnectors=1'] });
    after(() => server.stop());
    const svc = await httpServer('kept');
    after(() => svc.close());
    const c = await startApp({ L: [`rtcp://:0/127.0.0.1:${svc.port}`], F: [`tunnel://${server.addr()}?tunnel.id=11111111-1111-4111-8111-111111111111`] });
    after(() => c.stop());
    await c.bound;
    const second = buildBindRequest({ srcAddr: '127.0.0.1:1', bindAddr: ':0', tunnelId: parseTunnelId('11111111-1111-4111-8111-111111111111'), udp: false });
    assert.equal(await relayStatus(server.port(), second), 0x03);
    const other = buildBindRequest({ srcAddr: '127.0.0.1:1', bindAddr: ':0', tunnelId: parseTunnelId(randomUUID()), udp: false });
    assert.equal(await relayStatus(server.port(), other), 0x03);
    assert.ok(server.logs.some((l) => /limit reached/.test(String(l.msg))));
    assert.equal((await get(server.entrypoint(), 'a.local')).body, 'kept');
  });

  test('per-IP connection rate limit on the tunnel port', async () => {
    const server = await startApp({ L: ['tunnel://127.0.0.1:0?tunnel.direct=true&tunnel.connRate=2&tunnel.connBurst=3'] });
    after(() => server.stop());
    const req = buildConnectRequest({ srcAddr: '127.0.0.1:1', dstAddr: ':0', tunnelId: parseTunnelId(randomUUID()), udp: false });
    const answers: number[] = [];
    for (let i = 0; i < 6; i++) {
      const s = await connect(server.port());
      s.write(req);
      const r = await readN(s, 4, 2000).then((b) => b[1]!, () => -1);
      answers.push(r);
      s.destroy();
    }
    // The first three fit the burst (no connector: 0x05); the rest are closed without a reply.
    assert.deepEqual(answers.slice(0, 3), [5, 5, 5]);
    assert.ok(answers.slice(3).every((a) => a === -1), `answers ${answers}`);
    assert.equal(server.logs.filter((l) => /connection rate limit/.test(String(l.msg))).length, 1);
  });
});

describe('authentication', () => {
  const TID = '4d21094e-b74c-4916-86c1-d9fa36ea677b';

  test('right credentials work; wrong or missing ones get 0x02 for BIND and CONNECT; secrets are never logged', async () => {
    const server = await startApp({
      L: [`tunnel://user:s3cr3t-pass@127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel=app.local:${TID}`],
    });
    after(() => server.stop());
    const svc = await httpServer('authorized');
    after(() => svc.close());
    const good = await startApp({ L: [`rtcp://:0/127.0.0.1:${svc.port}`], F: [`tunnel://user:s3cr3t-pass@${server.addr()}?tunnel.id=${TID}`] });
    after(() => good.stop());
    await good.bound;
    assert.equal((await get(server.entrypoint(), 'app.local')).body, 'authorized');
    const id = parseTunnelId(TID);
    const bindWrong = buildBindRequest({ srcAddr: '127.0.0.1:1', bindAddr: ':0', tunnelId: id, udp: false, auth: { username: 'user', password: 'wrong' } });
    const bindNone = buildBindRequest({ srcAddr: '127.0.0.1:1', bindAddr: ':0', tunnelId: id, udp: false });
    const connWrong = buildConnectRequest({ srcAddr: '127.0.0.1:1', dstAddr: 'app.local:0', tunnelId: id, udp: false, auth: { username: 'user', password: 'nope' } });
    const connNone = buildConnectRequest({ srcAddr: '127.0.0.1:1', dstAddr: 'app.local:0', tunnelId: id, udp: false });
    assert.equal(await relayStatus(server.port(), bindWrong), 0x02);
    assert.equal(await relayStatus(server.port(), bindNone), 0x02);
    assert.equal(await relayStatus(server.port(), connWrong), 0x02);
    assert.equal(await relayStatus(server.port(), connNone), 0x02);
    // A visitor with the right credentials reaches the tunnel.
    const connGood = buildConnectRequest({ srcAddr: '127.0.0.1:1', dstAddr: 'app.local:0', tunnelId: id, udp: false, auth: { username: 'user', password: 's3cr3t-pass' } });
    assert.equal(await relayStatus(server.port(), connGood), 0x00);
    for (const raw of [...server.rawLogs, ...good.rawLogs]) {
      assert.ok(!raw.includes('s3cr3t-pass'), `secret in log line: ${raw}`);
      assert.ok(!raw.includes('"wrong"') && !raw.includes('nope'), `attempted secret in log line: ${raw}`);
    }
  });

  test('guesses from one IP are stopped, even the right password during the back-off; a repeated wrong password is no guess', async () => {
    const server = await startApp({ L: [`tunnel://user:pw@127.0.0.1:0?tunnel.direct=true`] });
    after(() => server.stop());
    const id = parseTunnelId(TID);
    const as = (password: string) =>
      buildConnectRequest({ srcAddr: '127.0.0.1:1', dstAddr: ':0', tunnelId: id, udp: false, auth: { username: 'user', password } });
    // One stale password, again and again: refused each time, never locking the user out.
    for (let i = 0; i < 10; i++) assert.equal(await relayStatus(server.port(), as('stale')), 0x02);
    assert.equal(await relayStatus(server.port(), as('pw')), 0x05, 'the right password after a repeated wrong one');
    // Six different wrong passwords (five free guesses, then a back-off): the right one is refused.
    for (let i = 0; i < 6; i++) assert.equal(await relayStatus(server.port(), as(`guess-${i}`)), 0x02);
    assert.equal(await relayStatus(server.port(), as('pw')), 0x02, 'not stopped after six guesses');
  });

  test('auther with a file source, reloaded when the file changes', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'burrow-auth-'));
    const file = join(dir, 'users.txt');
    writeFileSync(file, '# user pass\nalice one\n');
    const server = await startDirectServerWithAuther([{ name: 'auther-0', file: { path: file } }]);
    after(() => server.stop());
    const id = parseTunnelId(TID);
    const as = (u: string, p: string) => buildConnectRequest({ srcAddr: '127.0.0.1:1', dstAddr: ':0', tunnelId: id, udp: false, auth: { username: u, password: p } });
    assert.equal(await relayStatus(server.port(), as('alice', 'one')), 0x05);
    writeFileSync(file, 'alice two\n');
    // Poll without presenting credentials (failed attempts would trip the brute-force limit).
    const auther = server.app.built.authers.get('auther-0')!;
    let probe = 0;
    await waitFor(() => auther.authenticate('alice', 'two', `10.0.0.${++probe}:1`), 5000, 'reloaded credentials');
    assert.equal(await relayStatus(server.port(), as('alice', 'two')), 0x05);
    assert.equal(await relayStatus(server.port(), as('alice', 'one')), 0x02);
  });
});
