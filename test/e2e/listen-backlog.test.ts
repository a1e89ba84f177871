/**
 * The listen backlog (`backlog`, `entrypoint.backlog`) reaches listen(2) on every TCP-based
 * listener, the entry point included, read back from the kernel: for a listening socket `ss`
 * shows the backlog as its Send-Q. The default is 4096 capped by net.core.somaxconn (a burst of
 * connects beyond a small backlog stays established in the kernel, never accepted); bad values
 * stop the CLI with a config error.
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { burrow, stopAll } from '../helpers/cli';

/** The backlog of the socket listening on 127.0.0.1:`port`, as the kernel reports it. */
function backlogOf(port: number): number {
  const out = execFileSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' });
  const row = out.split('\n').find((l) => l.includes(`127.0.0.1:${port}`));
  assert.ok(row, `no listening socket on port ${port}: ${out}`);
  // State Recv-Q Send-Q Local Peer
  return Number(row.trim().split(/\s+/)[2]);
}

const SOMAXCONN = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim());

describe('listen backlog', () => {
  after(stopAll);

  test('default: 4096 capped by somaxconn, on the tunnel port and the entry point', async () => {
    const p = burrow(['-L', 'tunnel+ws://127.0.0.1:0?entrypoint=127.0.0.1:0']);
    const port = await p.listeningPort();
    const ep = await p.entrypointPort();
    const want = Math.min(4096, SOMAXCONN);
    assert.equal(backlogOf(port), want);
    assert.equal(backlogOf(ep), want);
  });

  test('backlog reaches tcp, tls and ws listeners and the entry point; entrypoint.backlog sets the entry point alone', async () => {
    const tcp = burrow(['-L', 'tcp://127.0.0.1:0/127.0.0.1:9?backlog=33']);
    const tls = burrow(['-L', 'tunnel+tls://127.0.0.1:0?backlog=34&entrypoint=127.0.0.1:0']);
    const ws = burrow(['-L', 'tunnel+ws://127.0.0.1:0?backlog=35&entrypoint=127.0.0.1:0&entrypoint.backlog=36']);
    assert.equal(backlogOf(await tcp.listeningPort()), 33);
    assert.equal(backlogOf(await tls.listeningPort()), 34);
    assert.equal(backlogOf(await tls.entrypointPort()), 34);
    assert.equal(backlogOf(await ws.listeningPort()), 35);
    assert.equal(backlogOf(await ws.entrypointPort()), 36);
  });

  test('a backlog above somaxconn is capped by it', async () => {
    const p = burrow(['-L', `tunnel://127.0.0.1:0?backlog=${SOMAXCONN + 1000}`]);
    assert.equal(backlogOf(await p.listeningPort()), SOMAXCONN);
  });

  for (const [query, path] of [
    ['backlog=abc', 'listener.metadata.backlog'],
    ['backlog=0', 'listener.metadata.backlog'],
    ['backlog=-5', 'listener.metadata.backlog'],
    ['entrypoint=127.0.0.1:0&entrypoint.backlog=1.5', 'handler.metadata.entrypoint.backlog'],
  ] as const) {
    test(`${query} is a config error (exit 2) naming the flag and the path`, async () => {
      const flag = `tunnel://127.0.0.1:0?${query}`;
      const p = burrow(['-L', flag]);
      const outcome = await Promise.race([p.exited, p.listeningPort().then(() => 'listening' as const)]);
      assert.notEqual(outcome, 'listening', 'started with a bad backlog');
      assert.equal((await p.exited).code, 2, p.recentOutput());
      const text = p.output.join('\n');
      assert.ok(text.includes(flag), text);
      assert.ok(text.includes(path), text);
      assert.match(text, /expected a positive integer/);
    });
  }
});
