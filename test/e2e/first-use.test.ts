/**
 * What a first-time user meets, with real processes: a tunnel that nothing can reach is
 * reported by the server; a port in use is reported naming the service and the flag, once,
 * without a stack; log lines carry each field once and name a visitor's listen address; the
 * help describes -api; the self-signed certificate is not written to the home directory.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { burrow, stopAll, type BurrowProcess } from '../helpers/cli';
import { LOCAL, listenLocal, type LocalServer } from '../helpers/local';

after(() => stopAll());

const UNREACHABLE = /is in no ingress rule and tunnel\.direct is off/;

function client(serverPort: number, tid: string, name: string): BurrowProcess {
  return burrow(['-L', `rtcp://:0/${LOCAL}:9`, '-F', `tunnel://${LOCAL}:${serverPort}?tunnel.id=${tid}`], { name });
}

async function connectorUp(server: BurrowProcess, tid: string, n: number): Promise<void> {
  await server.waitFor(() => server.count((l) => l.tunnel === tid && /established$/.test(String(l.msg))) >= n, {
    timeoutMs: 60_000,
    what: `${n} connector(s) of ${tid}`,
  });
}

describe('a tunnel that nothing can reach', () => {
  it('gets one server warning per tunnel ID when no ingress rule names it and tunnel.direct is off', async () => {
    const routed = randomUUID();
    const stray = randomUUID();
    const server = burrow(['-L', `tunnel://${LOCAL}:0?entrypoint=${LOCAL}:0&tunnel=app.example.com:${routed}`], { name: 'server' });
    const port = await server.listeningPort({ timeoutMs: 60_000 });
    client(port, stray, 'stray-1');
    await connectorUp(server, stray, 1);
    client(port, stray, 'stray-2');
    await connectorUp(server, stray, 2);
    client(port, routed, 'routed');
    await connectorUp(server, routed, 1);
    const warned = server.filter((l) => UNREACHABLE.test(String(l.msg)));
    assert.equal(warned.length, 1, server.recentOutput());
    assert.equal(warned[0]!.level, 'warn');
    assert.equal(warned[0]!.tunnel, stray);
    assert.match(String(warned[0]!.msg), new RegExp(`tunnel=<host>:${stray}`));
  });

  it('is not warned about with tunnel.direct or in public mode', async () => {
    for (const query of ['tunnel.direct=true', 'tunnel.publicDomain=pub.example.test']) {
      const tid = randomUUID();
      const server = burrow(['-L', `tunnel://${LOCAL}:0?${query}`], { name: query });
      const port = await server.listeningPort({ timeoutMs: 60_000 });
      client(port, tid, `client (${query})`);
      await connectorUp(server, tid, 1);
      // A later line (a second tunnel's) shows the first one's would have been logged by now.
      const other = randomUUID();
      client(port, other, `client 2 (${query})`);
      await connectorUp(server, other, 1);
      assert.equal(server.count((l) => UNREACHABLE.test(String(l.msg))), 0, query);
    }
  });
});

describe('log lines', () => {
  it('carry "handler" once on the established and remove connector lines', async () => {
    const tid = randomUUID();
    const server = burrow(['-L', `tunnel://${LOCAL}:0?tunnel.direct=true`], { name: 'server' });
    const port = await server.listeningPort({ timeoutMs: 60_000 });
    const c = client(port, tid, 'client');
    await connectorUp(server, tid, 1);
    await c.kill('SIGKILL');
    await server.waitForMsg(new RegExp(`^remove connector: ${tid} `), { timeoutMs: 60_000 });
    const raw = server.output.filter((t) => t.includes(tid) && /established|remove connector/.test(t));
    assert.equal(raw.length, 2, raw.join('\n'));
    for (const t of raw) assert.equal(t.split('"handler":').length - 1, 1, t);
  });

  it("name a visitor's listen address as local, not :0", async () => {
    const closed = await listenLocal(net.createServer());
    const deadPort = closed.port;
    await closed.close();
    const visitor = burrow(['-L', `tcp://${LOCAL}:0/x.example.com:80`, '-F', `tunnel://${LOCAL}:${deadPort}?tunnel.id=${randomUUID()}`], {
      name: 'visitor',
    });
    const port = await visitor.listeningPort({ timeoutMs: 60_000 });
    const sock = net.connect(port, LOCAL);
    sock.on('error', () => undefined);
    sock.write('hello');
    const line = await visitor.waitFor((l) => l.level === 'error' && typeof l.remote === 'string', { timeoutMs: 60_000, what: 'the error line' });
    sock.destroy();
    assert.equal(line.local, `${LOCAL}:${port}`);
  });
});

describe('a port in use', () => {
  let busy: LocalServer;
  after(() => busy?.close());

  it('is reported once, naming the service and the flag, without a stack (exit 1)', async () => {
    busy = await listenLocal(net.createServer());
    const addr = `${LOCAL}:${busy.port}`;
    const home = mkdtempSync(path.join(os.tmpdir(), 'burrow-home-'));
    try {
      const cases: Array<[string[], string]> = [
        [['-L', `tunnel+wss://${addr}`], `service service-0 (-L "tunnel+wss://${addr}")`],
        [['-L', `tunnel+tls://${addr}`], `service service-0 (-L "tunnel+tls://${addr}")`],
        [['-L', `tunnel://${addr}`], `service service-0 (-L "tunnel://${addr}")`],
        [['-L', `tunnel://${LOCAL}:0?entrypoint=${addr}`], `service service-0 (-L "tunnel://${LOCAL}:0?entrypoint=${addr}"): entrypoint ${addr}`],
        [['-L', `tcp://${LOCAL}:0/${LOCAL}:9`, '-metrics', addr], `metrics (-metrics ${addr})`],
      ];
      for (const [args, names] of cases) {
        const p = burrow(args, { name: args.join(' '), env: { HOME: home, BURROW_HOME: '' } });
        const exit = await p.exited;
        assert.equal(exit.code, 1, p.recentOutput());
        const out = p.output.join('\n');
        assert.ok(out.includes(`burrow: ${names}: listen EADDRINUSE`), out);
        assert.equal(p.output.filter((t) => t.includes('EADDRINUSE')).length, 1, out);
        assert.ok(!out.includes('"stack"'), out);
      }
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});

describe('help and defaults', () => {
  it('describes -api: the web API, and credentials off loopback', async () => {
    const p = burrow(['--help'], { name: 'help' });
    await p.exited;
    const text = p.output.join('\n');
    const line = p.output.find((t) => /^\[out\]\s+-api /.test(t));
    assert.ok(line, text);
    assert.match(line, /serve the web API/);
    assert.doesNotMatch(line, /ignored/);
    assert.match(text, /not on loopback: credentials, or \?allowUnauthenticated=true/);
  });

  it('keeps the self-signed certificate in memory: nothing written to the home or working directory', async () => {
    const home = mkdtempSync(path.join(os.tmpdir(), 'burrow-home-'));
    const cwd = mkdtempSync(path.join(os.tmpdir(), 'burrow-cwd-'));
    try {
      const p = burrow(['-L', `tunnel+wss://${LOCAL}:0?tunnel.direct=true`], { name: 'wss', cwd, env: { HOME: home, BURROW_HOME: '' } });
      await p.listeningPort({ timeoutMs: 60_000 });
      assert.ok(p.filter((l) => /kept in memory/.test(String(l.msg))).length === 1, p.recentOutput());
      await p.stop(60_000);
      assert.deepEqual(readdirSync(home), []);
      assert.deepEqual(readdirSync(cwd), []);
    } finally {
      rmSync(home, { recursive: true, force: true });
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});
