import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import type { DestinationStream } from 'pino';
import { createLogger, kLateFields, lazyChild } from '../../../src/observe/logger';

function capture(level = 'info'): { logger: ReturnType<typeof createLogger>; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: createLogger({ level }, dest as unknown as DestinationStream), lines };
}

describe('lazyChild', () => {
  it('logs with its bindings and those of lazy children', () => {
    const { logger, lines } = capture();
    const a = lazyChild(logger, { sid: 's1', remote: 'r' });
    const b = a.child({ handler: 'tunnel' }).child({ tunnel: 't' });
    b.info({ extra: 1 }, 'hello');
    a.warn('direct');
    assert.equal(lines.length, 2);
    assert.deepEqual(
      { sid: lines[0]!.sid, remote: lines[0]!.remote, handler: lines[0]!.handler, tunnel: lines[0]!.tunnel, extra: lines[0]!.extra, msg: lines[0]!.msg },
      { sid: 's1', remote: 'r', handler: 'tunnel', tunnel: 't', extra: 1, msg: 'hello' },
    );
    assert.equal(lines[1]!.sid, 's1');
    assert.equal(lines[1]!.handler, undefined);
    assert.deepEqual(b.bindings(), { sid: 's1', remote: 'r', handler: 'tunnel', tunnel: 't' });
  });

  it('builds no pino child for children and calls at disabled levels', () => {
    const { logger, lines } = capture('info');
    let made = 0;
    const counting = new Proxy(logger, {
      get(t, p, r) {
        if (p === 'child') {
          return (...args: Parameters<typeof logger.child>) => {
            made++;
            return t.child(...args);
          };
        }
        return Reflect.get(t, p, r) as unknown;
      },
    });
    const a = lazyChild(counting, { sid: 's2' });
    const b = a.child({ handler: 'x' });
    b.debug('not shown');
    a.trace('not shown');
    assert.equal(b.isLevelEnabled('debug'), false);
    assert.equal(b.level, 'info');
    assert.equal(made, 0);
    b.error('shown');
    assert.equal(made, 1);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.handler, 'x');
    assert.equal(lines[0]!.sid, 's2');
  });

  it('a child with options is built at once', () => {
    const { logger, lines } = capture('info');
    const a = lazyChild(logger, { sid: 's3' });
    const dbg = a.child({ handler: 'y' }, { level: 'debug' });
    dbg.debug('now shown');
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.sid, 's3');
  });

  it('reads a getter binding only when a line is logged, and shows no internal keys', () => {
    const { logger, lines } = capture('info');
    let reads = 0;
    const a = lazyChild(logger, {
      sid: 's4',
      get local() {
        reads++;
        return '127.0.0.1:1';
      },
    });
    a.debug('not shown');
    a.child({ handler: 'z' }).trace('not shown');
    assert.equal(reads, 0);
    a.info('shown');
    assert.equal(reads, 1);
    assert.equal(lines[0]!.local, '127.0.0.1:1');
    assert.deepEqual(Object.keys(lines[0]!).sort(), ['level', 'local', 'msg', 'sid', 'time']);
    assert.deepEqual(a.bindings(), { sid: 's4', local: '127.0.0.1:1' });
    assert.deepEqual(Object.getOwnPropertySymbols(a.bindings()), []);
  });

  it('fills late fields once, when a line is first logged, in their place', () => {
    const { logger, lines } = capture('info');
    let calls = 0;
    const b: Record<string | symbol, unknown> = { sid: 's5', local: undefined, client: 'c' };
    b[kLateFields] = (x: Record<string | symbol, unknown>) => {
      calls++;
      x.local = '127.0.0.1:2';
    };
    const a = lazyChild(logger, b);
    a.debug('not shown');
    a.child({ handler: 'h' }).debug('not shown');
    assert.equal(calls, 0);
    a.warn('one');
    a.warn('two');
    assert.equal(calls, 1);
    assert.deepEqual(
      lines.map((l) => [l.sid, l.local, l.client, l.msg]),
      [
        ['s5', '127.0.0.1:2', 'c', 'one'],
        ['s5', '127.0.0.1:2', 'c', 'two'],
      ],
    );
    assert.deepEqual(Object.keys(a.bindings()), ['sid', 'local', 'client']);
  });
});

