/**
 * Lockout (src/auth/lockout.ts) on a clock the test moves: a stale password never locks a user
 * out, distinct guesses do (with a back-off that grows), rotating user names is bounded per
 * address, users known at the address are exempt from the address's back-off, and records are
 * forgotten.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Lockout } from '../../../src/auth/lockout';

function clocked(): { lock: Lockout; advance(ms: number): void } {
  let now = 1_000_000;
  return { lock: new Lockout({ now: () => now }), advance: (ms) => (now += ms) };
}

describe('Lockout', () => {
  it('a repeated wrong password is refused each time but never locks the user out', () => {
    const { lock } = clocked();
    for (let i = 0; i < 1000; i++) {
      assert.equal(lock.allowed('10.0.0.1', 'alice'), true);
      lock.failed('10.0.0.1', 'alice', 'stale');
    }
    assert.equal(lock.allowed('10.0.0.1', 'alice'), true);
  });

  it('after 5 distinct guesses a 6th starts a back-off that doubles with each guess', () => {
    const { lock, advance } = clocked();
    for (let i = 0; i < 5; i++) lock.failed('10.0.0.1', 'alice', `g${i}`);
    assert.equal(lock.allowed('10.0.0.1', 'alice'), true, 'five guesses are free');
    lock.failed('10.0.0.1', 'alice', 'g5');
    assert.equal(lock.allowed('10.0.0.1', 'alice'), false);
    assert.equal(lock.allowed('10.0.0.2', 'alice'), true, 'another address');
    assert.equal(lock.allowed('10.0.0.1', 'bob'), true, 'another user at the address');
    advance(29_999);
    assert.equal(lock.allowed('10.0.0.1', 'alice'), false);
    advance(1);
    assert.equal(lock.allowed('10.0.0.1', 'alice'), true);
    lock.failed('10.0.0.1', 'alice', 'g6');
    advance(59_999);
    assert.equal(lock.allowed('10.0.0.1', 'alice'), false, 'the second back-off is twice the first');
    advance(1);
    assert.equal(lock.allowed('10.0.0.1', 'alice'), true);
  });

  it('a success does not give a guesser sharing the address a fresh allowance', () => {
    const { lock } = clocked();
    for (let i = 0; i < 3; i++) lock.failed('10.0.0.1', 'alice', `g${i}`);
    lock.succeeded('10.0.0.1', 'alice');
    for (let i = 3; i < 6; i++) lock.failed('10.0.0.1', 'alice', `g${i}`);
    assert.equal(lock.allowed('10.0.0.1', 'alice'), false);
  });

  it('rotating user names: at most 20 guesses per address before a back-off; users known there are exempt', () => {
    const { lock, advance } = clocked();
    lock.succeeded('10.0.0.1', 'alice');
    for (let i = 0; i < 20; i++) {
      assert.equal(lock.allowed('10.0.0.1', `u${i}`), true, `guess ${i + 1}`);
      lock.failed('10.0.0.1', `u${i}`, 'pw');
    }
    lock.failed('10.0.0.1', 'u20', 'pw');
    assert.equal(lock.allowed('10.0.0.1', 'u21'), false);
    assert.equal(lock.allowed('10.0.0.1', 'bob'), false, 'a user not known at the address');
    assert.equal(lock.allowed('10.0.0.1', 'alice'), true, 'a user known at the address');
    assert.equal(lock.allowed('10.0.0.9', 'bob'), true, 'another address');
    advance(30_000);
    assert.equal(lock.allowed('10.0.0.1', 'bob'), true);
  });

  it('records are forgotten 15 minutes after the last guess', () => {
    const { lock, advance } = clocked();
    for (let i = 0; i < 6; i++) lock.failed('10.0.0.1', 'alice', `g${i}`);
    advance(15 * 60_000 + 1);
    assert.equal(lock.allowed('10.0.0.1', 'alice'), true);
    lock.failed('10.0.0.1', 'alice', 'g-new');
    assert.equal(lock.allowed('10.0.0.1', 'alice'), true, 'a forgotten record starts over');
  });

  it('the back-off never exceeds 15 minutes', () => {
    const { lock, advance } = clocked();
    for (let i = 0; i < 60; i++) {
      lock.failed('10.0.0.1', 'alice', `g${i}`);
      advance(15 * 60_000);
    }
    assert.equal(lock.allowed('10.0.0.1', 'alice'), true);
  });
});
