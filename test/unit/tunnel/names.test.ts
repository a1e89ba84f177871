import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { PublicNames, type NameHold } from '../../../src/handler/tunnel/public-names';
import { Forwarder, hostMatches } from '../../../src/forward/selector';
import { RateLimiter, OncePerKey } from '../../../src/limit/rate';
import { backoffDelayMs } from '../../../src/listener/reverse';

describe('public names', () => {
  let now = 1_000_000;
  const names = new PublicNames({ domain: 'example.net', ttlMs: 1000, customTtlMs: 500, allowCustom: true, now: () => now });
  after(() => names.close());
  test('an endpoint label is its own tunnel\'s: held by each connector, never asked for by another', async () => {
    const a = await names.holdEndpoint('134c714b65d54a4f', 't1');
    const b = await names.holdEndpoint('134c714b65d54a4f', 't1');
    assert.equal(names.lookup('134c714b65d54a4f.example.net'), 't1');
    assert.equal(names.lookup('134C714B65D54A4F.Example.Net:443'), 't1');
    assert.equal(names.lookup('x.134c714b65d54a4f.example.net'), undefined);
    assert.equal(await names.holdCustom('134c714b65d54a4f', 't2'), 'reserved');
    assert.equal(await names.holdCustom('F1BBBB4AA9D9868A', 't2'), 'reserved', 'any 16-hex label, in any case');
    a.release();
    b.release();
  });
  test('custom names: validated, first come first served', async () => {
    const h = await names.holdCustom('hello', 't1');
    assert.equal(typeof h, 'object');
    assert.equal(await names.holdCustom('hello', 't2'), 'taken');
    assert.equal(await names.holdCustom('bad_name!', 't2'), 'invalid');
    (h as NameHold).release();
  });
  test('a held name never expires; the TTL counts from its last holder leaving', async () => {
    const h1 = (await names.holdCustom('kept', 't1')) as NameHold;
    const h2 = (await names.holdCustom('kept', 't1')) as NameHold;
    now += 10_000;
    assert.equal(names.lookup('kept.example.net'), 't1', 'held long past its TTL');
    assert.equal(await names.holdCustom('kept', 't2'), 'taken');
    h1.release();
    h1.release();
    now += 10_000;
    assert.equal(names.lookup('kept.example.net'), 't1', 'one holder left');
    h2.release();
    now += 400;
    assert.equal(names.lookup('kept.example.net'), 't1', 'within the TTL after the last holder left');
    assert.equal(await names.holdCustom('kept', 't2'), 'taken');
    now += 200;
    assert.equal(names.lookup('kept.example.net'), undefined, 'expired');
    assert.equal(typeof (await names.holdCustom('kept', 't2')), 'object', 'freed');
  });
  test('custom names can be turned off', async () => {
    const off = new PublicNames({ domain: 'example.net', ttlMs: 1000, customTtlMs: 500, allowCustom: false });
    assert.equal(await off.holdCustom('hello', 't1'), 'disabled');
    off.close();
  });
});

describe('forwarder selection (behavior.md §5.2)', () => {
  const f = new Forwarder([
    { name: 'example-com', addr: '192.168.1.1:80', filter: { host: 'example.com' } },
    { name: 'sub', addr: '192.168.1.2:80', filter: { host: 'sub.example.com' } },
    { name: 'fallback', addr: '192.168.2.1:80' },
    { name: 'spare', addr: '192.168.3.1:80', metadata: { backup: true } },
  ]);
  test('the documented client routing example', () => {
    assert.equal(f.select('example.com:80')!.name, 'example-com');
    assert.equal(f.select('sub.example.com')!.name, 'sub');
    assert.equal(f.select('abc.example.com')!.name, 'fallback');
  });
  test('host filters: wildcard forms as gost checkHost', () => {
    assert.ok(hostMatches('.example.com', 'a.example.com'));
    assert.ok(hostMatches('.example.com', 'example.com'));
    assert.ok(!hostMatches('example.com', 'a.example.com'));
    assert.ok(hostMatches('example.com', 'EXAMPLE.com:443'));
  });
  test('backup nodes only when nothing else fits; failed nodes skipped until failTimeout', () => {
    const g = new Forwarder(
      [
        { name: 'a', addr: '1.1.1.1:1' },
        { name: 'b', addr: '1.1.1.2:1' },
        { name: 'z', addr: '1.1.1.3:1', metadata: { backup: 'true' } },
      ],
      { maxFails: 1, failTimeout: '10s' },
    );
    const a = g.nodes[0]!;
    g.markFailed(a);
    for (let i = 0; i < 4; i++) assert.equal(g.select()!.name, 'b');
    const only = new Forwarder([{ name: 'z', addr: '1.1.1.3:1', metadata: { backup: true } }]);
    assert.equal(only.select('anything')!.name, 'z');
  });
});

describe('rate limiter', () => {
  test('burst then refill', () => {
    let now = 0;
    const r = new RateLimiter({ ratePerSec: 2, burst: 3, now: () => now });
    assert.deepEqual([r.take('ip'), r.take('ip'), r.take('ip'), r.take('ip')], [true, true, true, false]);
    assert.equal(r.take('other'), true);
    now += 500;
    assert.equal(r.take('ip'), true);
    assert.equal(r.take('ip'), false);
  });
});

describe('once per key', () => {
  test('one warning per peer per period', () => {
    const o = new OncePerKey(60_000);
    assert.equal(o.take('10.0.0.1', 0), true);
    assert.equal(o.take('10.0.0.1', 59_999), false);
    assert.equal(o.take('10.0.0.2', 1), true);
    assert.equal(o.take('10.0.0.1', 60_000), true);
  });
});

describe('reconnect backoff', () => {
  test('doubles from 1 s, capped, with ±25% jitter, never above 5 s', () => {
    assert.equal(backoffDelayMs(0, () => 0.5), 1000);
    assert.equal(backoffDelayMs(1, () => 0.5), 2000);
    assert.equal(backoffDelayMs(10, () => 0.5), 4000);
    assert.equal(backoffDelayMs(10, () => 0.999999), 5000);
    assert.equal(backoffDelayMs(0, () => 0), 750);
  });
});
