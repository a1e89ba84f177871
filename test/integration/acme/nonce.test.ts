/**
 * pebble rejecting a quarter of the nonces on purpose (its `badNonce` errors, which a CA may send
 * at any time): orders still complete, because the client retries a request with the fresh
 * nonce the error carries.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as acme from 'acme-client';
import { acmeSetup as setup, handshake, use } from '../../helpers/acme';

test('badNonce errors from the CA are retried: every order completes', async (t) => {
  const retries: string[] = [];
  acme.setLogger((msg) => {
    if (msg.startsWith('Caught invalid nonce error')) retries.push(msg);
  });
  t.after(() => acme.setLogger(() => undefined));
  const s = await setup(t, { nonceRejectPercent: 25 });
  const m = s.manager();
  use(s.edge, m);
  const root = await s.pebble.rootPem();
  const names = ['n1.example.test', 'n2.example.test', 'n3.example.test'];
  for (const n of names) {
    s.live.add(n);
    const r = await handshake(s.edge.port, n, root);
    assert.equal(r.error, undefined, `${n}: ${r.error?.message}\n${s.pebble.output()}`);
  }
  assert.equal(m.stats.issued, names.length);
  assert.equal(m.stats.failures, 0);
  assert.ok(retries.length >= 1, 'pebble rejected at least one nonce and the request was retried');
});
