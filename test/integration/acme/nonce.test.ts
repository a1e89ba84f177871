/**
 * pebble rejecting a quarter of the nonces on purpose (its `badNonce` errors, which a CA may send
 * at any time): orders still complete, because the client retries a request with the fresh
 * nonce the error carries.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as acme from 'acme-client';
import { acmeSetup as setup, handshake, use } from '../../helpers/acme';
import { waitFor } from '../../helpers/net';

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
    // The client retries a rejected request 5 times; six rejections in a row (about 1 in 4,000
    // requests here) fail the order, and the manager's own retry (200 ms back-off) takes over.
    await waitFor(async () => (await handshake(s.edge.port, n, root)).error === undefined, 120_000, `a certificate for ${n}\n${s.pebble.output()}`);
  }
  assert.equal(m.stats.issued, names.length);
  assert.ok(retries.length >= 1, 'pebble rejected at least one nonce and the request was retried');
});
