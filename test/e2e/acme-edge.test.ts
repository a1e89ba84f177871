/**
 * Automatic certificates at the entry point (docs/acme.md) with the real CLI against pebble:
 * the first https request to an ingress host with a live connector orders a certificate that
 * curl trusts with pebble's root (TLS-ALPN-01 answered on the entry point's TLS side); an
 * unrouted SNI, a name under a wildcard rule and a host whose tunnel has no connector order
 * nothing and are passed through as before; a restart with the same storage serves the stored
 * certificate without an order; HTTP-01 (`entrypoint.acmeChallenges=http-01`) is answered on
 * the entry point's plain HTTP side, and the redirect to https spares challenge paths.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { burrow, tempFile, type BurrowProcess } from '../helpers/cli';
import { curl, handshake } from '../helpers/acme';
import { havePebble, startPebble, type Pebble } from '../helpers/pebble';
import { freePort } from '../helpers/redis';
import { Cleanup, LOCAL, TID, httpRequest, startHttpService, type HttpService } from './support';

const cleanup = new Cleanup();
after(() => cleanup.run());

const ISSUED = 'ACME certificate issued';

/** New orders pebble has received so far. */
function pebbleOrders(p: Pebble): number {
  return (p.output().match(/POST \/order-plz/g) ?? []).length;
}

describe('entry point ACME: certificates for live tunnels from pebble', { skip: !havePebble() && 'pebble is not installed' }, () => {
  let pebble: Pebble;
  let web: HttpService;
  let ep: number;
  let rootFile: string;
  let storage: string;
  let server: BurrowProcess;
  let client: BurrowProcess;

  const rules = [
    `app.example.test:${TID.example}`,
    `plain.example.test:${TID.example}`,
    `.wild.example.test:${TID.example}`,
    `down.example.test:${TID.org}`,
  ].join(',');

  /** A tunnel server on the entry port pebble validates on, and a client for TID.example. */
  async function startPair(extra: string[] = []): Promise<void> {
    const q = [
      `entrypoint=${LOCAL}:${ep}`,
      `tunnel=${rules}`,
      `entrypoint.acme=${pebble.directoryUrl}`,
      `entrypoint.acmeCA=${pebble.caFile}`,
      `entrypoint.acmeStorage=${storage}`,
      ...extra,
    ].join('&');
    server = burrow(['-L', `tunnel://${LOCAL}:0?${q}`, '-D'], { name: 'server' });
    const port = await server.listeningPort();
    assert.equal(await server.entrypointPort(), ep);
    client = burrow(['-L', `rtcp://:0/${LOCAL}:${web.port}`, '-F', `tunnel://${LOCAL}:${port}?tunnel.id=${TID.example}`], { name: 'client' });
    await server.waitForMsg(new RegExp(`tunnel=${TID.example}, connector=.* established`));
  }

  function https(host: string, urlPath = '/'): ReturnType<typeof curl> {
    return curl(['--cacert', rootFile, '--resolve', `${host}:${ep}:${LOCAL}`, `https://${host}:${ep}${urlPath}`]);
  }

  function issued(p: BurrowProcess): string[] {
    return p.filter((l) => l.msg === ISSUED).map((l) => String(l['name']));
  }

  before(async () => {
    ep = await freePort();
    pebble = await startPebble({ httpPort: ep, tlsPort: ep });
    cleanup.fn(() => pebble.stop());
    storage = await fs.mkdtemp(path.join(os.tmpdir(), 'burrow-acme-edge-'));
    cleanup.fn(() => fs.rm(storage, { recursive: true, force: true }));
    rootFile = path.join(storage, 'pebble-root.pem');
    await fs.writeFile(rootFile, await pebble.rootPem());
    web = cleanup.add(await startHttpService('web'));
    await startPair();
  });

  it('orders on the first https request to a live ingress host; curl trusts it with pebble\'s root', async () => {
    const r = await https('app.example.test', '/hello');
    assert.equal(r.code, 0, `${r.stderr}\n${server.recentOutput()}\n${pebble.output().slice(-3000)}`);
    assert.equal(r.stdout, `web GET /hello host=app.example.test:${ep}`);
    assert.deepEqual(issued(server), ['app.example.test']);
    assert.equal(pebbleOrders(pebble), 1);
    // Validated by TLS-ALPN-01 on the entry point's TLS side (the default preference), not HTTP-01.
    assert.doesNotMatch(pebble.output(), /validate w\/ HTTP: http:\/\/app\.example\.test/);
    // Stored: key 0600 beside the chain.
    const dirs = await fs.readdir(storage, { withFileTypes: true });
    const caDir = dirs.find((d) => d.isDirectory())!.name;
    const key = await fs.stat(path.join(storage, caDir, 'certs', 'app.example.test.key'));
    assert.equal(key.mode & 0o777, 0o600);
    // The second request uses the certificate in memory: no new order.
    const again = await https('app.example.test', '/again');
    assert.equal(again.code, 0, again.stderr);
    assert.equal(pebbleOrders(pebble), 1);
  });

  it('orders nothing for an unrouted SNI, a wildcard rule\'s subdomain or a host without a connector', async () => {
    const root = await fs.readFile(rootFile, 'utf8');
    const before = web.connections;
    // Unrouted and no connector: closed as gost does (no route / no connector).
    for (const name of ['random.example.test', 'down.example.test', 'nope.test']) {
      const r = await handshake(ep, name, root);
      assert.ok(r.error, `${name} must get no certificate`);
    }
    // Under the wildcard rule: passed through to <sni>:443 behind the client, whose HTTP service
    // gets the ClientHello as it would without ACME.
    const w = await handshake(ep, 'x.wild.example.test', root);
    assert.ok(w.error, 'x.wild.example.test must get no certificate');
    assert.ok(web.connections > before, 'the wildcard name was passed through to the service');
    // A handshake offering acme-tls/1 for a name without a pending challenge orders nothing either.
    const alpn = await new Promise<Error | undefined>((resolve) => {
      const s = tls.connect({ host: LOCAL, port: ep, servername: 'random2.example.test', ALPNProtocols: ['acme-tls/1'], rejectUnauthorized: false });
      s.once('secureConnect', () => {
        s.destroy();
        resolve(undefined);
      });
      s.once('error', resolve);
      s.once('close', () => resolve(new Error('closed')));
    });
    assert.ok(alpn);
    assert.deepEqual(issued(server), ['app.example.test']);
    assert.equal(pebbleOrders(pebble), 1);
  });

  it('after a restart with the same storage, serves the stored certificate without an order; HTTP-01 works through the entry point', async () => {
    await client.stop();
    await server.stop();
    await startPair(['entrypoint.acmeChallenges=http-01', 'entrypoint.redirectHttps=true']);
    await server.waitForMsg(/^ACME certificates loaded$/);
    const r = await https('app.example.test', '/after-restart');
    assert.equal(r.code, 0, `${r.stderr}\n${server.recentOutput()}`);
    assert.equal(r.stdout, `web GET /after-restart host=app.example.test:${ep}`);
    assert.deepEqual(issued(server), []);
    assert.equal(pebbleOrders(pebble), 1);

    // A stored certificate counts for the redirect; challenge paths are spared.
    const redirect = await httpRequest(ep, { host: 'app.example.test', path: '/x' });
    assert.equal(redirect.status, 308);
    assert.equal(redirect.headers.location, 'https://app.example.test/x');
    const spared = await httpRequest(ep, { host: 'app.example.test', path: '/.well-known/acme-challenge/unknown' });
    assert.equal(spared.status, 200, 'an unknown token is routed as any request');
    assert.equal(spared.body, 'web GET /.well-known/acme-challenge/unknown host=app.example.test');

    // A new name with HTTP-01 only: pebble fetches the token from the entry point's plain side.
    const seenBefore = web.requests.length;
    const p = await https('plain.example.test', '/first');
    assert.equal(p.code, 0, `${p.stderr}\n${server.recentOutput()}\n${pebble.output().slice(-3000)}`);
    assert.equal(p.stdout, `web GET /first host=plain.example.test:${ep}`);
    assert.deepEqual(issued(server), ['plain.example.test']);
    assert.equal(pebbleOrders(pebble), 2);
    assert.match(pebble.output(), new RegExp(`validate w/ HTTP: http://plain\\.example\\.test:${ep}/\\.well-known/acme-challenge/`));
    // The token was answered by the entry point, never by the service behind the tunnel.
    const challenges = web.requests.slice(seenBefore).filter((q) => q.url.startsWith('/.well-known/acme-challenge/') && q.url !== '/.well-known/acme-challenge/unknown');
    assert.deepEqual(challenges, []);
  });
});

describe('entry point ACME: TLS on one address, HTTP-01 and redirects on a second one', { skip: !havePebble() && 'pebble is not installed' }, () => {
  it('a handshake on the TLS address orders; pebble validates on the plain address of the same server', async () => {
    const tlsPort = await freePort();
    const httpPort = await freePort();
    // As on 443 and 80: pebble validates TLS-ALPN-01 on one address and HTTP-01 on the other.
    const pebble = await startPebble({ httpPort, tlsPort });
    cleanup.fn(() => pebble.stop());
    const storage = await fs.mkdtemp(path.join(os.tmpdir(), 'burrow-acme-edge2-'));
    cleanup.fn(() => fs.rm(storage, { recursive: true, force: true }));
    const rootFile = path.join(storage, 'pebble-root.pem');
    await fs.writeFile(rootFile, await pebble.rootPem());
    const web = cleanup.add(await startHttpService('web2'));
    const file = tempFile(
      'acme-edge-two-addresses.yaml',
      `services:
- name: tunnel
  addr: ${LOCAL}:0
  handler:
    type: tunnel
    metadata:
      entrypoint: "${LOCAL}:${tlsPort}"
      entrypoints: [{addr: "${LOCAL}:${httpPort}"}]
      tunnel: "two.example.test:${TID.services}"
      entrypoint.acme: "${pebble.directoryUrl}"
      entrypoint.acmeCA: "${pebble.caFile}"
      entrypoint.acmeStorage: "${storage}"
      entrypoint.acmeChallenges: http-01
      entrypoint.redirectHttps: true
  listener:
    type: tcp
`,
    );
    const server = burrow(['-C', file, '-D'], { name: 'server two' });
    const port = await server.listeningPort({ service: 'tunnel' });
    assert.equal(await server.entrypointPort(0), tlsPort);
    assert.equal(await server.entrypointPort(1), httpPort);
    burrow(['-L', `rtcp://:0/${LOCAL}:${web.port}`, '-F', `tunnel://${LOCAL}:${port}?tunnel.id=${TID.services}`], { name: 'client two' });
    await server.waitForMsg(new RegExp(`tunnel=${TID.services}, connector=.* established`));

    // Before the certificate: plain HTTP on the second address is proxied, not redirected.
    const plain = await httpRequest(httpPort, { host: 'two.example.test', path: '/plain' });
    assert.equal(plain.status, 200);
    const r = await curl(['--cacert', rootFile, '--resolve', `two.example.test:${tlsPort}:${LOCAL}`, `https://two.example.test:${tlsPort}/secure`]);
    assert.equal(r.code, 0, `${r.stderr}\n${server.recentOutput()}\n${pebble.output().slice(-3000)}`);
    assert.equal(r.stdout, `web2 GET /secure host=two.example.test:${tlsPort}`);
    assert.match(pebble.output(), new RegExp(`validate w/ HTTP: http://two\\.example\\.test:${httpPort}/`));
    assert.equal(pebbleOrders(pebble), 1);
    assert.ok(!web.requests.some((q) => q.url.startsWith('/.well-known/')), 'the token was answered by the entry point');
    // With the certificate: plain HTTP on the second address gets the redirect.
    const redirect = await httpRequest(httpPort, { host: 'two.example.test', path: '/plain' });
    assert.equal(redirect.status, 308);
    assert.equal(redirect.headers.location, 'https://two.example.test/plain');
  });
});

describe('entry point ACME: configuration errors', () => {
  it('a CA file that does not load and an unknown challenge type are config errors naming the key (exit 2)', async () => {
    const junk = tempFile('acme-edge-junk.pem', 'not a certificate\n');
    const cases: Array<[string, RegExp]> = [
      ['entrypoint.acmeCA=/nonexistent/acme-ca.pem', /handler\.metadata\.entrypoint\.acmeCA: cannot read "\/nonexistent\/acme-ca\.pem"/],
      [`entrypoint.acmeCA=${junk}`, /handler\.metadata\.entrypoint\.acmeCA: ".*acme-edge-junk\.pem" holds no PEM certificate/],
      ['entrypoint.acmeChallenges=dns-01', /handler\.metadata\.entrypoint\.acmeChallenges: expected tls-alpn-01, http-01 or both/],
      ['entrypoint.acmeChallenges=http-01,http-01', /entrypoint\.acmeChallenges/],
    ];
    for (const [extra, re] of cases) {
      const p = burrow(['-L', `tunnel://${LOCAL}:0?entrypoint=${LOCAL}:0&entrypoint.acme=https://${LOCAL}:1/dir&${extra}`], { name: 'bad config' });
      const exit = await p.exited;
      assert.equal(exit.code, 2, `${extra}\n${p.output.join('\n')}`);
      assert.match(p.output.join('\n'), re);
    }
  });
});
