/**
 * Certificates on the first handshake from a real ACME CA (pebble): issuance through a TLS edge
 * that asks the manager by SNI, curl trusting pebble's root, nothing ordered for names the edge
 * does not call eligible (random SNI), a restart with stored certificates that orders nothing,
 * and HTTP-01 tokens that only the right path and host get.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { acmeSetup as setup, curl, handshake, use } from '../../helpers/acme';
import { memoryLogger } from '../../helpers/net';
import { LOCAL } from '../../helpers/local';

test('first handshake orders a certificate that curl trusts with pebble\'s root; random SNI orders nothing', async (t) => {
  const s = await setup(t);
  const log = memoryLogger('info');
  const m = s.manager({ challenges: ['tls-alpn-01', 'http-01'], logger: log.logger });
  use(s.edge, m);
  await m.start();
  s.live.add('app.example.test');
  const root = await s.pebble.rootPem();

  // Three concurrent first handshakes for one name: one order.
  const results = await Promise.all([1, 2, 3].map(() => handshake(s.edge.port, 'app.example.test', root)));
  for (const r of results) {
    assert.equal(r.error, undefined, `${r.error?.message}\n${s.pebble.output()}`);
    assert.equal(r.cert?.subjectaltname, 'DNS:app.example.test');
  }
  assert.equal(m.stats.orders, 1);
  assert.equal(m.stats.issued, 1);
  // pebble validates from several connections; each one a TLS-ALPN-01 handshake on the edge port.
  assert.ok(s.edge.alpnAnswers.length >= 1, 'validated by TLS-ALPN-01 on the edge port');
  assert.deepEqual(new Set(s.edge.alpnAnswers), new Set(['app.example.test']));
  assert.deepEqual(s.edge.challengeAnswers, [], 'no HTTP-01 when TLS-ALPN-01 is preferred');

  const rootFile = path.join(s.storage, 'pebble-root.pem');
  await fs.writeFile(rootFile, root);
  const ok = await curl(['--cacert', rootFile, '--resolve', `app.example.test:${s.edge.port}:${LOCAL}`, `https://app.example.test:${s.edge.port}/`]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, 'hello app.example.test:' + s.edge.port + '\n');
  // Without pebble's root curl refuses it (the trust comes from the CA, not from anything else).
  const untrusted = await curl(['--resolve', `app.example.test:${s.edge.port}:${LOCAL}`, `https://app.example.test:${s.edge.port}/`]);
  assert.equal(untrusted.code, 60, untrusted.stderr);

  // Names that are not live tunnels: random, an IP, garbage, one label, too long, a wildcard.
  const random = Array.from({ length: 20 }, () => `${randomBytes(6).toString('hex')}.example.test`);
  const strangers = [...random, 'random-1.example.test', 'nope.example.test', '127.0.0.1', 'a', `${'x'.repeat(64)}.example.test`, '*.example.test', 'APP.example.test.evil'];
  for (const name of strangers) {
    const r = await handshake(s.edge.port, name, root);
    assert.ok(r.error, `${name} must not get a certificate`);
  }
  assert.equal(m.stats.orders, 1, 'no order for names that are not eligible');
  assert.deepEqual(s.edge.passedThrough, strangers, 'each passed through');
  // Upper case is the same name: the stored certificate, no new order.
  const upper = await handshake(s.edge.port, 'APP.example.test', root);
  assert.equal(upper.error, undefined);
  assert.equal(m.stats.orders, 1);
  assert.ok(log.lines.some((l) => l['msg'] === 'ACME certificate issued' && l['name'] === 'app.example.test'));

  // Stored as files: the key 0600, under the CA's own directory.
  const certDir = path.join(m.storageDir, 'certs');
  assert.ok(m.storageDir.startsWith(s.storage));
  const keyStat = await fs.stat(path.join(certDir, 'app.example.test.key'));
  assert.equal(keyStat.mode & 0o777, 0o600);
  assert.equal((await fs.stat(path.join(m.storageDir, 'account.key'))).mode & 0o777, 0o600);

  // A restart (a new manager on the same storage) serves the stored certificate without ordering.
  await m.close();
  const again = s.manager();
  use(s.edge, again);
  await again.start();
  const r2 = await handshake(s.edge.port, 'app.example.test', root);
  assert.equal(r2.error, undefined);
  assert.equal(r2.cert?.serialNumber, results[0]!.cert?.serialNumber, 'the same certificate');
  assert.equal(again.stats.orders, 0);
});

test('HTTP-01 on the plain side of the same port; wrong tokens, paths and hosts get 404', async (t) => {
  const s = await setup(t);
  const m = s.manager({ challenges: ['http-01'] });
  use(s.edge, m);
  s.live.add('web.example.test');
  const root = await s.pebble.rootPem();
  const r = await handshake(s.edge.port, 'web.example.test', root);
  assert.equal(r.error, undefined, `${r.error?.message}\n${s.pebble.output()}`);
  const answered = s.edge.challengeAnswers.filter((a) => a.status === 200);
  assert.ok(answered.length >= 1, 'pebble fetched the token over plain HTTP');
  assert.deepEqual(s.edge.alpnAnswers, []);
  const token = answered[0]!.path;

  // The token is withdrawn after validation; strangers never get one.
  const get = (p: string, host: string): Promise<number> =>
    new Promise((resolve, reject) => {
      http.get({ host: LOCAL, port: s.edge.port, path: p, headers: { host } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', reject);
    });
  assert.equal(await get(token, 'web.example.test'), 404);
  for (const p of ['/.well-known/acme-challenge/', '/.well-known/acme-challenge/../../etc/passwd', '/.well-known/acme-challenge/abc', '/.well-known/acme-challenge/abc/def']) {
    assert.equal(await get(p, 'web.example.test'), 404, p);
  }
  assert.equal(m.httpChallenge('web.example.test', '/.well-known/acme-challenge/%00'), undefined);
});

test('a damaged stored certificate is logged and replaced by a new order', async (t) => {
  const s = await setup(t);
  const m = s.manager();
  use(s.edge, m);
  s.live.add('damaged.example.test');
  assert.ok(await m.contextFor('damaged.example.test'), s.pebble.output());
  await m.close();
  await fs.writeFile(path.join(m.storageDir, 'certs', 'damaged.example.test.crt'), '-----BEGIN CERTIFICATE-----\ngarbage\n');
  const log = memoryLogger('info');
  const again = s.manager({ logger: log.logger });
  use(s.edge, again);
  await again.start();
  assert.ok(log.lines.some((l) => l['msg'] === 'ACME: stored certificate not loaded' && l['name'] === 'damaged.example.test'));
  const root = await s.pebble.rootPem();
  const r = await handshake(s.edge.port, 'damaged.example.test', root);
  assert.equal(r.error, undefined, r.error?.message);
  assert.equal(again.stats.orders, 1);
  const stored = await fs.readFile(path.join(again.storageDir, 'certs', 'damaged.example.test.crt'), 'utf8');
  assert.doesNotMatch(stored, /garbage/);
});
