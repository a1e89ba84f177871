/**
 * One deadline at a time on one timer: the kind that passes is reported once; a later
 * deadline moves it, an earlier one replaces it; disarm and stop cancel; Flush sticks.
 * (Short real timers; the assertions are about which deadline fires, never how fast.)
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Deadline, Deadlines } from '../../../../src/handler/tunnel/entrypoint/http/deadlines';

// The deadlines' timers do not hold the process open (unref): this does, while the tests run.
let hold: NodeJS.Timeout;
before(() => {
  hold = setInterval(() => {}, 1_000);
});
after(() => clearInterval(hold));

const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function recorder(): { d: Deadlines; fired: Deadline[]; next: () => Promise<Deadline> } {
  const fired: Deadline[] = [];
  let wake: ((k: Deadline) => void) | undefined;
  const d = new Deadlines((k) => {
    fired.push(k);
    wake?.(k);
  });
  return { d, fired, next: () => new Promise<Deadline>((r) => (wake = r)) };
}

describe('Deadlines', () => {
  test('the armed kind is reported when it passes, once, and is None after', async () => {
    const { d, fired, next } = recorder();
    d.arm(Deadline.Head, 5);
    assert.equal(d.kind, Deadline.Head);
    assert.equal(await next(), Deadline.Head);
    assert.equal(d.kind, Deadline.None);
    await tick(20);
    assert.deepEqual(fired, [Deadline.Head]);
  });

  test('re-arming replaces the kind: only the last one fires', async () => {
    const { d, fired, next } = recorder();
    d.arm(Deadline.Head, 5);
    d.arm(Deadline.Response, 15);
    assert.equal(await next(), Deadline.Response);
    assert.deepEqual(fired, [Deadline.Response]);
  });

  test('an earlier deadline after a later one still fires', async () => {
    const { d, next } = recorder();
    d.arm(Deadline.Idle, 60_000);
    d.arm(Deadline.Head, 5);
    assert.equal(await next(), Deadline.Head);
    d.stop();
  });

  test('disarm and stop: nothing fires', async () => {
    const { d, fired } = recorder();
    d.arm(Deadline.Head, 5);
    d.disarm();
    assert.equal(d.kind, Deadline.None);
    d.arm(Deadline.Idle, 5);
    d.stop();
    await tick(30);
    assert.deepEqual(fired, []);
  });

  test('Flush sticks: later arms and disarms do not change it', async () => {
    const { d, next } = recorder();
    d.arm(Deadline.Flush, 5);
    d.arm(Deadline.Idle, 60_000);
    d.disarm();
    assert.equal(d.kind, Deadline.Flush);
    assert.equal(await next(), Deadline.Flush);
  });
});
