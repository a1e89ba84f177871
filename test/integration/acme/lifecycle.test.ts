/**
 * A certificate's life after the first order, against pebble: renewal in the background before
 * expiry (pebble issues 60-second certificates here), no renewal for a name whose tunnel is gone,
 * the order rate cap (one log line while it holds), and failed orders (logged once per name,
 * retried after a back-off, the name passing through meanwhile).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { acmeSetup as setup, handshake, use } from '../../helpers/acme';
import { memoryLogger, waitFor } from '../../helpers/net';

const HANG_GUARD_MS = 60_000;

test('a certificate renews in the background before it expires; a name without a live tunnel does not', async (t) => {
  const s = await setup(t, { validitySeconds: 60 });
  const log = memoryLogger('info');
  // Renew 57 s before the end of a 60 s lifetime: due about 3 s after issuance.
  const m = s.manager({ renewBeforeMs: 57_000, logger: log.logger });
  use(s.edge, m);
  s.live.add('renew.example.test');
  const root = await s.pebble.rootPem();
  const first = await handshake(s.edge.port, 'renew.example.test', root);
  assert.equal(first.error, undefined, `${first.error?.message}\n${s.pebble.output()}`);
  const info = m.certificateInfo('renew.example.test')!;
  assert.ok(info.notAfter - info.notBefore <= 61_000, 'pebble issued a short-lived certificate');

  await waitFor(() => m.stats.renewed >= 1, HANG_GUARD_MS, 'a renewal');
  const second = await handshake(s.edge.port, 'renew.example.test', root);
  assert.equal(second.error, undefined);
  assert.notEqual(second.cert?.serialNumber, first.cert?.serialNumber, 'the handshake gets the renewed certificate');
  assert.ok(m.certificateInfo('renew.example.test')!.notAfter > info.notAfter);

  // The tunnel goes away: the next renewal is skipped (with a log line); the certificate it has
  // is still served until it expires.
  s.live.delete('renew.example.test');
  await waitFor(() => log.lines.some((l) => l['msg'] === 'ACME: not renewing a certificate whose name has no live tunnel'), HANG_GUARD_MS, 'the skipped renewal');
  const renewed = m.stats.renewed;
  const third = await handshake(s.edge.port, 'renew.example.test', root);
  assert.equal(third.error, undefined);
  assert.equal(m.stats.renewed, renewed);
});

test('the order rate cap: names beyond it pass through, with one log line while it holds', async (t) => {
  const s = await setup(t);
  const log = memoryLogger('info');
  const m = s.manager({ ordersPerMinute: 2, logger: log.logger });
  use(s.edge, m);
  const root = await s.pebble.rootPem();
  const names = ['c1.example.test', 'c2.example.test', 'c3.example.test', 'c4.example.test'];
  for (const n of names) s.live.add(n);
  for (const n of names.slice(0, 2)) {
    const r = await handshake(s.edge.port, n, root);
    assert.equal(r.error, undefined, `${r.error?.message}\n${s.pebble.output()}`);
  }
  for (const n of [...names.slice(2), ...names.slice(2)]) {
    const r = await handshake(s.edge.port, n, root);
    assert.ok(r.error, `${n} is beyond the cap`);
  }
  assert.equal(m.stats.orders, 2);
  assert.equal(m.stats.capped, 4);
  assert.deepEqual(s.edge.passedThrough, [...names.slice(2), ...names.slice(2)]);
  const capLines = log.lines.filter((l) => String(l['msg']).startsWith('ACME order rate cap reached'));
  assert.equal(capLines.length, 1, 'one log line while the cap holds');
  // A name with its certificate is still served under the cap.
  assert.equal((await handshake(s.edge.port, 'c1.example.test', root)).error, undefined);
});

test('a failed order is logged once, passes the name through during the back-off, and is retried', async (t) => {
  const s = await setup(t);
  const root = await s.pebble.rootPem();
  const nobody = { contextFor: () => undefined, httpChallenge: () => undefined, alpnChallengeContext: () => undefined };
  const log = memoryLogger('debug');
  // Long back-off: the second handshake comes within it.
  const held = s.manager({ retryMinMs: 3_600_000, logger: log.logger });
  s.edge.provider = held;
  s.edge.answerer = nobody; // the CA's validation gets no answer: the order fails
  s.live.add('fail.example.test');
  const r1 = await handshake(s.edge.port, 'fail.example.test', root);
  assert.ok(r1.error);
  assert.equal(held.stats.orders, 1);
  assert.equal(held.stats.failures, 1);
  const r2 = await handshake(s.edge.port, 'fail.example.test', root);
  assert.ok(r2.error);
  assert.equal(held.stats.orders, 1, 'no second order during the back-off');
  assert.deepEqual(s.edge.passedThrough, ['fail.example.test', 'fail.example.test']);
  const warned = log.lines.filter((l) => l['level'] === 'warn' && l['name'] === 'fail.example.test');
  assert.equal(warned.length, 1);
  assert.match(String(warned[0]!['msg']), /ACME order failed/);

  // Short back-off: handshakes keep passing through while it runs; once the answers are right again,
  // a retry after it gets the certificate, and the failure was still logged only once.
  const log2 = memoryLogger('debug');
  const retried = s.manager({ retryMinMs: 300, logger: log2.logger, storageDir: `${s.storage}-2` });
  t.after(() => import('node:fs').then((fs) => fs.promises.rm(`${s.storage}-2`, { recursive: true, force: true })));
  s.edge.provider = retried;
  s.live.add('retry.example.test');
  assert.ok((await handshake(s.edge.port, 'retry.example.test', root)).error);
  assert.equal(retried.stats.failures, 1);
  s.edge.answerer = retried;
  let ok = false;
  await waitFor(
    async () => (ok = (await handshake(s.edge.port, 'retry.example.test', root)).error === undefined),
    HANG_GUARD_MS,
    'a retry that gets the certificate',
  );
  assert.ok(ok);
  assert.ok(retried.stats.orders >= 2);
  assert.equal(retried.stats.issued, 1);
  assert.equal(log2.lines.filter((l) => l['level'] === 'warn').length, 1);
});

test('an order longer than the handshake wait goes on in the background; the next handshake gets it', async (t) => {
  const s = await setup(t);
  const m = s.manager({ handshakeWaitMs: 0 }); // never wait: the first handshake passes through
  use(s.edge, m);
  s.live.add('bg.example.test');
  const root = await s.pebble.rootPem();
  assert.ok((await handshake(s.edge.port, 'bg.example.test', root)).error);
  assert.deepEqual(s.edge.passedThrough, ['bg.example.test']);
  await waitFor(() => m.stats.issued === 1, HANG_GUARD_MS, 'the background order');
  assert.equal((await handshake(s.edge.port, 'bg.example.test', root)).error, undefined);
  assert.equal(m.stats.orders, 1);
});

test('renewal timers do not keep a process alive', async (t) => {
  const s = await setup(t);
  const m = s.manager();
  use(s.edge, m);
  s.live.add('exit.example.test');
  assert.ok(await m.contextFor('exit.example.test'), s.pebble.output());
  // A process that loads the stored certificate (scheduling its renewal) and is never closed.
  const script = `
    const { AcmeManager } = require(${JSON.stringify(require.resolve('../../../src/tls/acme/manager'))});
    const m = new AcmeManager({ directoryUrl: ${JSON.stringify(s.pebble.directoryUrl)}, caFile: ${JSON.stringify(s.pebble.caFile)},
      storageDir: ${JSON.stringify(s.storage)}, eligible: () => true });
    m.start().then(() => { if (!m.contextFor('exit.example.test')) process.exit(3); console.log('loaded', m.certificateInfo('exit.example.test').renewAt > Date.now()); });
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const guard = setTimeout(() => child.kill('SIGKILL'), HANG_GUARD_MS);
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  clearTimeout(guard);
  assert.equal(signal, null, 'exited by itself');
  assert.equal(code, 0);
  assert.equal(out.trim(), 'loaded true');
});
