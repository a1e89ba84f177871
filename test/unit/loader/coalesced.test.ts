import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { coalesced } from '../../../src/loader/sources';

/** A run that finishes when the test says so. */
function gate(): { fn: () => Promise<void>; runs: number; release(err?: Error): void } {
  const waiting: Array<(err?: Error) => void> = [];
  const g = {
    runs: 0,
    fn: (): Promise<void> => {
      g.runs++;
      return new Promise<void>((resolve, reject) => waiting.push((err) => (err ? reject(err) : resolve())));
    },
    release(err?: Error): void {
      waiting.shift()?.(err);
    },
  };
  return g;
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('coalesced (reloads of a slow source)', () => {
  test('calls while one runs share a single run after it', async () => {
    const g = gate();
    const run = coalesced(g.fn);
    const first = run();
    const a = run();
    const b = run();
    const c = run();
    assert.equal(g.runs, 1);
    assert.equal(a, b);
    assert.equal(b, c);
    g.release();
    await first;
    await tick();
    assert.equal(g.runs, 2, 'one more run for all who asked meanwhile');
    g.release();
    await a;
    assert.equal(g.runs, 2);
    // Idle again: the next call runs at once.
    const d = run();
    assert.equal(g.runs, 3);
    g.release();
    await d;
  });

  test('a failed run rejects its callers but does not stop the next one', async () => {
    const g = gate();
    const run = coalesced(g.fn);
    const first = run();
    const next = run();
    g.release(new Error('source down'));
    await assert.rejects(first, /source down/);
    await tick();
    assert.equal(g.runs, 2);
    g.release();
    await next;
    const later = run();
    assert.equal(g.runs, 3);
    g.release();
    await later;
  });
});
