/**
 * The foundation end to end through the real CLI: tcp/udp port forwarding, round robin over
 * targets, clean shutdown with a transfer in flight, and the one-line start-up errors.
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import dgram from 'node:dgram';
import { spawnSync } from 'node:child_process';
import { burrow, stopAll, BURROW_BIN, tempFile } from '../helpers/cli';
import { listenEcho, listenUdpEcho, connect, readN, readAll, sha256, randomBytes } from '../helpers/net';

after(stopAll);

function run(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BURROW_BIN, ...args], { encoding: 'utf8', timeout: 15_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A TCP server answering every connection with its name, then closing. */
async function nameServer(name: string): Promise<{ port: number; close(): void }> {
  const s = net.createServer((c) => c.end(name));
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return { port: (s.address() as net.AddressInfo).port, close: () => s.close() };
}

describe('tcp forwarding', () => {
  test('1 MiB echoed intact and 100 concurrent connections', async () => {
    const echo = await listenEcho();
    after(() => echo.close());
    const p = burrow(['-L', `tcp://127.0.0.1:0/127.0.0.1:${echo.port}`]);
    const port = await p.listeningPort();
    const data = randomBytes(1024 * 1024);
    const s = await connect(port);
    s.end(data);
    const back = await readAll(s);
    assert.equal(back.length, data.length);
    assert.equal(sha256(back), sha256(data));

    const results = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const c = await connect(port);
        const payload = randomBytes(16 * 1024 + i);
        c.end(payload);
        const got = await readAll(c);
        return sha256(got) === sha256(payload);
      }),
    );
    assert.equal(results.filter(Boolean).length, 100);
  });

  test('round robin over several targets', async () => {
    const a = await nameServer('A');
    const b = await nameServer('B');
    after(() => a.close());
    after(() => b.close());
    const p = burrow(['-L', `tcp://127.0.0.1:0/127.0.0.1:${a.port},127.0.0.1:${b.port}`]);
    const port = await p.listeningPort();
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) {
      const c = await connect(port);
      seen.push((await readAll(c)).toString());
    }
    assert.deepEqual(seen.sort(), ['A', 'A', 'A', 'B', 'B', 'B']);
  });

  test('through a chain: -F forward://node hands the connection to a forwarding node', async () => {
    const echo = await listenEcho();
    after(() => echo.close());
    const node = burrow(['-L', `tcp://127.0.0.1:0/127.0.0.1:${echo.port}`], { name: 'forward-node' });
    const nodePort = await node.listeningPort();
    const p = burrow(['-L', 'tcp://127.0.0.1:0/unused.example:1', '-F', `forward://127.0.0.1:${nodePort}`], { name: 'forward-entry' });
    const port = await p.listeningPort();
    const c = await connect(port);
    const data = randomBytes(256 * 1024);
    c.end(data);
    assert.equal(sha256(await readAll(c)), sha256(data));
    // Several hops would need proxy connectors: refused with a clear error.
    const r = run(['-L', 'tcp://127.0.0.1:0/x:1', '-F', 'forward://127.0.0.1:1', '-F', 'forward://127.0.0.1:2']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /2 hops; burrow dials one hop per chain/);
  });

  test('a target that refuses connections closes the client connection and the service survives', async () => {
    const dead = await nameServer('x');
    dead.close();
    const echo = await listenEcho();
    after(() => echo.close());
    const p = burrow(['-L', `tcp://127.0.0.1:0/127.0.0.1:${dead.port}`, '-L', `tcp://127.0.0.1:0/127.0.0.1:${echo.port}`]);
    await p.waitForMsg(/listening on/, { what: 'first service' });
    const ports = await Promise.all([p.listeningPort({ service: 'service-0' }), p.listeningPort({ service: 'service-1' })]);
    const c = await connect(ports[0]);
    assert.equal((await readAll(c)).length, 0);
    const ok = await connect(ports[1]);
    ok.write('still alive');
    assert.equal((await readN(ok, 11)).toString(), 'still alive');
    ok.destroy();
  });

  test('SIGTERM lets a transfer in flight finish, then exits 0', async () => {
    const echo = await listenEcho();
    after(() => echo.close());
    const p = burrow(['-L', `tcp://127.0.0.1:0/127.0.0.1:${echo.port}`], { env: { ...process.env, BURROW_SHUTDOWN_GRACE_MS: '5000' } });
    const port = await p.listeningPort();
    const c = await connect(port);
    const first = randomBytes(64 * 1024);
    c.write(first);
    await readN(c, first.length);
    const exited = p.kill('SIGTERM');
    await p.waitForMsg(/SIGTERM: shutting down/, { what: 'shutdown line' });
    // The accepted connection keeps working during the grace period.
    const second = randomBytes(256 * 1024);
    c.write(second);
    const echoed = await readN(c, second.length);
    assert.equal(sha256(echoed), sha256(second));
    c.end();
    const info = await exited;
    assert.equal(info.code, 0);
    // New connections are refused once stopping.
    await assert.rejects(connect(port));
  });
});

describe('udp forwarding', () => {
  test('keepalive keeps one session for many exchanges; ttl expires it', async () => {
    const uecho = await listenUdpEcho();
    after(() => uecho.close());
    const p = burrow(['-D', '-L', `udp://127.0.0.1:0/127.0.0.1:${uecho.port}?keepalive=true&ttl=500ms`]);
    const port = await p.listeningPort({ network: 'udp' });
    const sock = dgram.createSocket('udp4');
    after(() => sock.close());
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const local = `127.0.0.1:${sock.address().port}`;
    for (let i = 0; i < 20; i++) {
      const got = new Promise<Buffer>((r) => sock.once('message', (m) => r(m)));
      sock.send(`datagram ${i}`, port, '127.0.0.1');
      assert.equal((await got).toString(), `datagram ${i}`);
    }
    const opens = p.count((l) => typeof l.msg === 'string' && l.msg.startsWith(`${local} <> `));
    assert.equal(opens, 1, 'one session for all exchanges');
    const closed = await p.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith(`${local} ><`), {
      timeoutMs: 3000,
      what: 'session close after ttl',
    });
    assert.ok(closed);
  });

  test('without keepalive a session ends after one reply', async () => {
    const uecho = await listenUdpEcho();
    after(() => uecho.close());
    const p = burrow(['-D', '-L', `udp://127.0.0.1:0/127.0.0.1:${uecho.port}`]);
    const port = await p.listeningPort({ network: 'udp' });
    const sock = dgram.createSocket('udp4');
    after(() => sock.close());
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const local = `127.0.0.1:${sock.address().port}`;
    const got = new Promise<Buffer>((r) => sock.once('message', (m) => r(m)));
    sock.send('one shot', port, '127.0.0.1');
    assert.equal((await got).toString(), 'one shot');
    await p.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith(`${local} ><`), { timeoutMs: 1000, what: 'session end after the reply' });
  });
});

describe('command line', () => {
  test('-V prints the version, --help the usage', () => {
    const v = run(['-V']);
    assert.equal(v.code, 0);
    assert.match(v.stdout, /^burrow \d+\.\d+\.\d+ \(node v\d+/);
    const h = run(['--help']);
    assert.equal(h.code, 0);
    assert.match(h.stdout, /-L/);
    assert.match(h.stdout, /-F/);
  });

  test('-O yaml prints the model the flags build', () => {
    const r = run(['-L', 'rtcp://:0/192.168.1.1:80', '-F', 'tunnel://:8443?tunnel.id=4d21094e-b74c-4916-86c1-d9fa36ea677b&tunnel.weight=1', '-O', 'yaml']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /name: service-0/);
    assert.match(r.stdout, /type: rtcp/);
    assert.match(r.stdout, /chain: chain-0/);
    assert.match(r.stdout, /tunnel\.id: 4d21094e-b74c-4916-86c1-d9fa36ea677b/);
  });

  test('a port already in use: one line, exit code 1, no stack trace', async () => {
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    after(() => busy.close());
    const port = (busy.address() as net.AddressInfo).port;
    const r = run(['-L', `tcp://127.0.0.1:${port}/127.0.0.1:9`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /EADDRINUSE|in use/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  });

  test('a missing config file and a bad address: clear errors, exit code 2', () => {
    const m = run(['-C', '/nonexistent/burrow.yaml']);
    assert.equal(m.code, 2);
    assert.match(m.stderr, /\/nonexistent\/burrow\.yaml/);
    const b = run(['-L', 'tcp://127.0.0.1:99999/127.0.0.1:1']);
    assert.equal(b.code, 2);
    assert.match(b.stderr, /99999/);
    const y = run(['-C', tempFile('bad.yaml', 'services:\n  - name: a\n   addr: x\n')]);
    assert.equal(y.code, 2);
    assert.match(y.stderr, /bad\.yaml/);
  });

  test('-metrics serves Prometheus metrics with gost\'s names', async () => {
    const echo = await listenEcho();
    after(() => echo.close());
    const p = burrow(['-L', `tcp://127.0.0.1:0/127.0.0.1:${echo.port}`, '-metrics', '127.0.0.1:0']);
    const port = await p.listeningPort();
    const line = await p.waitForMsg(/^metrics: http:\/\//, { what: 'metrics address' });
    const url = String(line.msg).slice('metrics: '.length);
    const c = await connect(port);
    c.end('ping');
    assert.equal((await readAll(c)).toString(), 'ping');
    const deadline = Date.now() + 5000;
    let text = '';
    while (Date.now() < deadline) {
      text = await (await fetch(url)).text();
      if (/gost_service_requests_total\{service="service-0"\} 1/.test(text) && /gost_service_transfer_input_bytes_total\{service="service-0"\} 4/.test(text)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(text, /gost_services 1/);
    assert.match(text, /gost_service_requests_total\{service="service-0"\} 1/);
    assert.match(text, /gost_service_transfer_input_bytes_total\{service="service-0"\} 4/);
    assert.match(text, /gost_service_requests_in_flight\{service="service-0"\} 0/);
  });

  test('log.format text and log.output to a file', async () => {
    const echo = await listenEcho();
    after(() => echo.close());
    const logFile = tempFile('burrow.log', '');
    const cfg = tempFile(
      'c.yaml',
      `services:\n- name: fwd\n  addr: 127.0.0.1:0\n  handler: {type: tcp}\n  listener: {type: tcp}\n  forwarder:\n    nodes:\n    - name: t\n      addr: 127.0.0.1:${echo.port}\nlog:\n  format: text\n  output: ${logFile}\n`,
    );
    const p = burrow(['-C', cfg]);
    const { readFileSync } = await import('node:fs');
    const deadline = Date.now() + 5000;
    let text = '';
    while (Date.now() < deadline) {
      text = readFileSync(logFile, 'utf8');
      if (text.includes('listening on')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(text, /info listening on 127\.0\.0\.1:\d+\/tcp/);
    assert.doesNotMatch(text, /^\{/m, 'text format, not JSON');
    await p.stop();
  });
});
