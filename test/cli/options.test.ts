/**
 * Option checking through the real CLI: out-of-range and malformed values stop start-up with
 * exit code 2 and a line naming the flag, the option and its range; misspelled keys and
 * malformed tunnel= rules are warnings and the service runs; a client with gost's default weight
 * 0 is logged with the weight it counts with (1) on both sides.
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { burrow, stopAll, BURROW_BIN } from '../helpers/cli';

after(stopAll);

const ID = '4d21094e-b74c-4916-86c1-d9fa36ea677b';

function run(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BURROW_BIN, ...args], { encoding: 'utf8', timeout: 15_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('option values', () => {
  for (const w of ['256', '1000', 'abc', '-5']) {
    test(`tunnel.weight=${w} is a config error (exit 2) naming the flag, the option and 0–255`, () => {
      const flag = `tunnel://127.0.0.1:1?tunnel.id=${ID}&tunnel.weight=${w}`;
      const r = run(['-L', 'rtcp://127.0.0.1:0/127.0.0.1:9', '-F', flag]);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(
        r.stderr.trim(),
        `burrow: -F ${JSON.stringify(flag)}: chains[0].hops[0].nodes[0].connector.metadata.tunnel.weight: expected an integer from 0 to 255, found '${w}'`,
      );
    });
  }

  test('a malformed duration in -L is a config error naming the option', () => {
    const r = run(['-L', 'tunnel://127.0.0.1:0?entrypoint.readTimeout=soon']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^burrow: -L "tunnel:\/\/127\.0\.0\.1:0\?entrypoint\.readTimeout=soon": services\[0\]\.handler\.metadata\.entrypoint\.readTimeout: expected a duration/);
  });

  test('-F tunnel+udp:// is refused by the check with the reason (exit 2)', () => {
    const r = run(['-L', 'rtcp://127.0.0.1:0/127.0.0.1:9', '-F', `tunnel+udp://127.0.0.1:1?tunnel.id=${ID}`]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /dialer "udp" is not supported by burrow \(supported dialers: tcp, tls, ws, wss, mtls, mws, mwss\); a tunnel client reaches the server over a stream transport/);
  });
});

describe('option keys', () => {
  test('entrypiont=:80 warns once with "did you mean entrypoint?" and the server still runs', async () => {
    const arg = `tunnel://127.0.0.1:0?entrypiont=127.0.0.1:0&tunnel=.example.com=${ID}`;
    const server = burrow(['-L', arg]);
    await server.listeningPort();
    const typo = server.filter((l) => l.level === 'warn' && String(l.msg).includes('unknown option'));
    assert.deepEqual(typo.map((l) => l.msg), [`-L ${JSON.stringify(arg)}: unknown option "entrypiont" (did you mean entrypoint?); ignored`]);
    const rule = server.filter((l) => l.level === 'warn' && String(l.msg).includes('tunnel rule'));
    assert.equal(rule.length, 1);
    assert.match(String(rule[0]!.msg), new RegExp(`tunnel rule "\\.example\\.com=${ID}" ignored: expected host:tunnel-id`));
    assert.equal(server.count((l) => /^entrypoint: /.test(String(l.msg))), 0, 'no entry point was configured');
  });
});

describe('effective values in logs', () => {
  test('a client with gost default weight 0 is logged with weight 1 on both sides; weight 7 as 7', async () => {
    const server = burrow(['-L', 'tunnel://127.0.0.1:0']);
    const port = await server.listeningPort();
    const c0 = burrow(['-L', 'rtcp://127.0.0.1:0/127.0.0.1:9', '-F', `tunnel://127.0.0.1:${port}?tunnel.id=${ID}`]);
    const created = await c0.tunnelCreated();
    assert.match(String(created.msg), /, weight=1$/);
    assert.equal(created.weight, 1);
    const est = await server.waitForMsg(/ established$/);
    assert.match(String(est.msg), /weight=1 established$/);
    assert.equal(est.weight, 1);

    const mark = server.mark();
    const c7 = burrow(['-L', 'rtcp://127.0.0.1:0/127.0.0.1:9', '-F', `tunnel://127.0.0.1:${port}?tunnel.id=${ID}&tunnel.weight=7`]);
    assert.match(String((await c7.tunnelCreated()).msg), /, weight=7$/);
    assert.match(String((await server.waitForMsg(/ established$/, { from: mark })).msg), /weight=7 established$/);
  });
});
