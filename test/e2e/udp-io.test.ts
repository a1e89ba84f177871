/**
 * Which UDP I/O a burrow process uses (native recvmmsg/sendmmsg or node:dgram), said in one log
 * line, and that both carry datagrams: a UDP port forward (listener → dialed socket) and a flood.
 * `npm test` runs this file as it is (native expected on Linux x64) and again, with the other
 * UDP test files, under BURROW_UDP_NATIVE=0 (node:dgram).
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BURROW_BIN, burrow, stopAll, type BurrowProcess } from '../helpers/cli';
import { listenUdpEcho, randomBytes } from '../helpers/net';
import { UdpClient } from './support';

after(() => stopAll());

const forced = process.env.BURROW_UDP_NATIVE === '0';
const isUdpIoLine = (l: { msg?: string }): boolean => typeof l.msg === 'string' && l.msg.startsWith('udp: ');

async function forward(echoPort: number, env: NodeJS.ProcessEnv = {}, name = 'udp-forward'): Promise<{ p: BurrowProcess; port: number }> {
  const p = burrow(['-L', `udp://127.0.0.1:0/127.0.0.1:${echoPort}?keepalive=true`], { name, env });
  const port = await p.listeningPort({ network: 'udp' });
  return { p, port };
}

async function roundTrips(port: number): Promise<void> {
  const c = await new UdpClient(port).bind();
  try {
    for (const n of [1, 100, 1400, 9000, 65_507]) {
      const d = randomBytes(n);
      const r = await c.ask(d, 3_000, 3);
      assert.ok(r, `${n}-byte datagram: no reply`);
      assert.ok(r.equals(d), `${n}-byte datagram came back altered`);
    }
  } finally {
    c.sock.close();
  }
}

describe('UDP I/O', () => {
  it(
    forced
      ? 'BURROW_UDP_NATIVE=0: node:dgram is in use and said so in one log line'
      : 'on Linux x64 the native batched I/O is in use (a failed addon build fails here) and said so in one log line',
    async () => {
      const echo = await listenUdpEcho();
      try {
        const { p, port } = await forward(echo.port);
        await roundTrips(port);
        await p.waitFor(isUdpIoLine, { what: 'the UDP I/O log line' });
        const lines = p.lines.filter(isUdpIoLine).map((l) => l.msg);
        assert.equal(lines.length, 1, lines.join('\n'));
        if (forced) assert.match(lines[0]!, /^udp: node:dgram I\/O, .*\(BURROW_UDP_NATIVE=0\)$/);
        else if (process.platform === 'linux' && process.arch === 'x64') {
          assert.equal(lines[0], 'udp: native batched I/O (recvmmsg/sendmmsg)');
        } else assert.match(lines[0]!, /^udp: /);
      } finally {
        await echo.close();
      }
    },
  );

  for (const [what, addon] of [
    ['absent', path.join(os.tmpdir(), 'burrow-no-such-addon', 'burrow_udp.node')],
    ['broken (a failed build)', path.join(os.tmpdir(), `burrow-broken-addon-${process.pid}.node`)],
  ] as const) {
    it(`with the addon ${what} burrow forwards UDP on node:dgram and says why in one log line`, async () => {
      if (what.startsWith('broken')) writeFileSync(addon, 'not a shared object\n');
      const echo = await listenUdpEcho();
      try {
        const { p, port } = await forward(echo.port, { BURROW_UDP_ADDON: addon, BURROW_UDP_NATIVE: '' }, `udp-forward-${what.split(' ')[0]}`);
        await roundTrips(port);
        await p.waitFor(isUdpIoLine, { what: 'the UDP I/O log line' });
        const lines = p.lines.filter(isUdpIoLine).map((l) => l.msg);
        assert.equal(lines.length, 1, lines.join('\n'));
        assert.match(lines[0]!, /^udp: node:dgram I\/O, one system call per datagram \(addon not loaded: .+\)$/);
        assert.ok(p.alive);
      } finally {
        await echo.close();
      }
    });
  }

  it('a UDP port already in use: one line naming EADDRINUSE and the address, exit code 1, no stack trace', async () => {
    const busy = dgram.createSocket('udp4');
    await new Promise<void>((r) => busy.bind(0, '127.0.0.1', () => r()));
    try {
      const port = busy.address().port;
      const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        execFile(process.execPath, [BURROW_BIN, '-L', `udp://127.0.0.1:${port}/127.0.0.1:9`], { timeout: 15_000 }, (err, _out, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stderr }),
        );
      });
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`EADDRINUSE 127\\.0\\.0\\.1:${port}`));
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    } finally {
      busy.close();
    }
  });

  it('a flood of 20,000 datagrams leaves the forward working and its process alive', async () => {
    const echo = await listenUdpEcho();
    try {
      const { p, port } = await forward(echo.port, {}, 'udp-flood');
      const c = await new UdpClient(port).bind();
      try {
        assert.ok(await c.ask('hello', 3_000, 3), 'no reply before the flood');
        const d = randomBytes(1400);
        // As fast as the socket takes them, in bursts of 500 (no callback per datagram).
        for (let sent = 0; sent < 20_000; sent += 500) {
          for (let i = 0; i < 500; i++) c.sock.send(d, port, '127.0.0.1');
          await new Promise((r) => setImmediate(r));
        }
        let back = 0;
        while (await c.recv(1_000)) back++;
        assert.ok(back > 0, 'nothing of the flood came back');
        const after = randomBytes(1000);
        const r = await c.ask(after, 3_000, 3);
        assert.ok(r?.equals(after), 'no intact reply after the flood');
        assert.ok(p.alive);
      } finally {
        c.sock.close();
      }
    } finally {
      await echo.close();
    }
  });
});
