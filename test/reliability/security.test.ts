/**
 * Security (real processes): a private tunnel stays unreachable from the public entry point
 * whatever the spelling of its host (case, trailing dot, port, IDN/punycode, Host vs SNI,
 * duplicate Host, absolute-form request target); a visitor cannot reach a tunnel other than
 * its own unless the server runs in direct mode (and then only its own); authentication
 * guessing is stopped per client IP; credentials never appear in any log line.
 *
 * The private tunnel's client sends everything to a "secret" origin that counts every
 * connection it gets: any way in shows there.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { burrow, stopAll, type BurrowProcess } from '../helpers/cli';
import { buildConnectRequest, decodeResponse } from '../../src/protocol/relay/message';
import { parseTunnelId } from '../../src/protocol/relay/tunnel-id';
import { readRelayMessage } from '../../src/io/read-message';
import {
  LOCAL,
  connectTcp,
  established,
  newTid,
  rawExchange,
  request,
  sleep,
  startClient,
  startOrigin,
  startServer,
  startTcpVisitor,
  type Origin,
  type ServerProc,
} from './support';

const PUB = newTid();
const PRIV = newTid();
const USER = 'alice';
const PASS = 's3cr3t-P4ss-9f1c';
const WRONG = 'wr0ng-P4ss-77ab';

/** One relay CONNECT on a fresh connection; resolves the status byte (or 'closed'). */
async function connectStatus(
  port: number,
  tid: string,
  dst: string,
  opts: { localAddress?: string; auth?: { username: string; password: string } } = {},
): Promise<number | 'closed'> {
  const s = await connectTcp(port, LOCAL, opts.localAddress);
  s.on('error', () => undefined);
  try {
    s.write(buildConnectRequest({ srcAddr: '10.0.0.1:1234', dstAddr: dst, tunnelId: parseTunnelId(tid), udp: false, auth: opts.auth }));
    const r = decodeResponse(await readRelayMessage(s, 5_000));
    return r.status;
  } catch {
    return 'closed';
  } finally {
    s.destroy();
  }
}

/** Status code of one raw HTTP/1.1 request (0 when the connection closed without an answer). */
async function rawStatus(port: number, head: string): Promise<number> {
  const r = await rawExchange(port, Buffer.from(head, 'utf8'), 5_000);
  const m = /^HTTP\/1\.[01] (\d{3}) /.exec(r.data.toString('latin1'));
  return m ? Number(m[1]) : 0;
}

describe('security', () => {
  let publicOrigin: Origin;
  let secret: Origin;
  let server: ServerProc;

  before(async () => {
    publicOrigin = await startOrigin();
    secret = await startOrigin();
    // Private rules for the private tunnel (host, its subdomains, an IDN name stored as
    // punycode); every other name under example.com belongs to the public tunnel.
    const rules = [
      `private.example.com:$${PRIV}`,
      `.private.example.com:$${PRIV}`,
      `xn--bcher-kva.example.com:$${PRIV}`,
      `.example.com:${PUB}`,
    ].join(',');
    server = await startServer(`tunnel=${rules}`, { name: 'server' });
    const pub = await startClient(server.port, PUB, `${LOCAL}:${publicOrigin.port}`, { name: 'client-public' });
    const priv = await startClient(server.port, PRIV, `${LOCAL}:${secret.port}`, { name: 'client-private' });
    await Promise.all([established(server.proc, pub.connector), established(server.proc, priv.connector)]);
  });
  after(async () => {
    await stopAll();
    await publicOrigin.close();
    await secret.close();
  });

  it('the private tunnel works for its own private visitor (control)', async () => {
    const v = await startTcpVisitor(server.port, PRIV, 'private.example.com:80', { name: 'visitor-private' });
    const before = secret.connections;
    const status = await rawStatus(v.port, 'GET /control HTTP/1.1\r\nHost: private.example.com\r\nConnection: close\r\n\r\n');
    assert.equal(status, 200);
    assert.equal(secret.connections, before + 1);
  });

  it('no spelling of a private host reaches the private tunnel from the public entry point', async () => {
    const spellings = [
      'private.example.com',
      'PRIVATE.EXAMPLE.COM',
      'Private.Example.Com',
      'private.example.com.',
      'PRIVATE.example.com.',
      'private.example.com:80',
      'private.example.com:8080',
      'private.example.com.:80',
      'PRIVATE.EXAMPLE.COM.:443',
      'a.private.example.com',
      'A.PRIVATE.example.com.',
      'x.y.private.example.com:81',
      'xn--bcher-kva.example.com',
      'XN--BCHER-KVA.example.com',
      'xn--bcher-kva.example.com.:80',
      'bücher.example.com',
      'BÜCHER.example.com',
      'bücher.example.com.',
      'private.example.com\t',
      ' private.example.com',
    ];
    const before = secret.connections;
    const results: string[] = [];
    for (const h of spellings) {
      const status = await rawStatus(server.ep, `GET /spelling HTTP/1.1\r\nHost: ${h}\r\nConnection: close\r\n\r\n`);
      results.push(`${JSON.stringify(h)} → ${status}`);
      // Refused (502), rejected as bad HTTP (400 or closed), or served by the public tunnel.
      assert.ok([0, 400, 502, 200].includes(status), `${JSON.stringify(h)}: HTTP ${status}`);
    }
    // Each request line is checked by where it went, not by its status.
    assert.equal(secret.connections, before, `a spelling reached the private tunnel: ${results.join('; ')}`);
    // The exact private names are refused with 502 (not left to fall through to the public rule).
    assert.equal(await rawStatus(server.ep, 'GET / HTTP/1.1\r\nHost: private.example.com\r\n\r\n'), 502);
    assert.equal(await rawStatus(server.ep, 'GET / HTTP/1.1\r\nHost: a.private.example.com\r\n\r\n'), 502);
    assert.equal(await rawStatus(server.ep, 'GET / HTTP/1.1\r\nHost: xn--bcher-kva.example.com\r\n\r\n'), 502);
  });

  it('a case, trailing-dot or port spelling of a private host is refused (502), not handed to the public wildcard', async () => {
    // Falling through to `.example.com` would not expose the private tunnel, but it would send
    // a private name to another tunnel's client. Names are compared case-insensitively (a
    // documented deviation from gost), so the private rule must win.
    const results: string[] = [];
    for (const h of ['PRIVATE.EXAMPLE.COM', 'Private.Example.Com', 'private.example.com.', 'private.example.com:8080', 'A.PRIVATE.example.com', 'XN--BCHER-KVA.example.com']) {
      const status = await rawStatus(server.ep, `GET /fallthrough HTTP/1.1\r\nHost: ${h}\r\nConnection: close\r\n\r\n`);
      if (status !== 502) results.push(`${h} → ${status}`);
    }
    assert.deepEqual(results, []);
  });

  it(
    'an IDN host in Unicode form is refused like its punycode rule',
    async () => {
    const before = publicOrigin.seen.length;
    const status = await rawStatus(server.ep, 'GET /idn HTTP/1.1\r\nHost: bücher.example.com\r\nConnection: close\r\n\r\n');
    assert.ok(status === 502 || status === 400 || status === 0, `HTTP ${status}`);
    assert.equal(publicOrigin.seen.length, before, 'the Unicode spelling went to the public tunnel');
  },
  );

  it('duplicate Host headers and absolute-form request targets do not reach the private tunnel', async () => {
    const before = secret.connections;
    const heads = [
      'GET / HTTP/1.1\r\nHost: www.example.com\r\nHost: private.example.com\r\nConnection: close\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: private.example.com\r\nHost: www.example.com\r\nConnection: close\r\n\r\n',
      'GET http://private.example.com/ HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n',
      'GET http://www.example.com/ HTTP/1.1\r\nHost: private.example.com\r\nConnection: close\r\n\r\n',
      'GET / HTTP/1.0\r\n\r\n',
    ];
    for (const h of heads) await rawStatus(server.ep, h);
    assert.equal(secret.connections, before);
  });

  it('TLS: no SNI spelling of a private host reaches the private tunnel; Host vs SNI mismatch stays on the SNI tunnel', async () => {
    const before = secret.connections;
    for (const sni of ['private.example.com', 'PRIVATE.EXAMPLE.COM', 'a.private.example.com', 'xn--bcher-kva.example.com', 'www.example.com']) {
      await new Promise<void>((resolve) => {
        const s = tls.connect({ host: LOCAL, port: server.ep, servername: sni, rejectUnauthorized: false }, () => {
          // Public SNI, private Host inside: it can only go where the SNI points.
          s.write('GET / HTTP/1.1\r\nHost: private.example.com\r\n\r\n');
        });
        s.on('error', () => resolve());
        s.on('close', () => resolve());
        setTimeout(() => {
          s.destroy();
          resolve();
        }, 2_000);
      });
    }
    await sleep(200);
    assert.equal(secret.connections, before);
  });

  it('a visitor cannot reach another tunnel: 0x06 for a host of another tunnel, whatever the spelling', async () => {
    const cases: Array<[string, string]> = [
      [PUB, 'private.example.com:80'],
      [PUB, 'PRIVATE.example.com.:80'],
      [PUB, 'a.private.example.com:22'],
      [PRIV, 'www.example.com:80'],
      [newTid(), 'private.example.com:80'],
      [newTid(), 'www.example.com:80'],
    ];
    const before = secret.connections;
    const got = await Promise.all(cases.map(([tid, dst]) => connectStatus(server.port, tid, dst)));
    assert.deepEqual(
      got.map((s, i) => `${cases[i]![1]}: ${s}`),
      cases.map(([, dst]) => `${dst}: 6`),
    );
    assert.equal(secret.connections, before);
    // Control: its own tunnel works.
    assert.equal(await connectStatus(server.port, PRIV, 'private.example.com:80'), 0);
  });

  it('in direct mode a visitor reaches its own tunnel only, whatever host it names', async () => {
    const direct = await startServer('tunnel.direct=true', { name: 'server-direct' });
    const pub = await startClient(direct.port, PUB, `${LOCAL}:${publicOrigin.port}`, { name: 'client-public-direct' });
    const priv = await startClient(direct.port, PRIV, `${LOCAL}:${secret.port}`, { name: 'client-private-direct' });
    await Promise.all([established(direct.proc, pub.connector), established(direct.proc, priv.connector)]);
    const v = await startTcpVisitor(direct.port, PUB, 'private.example.com:80', { name: 'visitor-direct' });
    const before = secret.connections;
    const seen = publicOrigin.seen.length;
    assert.equal(await rawStatus(v.port, 'GET /direct HTTP/1.1\r\nHost: private.example.com\r\nConnection: close\r\n\r\n'), 200);
    assert.equal(secret.connections, before, 'a direct-mode visitor reached another tunnel');
    assert.equal(publicOrigin.seen.length, seen + 1);
    // A tunnel ID nobody registered reaches nothing.
    assert.equal(await connectStatus(direct.port, newTid(), 'private.example.com:80'), 5);
  });

  describe('authentication', () => {
    let auth: BurrowProcess;
    let port: number;
    let client: BurrowProcess;
    let visitorBad: BurrowProcess;
    let clientBad: BurrowProcess;

    before(async () => {
      auth = burrow(['-L', `tunnel://${USER}:${PASS}@${LOCAL}:0?entrypoint=${LOCAL}:0&tunnel=.example.com:${PUB}`, '-D'], { name: 'server-auth' });
      port = await auth.listeningPort();
      client = burrow(['-L', `rtcp://:0/${LOCAL}:${publicOrigin.port}`, '-F', `tunnel://${USER}:${PASS}@${LOCAL}:${port}?tunnel.id=${PUB}`, '-D'], {
        name: 'client-auth',
      });
      await client.tunnelCreated();
      clientBad = burrow(['-L', `rtcp://:0/${LOCAL}:${publicOrigin.port}`, '-F', `tunnel://${USER}:${WRONG}@${LOCAL}:${port}?tunnel.id=${PUB}`, '-D'], {
        name: 'client-bad-auth',
      });
      await clientBad.waitForMsg(/retrying in \d+ms$/, { timeoutMs: 10_000 });
      visitorBad = burrow(['-L', `tcp://${LOCAL}:0/www.example.com:80`, '-F', `tunnel://${USER}:${WRONG}@${LOCAL}:${port}?tunnel.id=${PUB}`, '-D'], {
        name: 'visitor-bad-auth',
      });
      const vp = await visitorBad.listeningPort();
      await rawExchange(vp, 'GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n', 3_000);
    });

    it('a guesser is stopped per address: after 5 guesses even the right password waits out a back-off', async () => {
      const ip = '127.0.0.4';
      const other = '127.0.0.5';
      const right = { username: USER, password: PASS };
      const statuses: Array<number | 'closed'> = [];
      for (let i = 0; i < 6; i++) {
        statuses.push(await connectStatus(port, PUB, 'www.example.com:80', { localAddress: ip, auth: { username: USER, password: `${WRONG}-${i}` } }));
      }
      assert.deepEqual(statuses, [2, 2, 2, 2, 2, 2]);
      assert.equal(await connectStatus(port, PUB, 'www.example.com:80', { localAddress: ip, auth: right }), 2, 'not stopped after 6 guesses');
      // Another address is not affected.
      assert.equal(await connectStatus(port, PUB, 'www.example.com:80', { localAddress: other, auth: right }), 0);
      // Nor are tunnels already registered.
      assert.equal((await request(Number(/:(\d+)$/.exec(String((await auth.waitForMsg(/^entrypoint: /)).msg))![1]), { host: 'www.example.com' })).status, 200);
    });

    it('a client with a wrong password keeps backing off instead of hammering the server', async () => {
      await clientBad.waitFor(() => clientBad.count((l) => /retrying in \d+ms$/.test(String(l.msg))) >= 3, { timeoutMs: 10_000, what: 'three retries' });
      const delays = clientBad.filter((l) => /retrying in \d+ms$/.test(String(l.msg))).map((l) => Number(/retrying in (\d+)ms$/.exec(String(l.msg))![1]));
      assert.ok(delays[2]! > delays[0]!, `retry delays ${delays.join(', ')} do not grow`);
    });

    it('credentials never appear in any log line of the server, clients or visitors (debug level)', async () => {
      await sleep(300);
      const secrets = [PASS, WRONG, Buffer.from(`${USER}:${PASS}`).toString('base64'), Buffer.from(`${USER}:${WRONG}`).toString('base64'), Buffer.from(PASS).toString('hex')];
      const leaks: string[] = [];
      for (const p of [auth, client, clientBad, visitorBad]) {
        assert.ok(p.output.length > 2, `${p.name} logged almost nothing`);
        for (const line of p.output) for (const s of secrets) if (line.includes(s)) leaks.push(`${p.name}: ${line}`);
      }
      assert.deepEqual(leaks, []);
      // The failures are logged, with the user name only.
      assert.ok(auth.filter((l) => /unauthorized/.test(String(l.msg))).length > 0);
    });
  });
});
