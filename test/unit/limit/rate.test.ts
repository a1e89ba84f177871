import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OncePerKey, RateLimiter } from '../../../src/limit/rate';

/** A fresh address of one IPv6 /64 per call, as a flood from one network brings them. */
function freshV6(i: number): string {
  return `2001:db8::${(i >>> 16).toString(16)}:${(i & 0xffff).toString(16)}`;
}

test('a flood of fresh addresses does not reset the limit of an address that keeps coming', () => {
  let now = 0;
  const r = new RateLimiter({ ratePerSec: 1, burst: 2, maxKeys: 100, now: () => now });
  assert.deepEqual([r.take('198.51.100.7'), r.take('198.51.100.7'), r.take('198.51.100.7')], [true, true, false]);
  for (let i = 0; i < 10_000; i++) {
    assert.equal(r.take(freshV6(i)), true, 'a fresh address has its burst');
    if (i % 10 === 0) assert.equal(r.take('198.51.100.7'), false, `the limited address stays limited after ${i} fresh ones`);
    assert.ok(r.size <= 100, `the map stays within maxKeys (${r.size})`);
  }
  now += 1000; // one token refilled: the limit is still the same bucket
  assert.deepEqual([r.take('198.51.100.7'), r.take('198.51.100.7')], [true, false]);
});

test('at the cap the least recently used key goes first, idle keys before it', () => {
  let now = 0;
  const r = new RateLimiter({ ratePerSec: 1, burst: 1, maxKeys: 3, idleMs: 60_000, now: () => now });
  for (const k of ['a', 'b', 'c']) r.take(k); // each bucket now empty
  now += 10;
  r.take('a'); // a used last: b is the oldest
  r.take('d'); // evicts b
  assert.equal(r.size, 3);
  assert.equal(r.take('a'), false, 'a kept its empty bucket');
  assert.equal(r.take('c'), false, 'c kept its empty bucket');
  assert.equal(r.take('b'), true, 'b was forgotten (fresh bucket); that evicted d, the oldest now');
  assert.equal(r.take('d'), true, 'd was forgotten');
  now += 120_000; // everything idle: a new key drops all idle ones
  r.take('e');
  assert.equal(r.size, 1);
});

test('once per key: a flood of new keys does not forget a recent one', () => {
  const o = new OncePerKey(60_000, 50);
  assert.equal(o.take('10.0.0.1', 0), true);
  for (let i = 0; i < 1000; i++) {
    o.take(freshV6(i), 1);
    if (i % 10 === 0) o.take('10.0.0.1', 1); // refused: it was warned about; its entry stays
  }
  // 10.0.0.1 is the oldest entry, so it was evicted once 49 newer keys came; a key warned
  // about inside the last 49 new ones is still known.
  assert.equal(o.take(freshV6(999), 2), false);
  assert.equal(o.take(freshV6(960), 2), false);
});
