/**
 * Which names the entry point lets ACME order for (liveTunnelName): exact, non-private ingress
 * hosts and public names whose tunnel has a connector; never a wildcard rule's subdomains.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { liveTunnelName } from '../../../../src/handler/tunnel/entrypoint/acme';
import { PublicNames } from '../../../../src/handler/tunnel/public-names';
import { Ingress } from '../../../../src/ingress/ingress';
import { silentLogger } from '../../../../src/observe/logger';

const A = '4d21094e-b74c-4916-86c1-d9fa36ea677b';
const B = 'ac74d9dd-3125-442a-a7c1-f9e49e05faca';
const C = 'aede1f6a-762b-45da-b937-b6632356555a';

test('eligible: exact live ingress hosts and live public names; nothing else', async () => {
  const handlerIngress = new Ingress({
    name: 'h',
    rules: [
      { hostname: 'app.example.com', endpoint: A },
      { hostname: '.example.com', endpoint: A },
      { hostname: '*.svc.example.com', endpoint: A },
      { hostname: 'down.example.com', endpoint: B },
      { hostname: 'private.example.com', endpoint: `$${A}` },
      { hostname: 'broken.example.com', endpoint: 'not-a-uuid' },
    ],
    logger: silentLogger,
  });
  // A second entry point's own ingress.
  const epIngress = new Ingress({ name: 'ep', rules: [{ hostname: 'other.example.org', endpoint: C }], logger: silentLogger });
  const publicNames = new PublicNames({ domain: 'tun.example.net', ttlMs: 60_000, customTtlMs: 60_000, allowCustom: true });
  const held = await publicNames.holdEndpoint('134c714b65d54a4f', C);
  const live = new Set([A, C]);
  const eligible = liveTunnelName({ pool: { hasTunnel: (id) => live.has(id) }, publicNames }, () => [handlerIngress, undefined, epIngress]);

  assert.equal(eligible('app.example.com'), true);
  assert.equal(eligible('APP.Example.COM'), true);
  assert.equal(eligible('other.example.org'), true, 'a rule of a second entry point\'s ingress');
  assert.equal(eligible(`${held.name}.tun.example.net`), true, 'a live public name');
  for (const name of [
    'www.example.com', // only the `.example.com` rule covers it
    'example.com', // idem
    'x.svc.example.com', // a wildcard rule
    'down.example.com', // no connector
    'private.example.com', // a private rule
    'broken.example.com', // a rule to no tunnel
    'random.example.org',
    'nope.tun.example.net',
    '',
  ]) {
    assert.equal(eligible(name), false, name);
  }
  // The connector goes: its names are no longer eligible.
  live.delete(A);
  assert.equal(eligible('app.example.com'), false);
  live.delete(C);
  assert.equal(eligible(`${held.name}.tun.example.net`), false);
  held.release();
  handlerIngress.close();
  epIngress.close();
});
