/**
 * The iperf example of the docs (config.md S3/S4, C3, V7/V8, §6.14–6.16): one tunnel ID
 * carrying TCP and UDP to a service on one port, in ingress mode and in direct mode, from the
 * command line and from YAML. A TCP echo and a UDP echo on the same port stand in for
 * `iperf3 -s`; the workloads mimic `iperf3 -c` (parallel TCP streams, a UDP run that needs
 * `keepalive=true` to stay in one session).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { burrow, fixture, type BurrowProcess } from '../helpers/cli';
import { connect, randomBytes, sha256 } from '../helpers/net';
import { Cleanup, LOCAL, TID, UdpClient } from './support';

const cleanup = new Cleanup();
after(() => cleanup.run());

/** A TCP echo and a UDP echo bound to the same port number, like iperf3's 5201. */
async function startIperfStandIn(): Promise<{ port: number }> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const sockets = new Set<net.Socket>();
    const tcp = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
      s.pipe(s);
    });
    await new Promise<void>((r) => tcp.listen(0, LOCAL, () => r()));
    const port = (tcp.address() as net.AddressInfo).port;
    const udp = dgram.createSocket('udp4');
    udp.on('message', (m, ri) => udp.send(m, ri.port, ri.address));
    const ok = await new Promise<boolean>((r) => {
      udp.once('error', () => r(false));
      udp.bind(port, LOCAL, () => r(true));
    });
    const closeTcp = (): Promise<void> =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        tcp.close(() => r());
      });
    if (!ok) {
      await closeTcp();
      continue;
    }
    cleanup.fn(closeTcp);
    cleanup.fn(() => new Promise<void>((r) => udp.close(() => r())));
    return { port };
  }
  throw new Error('no port free for both TCP and UDP');
}

let iperfPort: number;
before(async () => {
  iperfPort = (await startIperfStandIn()).port;
});

interface Rig {
  server: BurrowProcess;
  tcpPort: number;
  udpPort: number;
}

type Mode = 'ingress' | 'direct';
type Form = 'cli' | 'yaml';

async function rig(mode: Mode, form: Form): Promise<Rig> {
  const tag = `${mode}-${form}`;
  let server: BurrowProcess;
  if (form === 'cli') {
    // S4 (ingress) / S3 (direct)
    const args = mode === 'ingress' ? `tunnel://127.0.0.1:0?tunnel=iperf.local:${TID.iperf}` : 'tunnel://127.0.0.1:0?tunnel.direct=true';
    server = burrow(['-L', args, '-D'], { name: `server-${tag}` });
  } else {
    const cfg = fixture('6.14-iperf-server.yaml', [
      ['addr: :8443', 'addr: 127.0.0.1:0'],
      ...(mode === 'direct' ? ([['# tunnel.direct: true', 'tunnel.direct: true']] as const) : []),
    ]);
    server = burrow(['-C', cfg, '-D'], { name: `server-${tag}` });
  }
  const sp = await server.listeningPort();

  // C3 / §6.15
  const client =
    form === 'cli'
      ? burrow(['-L', `rtcp://:0/:${iperfPort}`, '-L', `rudp://:0/:${iperfPort}`, '-F', `tunnel://127.0.0.1:${sp}?tunnel.id=${TID.iperf}`], {
          name: `client-${tag}`,
        })
      : burrow(
          [
            '-C',
            fixture('6.15-iperf-client.yaml', [
              ['addr: :8443', `addr: 127.0.0.1:${sp}`],
              ['addr: :5201', `addr: :${iperfPort}`],
            ]),
          ],
          { name: `client-${tag}` },
        );
  await Promise.all([client.tunnelCreated({ network: 'tcp' }), client.tunnelCreated({ network: 'udp' })]);
  await server.waitFor(() => server.count((l) => /established$/.test(String(l.msg))) >= 2, { what: 'tcp and udp connectors' });

  // V7 (ingress) / V8 (direct) / §6.16
  let visitor: BurrowProcess;
  if (form === 'cli') {
    const target = mode === 'ingress' ? '/iperf.local' : '';
    visitor = burrow(
      [
        '-L',
        `tcp://127.0.0.1:0${target}`,
        '-L',
        `udp://127.0.0.1:0${target}?keepalive=true`,
        '-F',
        `tunnel://127.0.0.1:${sp}?tunnel.id=${TID.iperf}`,
      ],
      { name: `visitor-${tag}` },
    );
  } else {
    visitor = burrow(
      [
        '-C',
        fixture('6.16-iperf-visitor.yaml', [
          [/addr: :15201/, 'addr: 127.0.0.1:0'],
          [/addr: :15201/, 'addr: 127.0.0.1:0'],
          ['addr: :8443', `addr: 127.0.0.1:${sp}`],
        ]),
      ],
      { name: `visitor-${tag}` },
    );
  }
  const tcpPort = await visitor.listeningPort({ network: 'tcp' });
  const udpPort = await visitor.listeningPort({ network: 'udp' });
  return { server, tcpPort, udpPort };
}

/** One TCP stream: sends `bytes` while reading the echo; resolves with the echo's hash. */
async function tcpStream(port: number, bytes: number): Promise<{ sent: string; got: string }> {
  const sock = await connect(port);
  const data = randomBytes(bytes);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    sock.on('data', (c: Buffer) => {
      chunks.push(c);
      n += c.length;
      if (n >= bytes) {
        sock.end();
        resolve({ sent: sha256(data), got: sha256(Buffer.concat(chunks).subarray(0, bytes)) });
      }
    });
    sock.on('error', reject);
    sock.on('close', () => {
      if (n < bytes) reject(new Error(`closed after ${n} of ${bytes} bytes`));
    });
    sock.setTimeout(20_000, () => sock.destroy(new Error(`timed out after ${n} of ${bytes} bytes`)));
    sock.write(data);
  });
}

/**
 * A paced UDP run like `iperf3 -u`: `count` datagrams of `size` bytes, at most `window` in
 * flight; every reply must come back intact.
 */
async function udpRun(port: number, count: number, size: number, window: number): Promise<number> {
  const c = await new UdpClient(port).bind();
  try {
    // The session is set up by the first datagram; wait for its echo before the run.
    const hello = await c.ask('hello', 2_000, 3);
    assert.equal(hello?.toString(), 'hello');
    const sent = new Map<number, string>();
    let next = 0;
    let received = 0;
    while (received < count) {
      while (next < count && next - received < window) {
        const d = randomBytes(size);
        d.writeUInt32BE(next, 0);
        sent.set(next, sha256(d));
        await c.send(d);
        next++;
      }
      const r = await c.recv(3_000);
      assert.ok(r, `no reply after ${received} of ${count} datagrams`);
      const seq = r.readUInt32BE(0);
      assert.equal(sha256(r), sent.get(seq), `datagram ${seq} corrupted`);
      sent.delete(seq);
      received++;
    }
    return received;
  } finally {
    c.close();
  }
}

for (const form of ['cli', 'yaml'] as const) {
  for (const mode of ['ingress', 'direct'] as const) {
    describe(`iperf example, ${mode} mode, ${form === 'cli' ? 'command line (S/C3/V)' : 'YAML (§6.14–6.16)'}`, () => {
      let r: Rig;
      before(async () => {
        r = await rig(mode, form);
      });

      it('TCP: 4 parallel streams of 4 MiB echo intact', async () => {
        const results = await Promise.all(Array.from({ length: 4 }, () => tcpStream(r.tcpPort, 4 * 1024 * 1024)));
        for (const x of results) assert.equal(x.got, x.sent);
        const dst = mode === 'direct' && form === 'cli' ? ':0' : 'iperf.local:0';
        assert.ok(
          r.server.count((l) => String(l.msg).startsWith('connect: ') && String(l.msg).endsWith(` >> ${dst}/tcp`)) >= 4,
          `server saw CONNECTs for ${dst}/tcp`,
        );
      });

      it('UDP with keepalive: 2,000 datagrams of 1,460 bytes in one session', async () => {
        const isUdpConnect = (l: { msg?: string }): boolean => String(l.msg).startsWith('connect: ') && String(l.msg).endsWith('/udp');
        const before = r.server.count(isUdpConnect);
        assert.equal(await udpRun(r.udpPort, 2_000, 1_460, 16), 2_000);
        assert.equal(r.server.count(isUdpConnect) - before, 1, 'the whole run used one UDP session (one CONNECT)');
      });
    });
  }
}

describe('iperf visitor as printed in the docs', () => {
  it('is rejected: duplicate top-level services key, with file and line', async () => {
    const p = burrow(['-C', 'test/fixtures/config/6.16-iperf-visitor-docs-original.yaml'], { name: 'docs-original' });
    const exit = await p.exited;
    assert.equal(exit.code, 2);
    const text = p.output.join('\n');
    assert.match(text, /6\.16-iperf-visitor-docs-original\.yaml/);
    assert.match(text, /duplicate key 'services' at line 15/);
  });
});
