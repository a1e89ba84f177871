import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Later } from '../../../src/core/handler';

type Call = [unknown, unknown, boolean];

function subscribe(l: Later): Call[] {
  const calls: Call[] = [];
  l.onSettled((r, err, failed) => calls.push([r, err, failed]));
  return calls;
}

describe('Later', () => {
  it('calls its subscriber once with the result, whether it settles before or after', () => {
    const before = new Later();
    before.resolve({ inputBytes: 1, outputBytes: 2 });
    const a = subscribe(before);
    assert.deepEqual(a, [[{ inputBytes: 1, outputBytes: 2 }, undefined, false]]);

    const after = new Later();
    const b = subscribe(after);
    assert.deepEqual(b, []);
    after.resolve({ inputBytes: 3, outputBytes: 4 });
    after.resolve({ inputBytes: 5, outputBytes: 6 });
    assert.deepEqual(b, [[{ inputBytes: 3, outputBytes: 4 }, undefined, false]]);
  });

  it('passes a failure on as failed, and the first settlement wins', () => {
    const l = new Later();
    const calls = subscribe(l);
    const err = new Error('boom');
    l.reject(err);
    l.resolve({ inputBytes: 0, outputBytes: 0 });
    assert.deepEqual(calls, [[undefined, err, true]]);

    const r = new Later();
    r.resolve(undefined);
    r.reject(new Error('late'));
    assert.deepEqual(subscribe(r), [[undefined, undefined, false]]);
  });
});
