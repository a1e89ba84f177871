/**
 * Reload by difference against the real CLI: SIGHUP, POST /config/reload and the -R period
 * read the config file again; a keep-alive wrk run and an iperf3 TCP stream through services
 * that do not change lose nothing while another service is added, changed (same port: the old
 * listener gives way to the new one) and removed, over and over; a broken new config (syntax,
 * a reference to nothing, a port in use) is refused with one log line and everything keeps
 * running.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { writeFileSync } from 'node:fs';
import { burrow, tempFile, type BurrowProcess } from '../helpers/cli';
import { apiCall, apiPort } from '../helpers/api';
import { randomBytes, sha256 } from '../helpers/net';
import { bannerExchange, Cleanup, httpRequest, LOCAL, sleep, startBannerEcho, startHttpService, type HttpService } from './support';

const cleanup = new Cleanup();
after(() => cleanup.run());

/** A port free right now (the OS's pick, released at once). */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, LOCAL, () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function forward(name: string, addr: string, target: number): string {
  return `- name: ${name}
  addr: ${addr}
  handler:
    type: tcp
  listener:
    type: tcp
  forwarder:
    nodes:
    - name: ${name}-target
      addr: ${LOCAL}:${target}
`;
}

interface Child {
  proc: ChildProcess;
  out: string;
  exited: Promise<number | null>;
}

function run(cmd: string, args: string[]): Child {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const child: Child = { proc, out: '', exited: Promise.resolve(null) };
  proc.stdout!.on('data', (d: Buffer) => (child.out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (child.out += d.toString()));
  child.exited = new Promise((r) => proc.once('exit', (code) => r(code)));
  cleanup.fn(() => proc.exitCode === null && proc.kill('SIGKILL'));
  return child;
}

describe('reload by difference under load', () => {
  let web: HttpService;
  let bannerA: Awaited<ReturnType<typeof startBannerEcho>>;
  let bannerB: Awaited<ReturnType<typeof startBannerEcho>>;
  let iperfPort: number;
  let extraPort: number;
  let file: string;
  let server: BurrowProcess;
  let api: number;

  /** The config: web and perf always; extra on a fixed port to A or B; added when asked. */
  const config = (o: { extra?: 'A' | 'B'; added?: boolean }): string =>
    `services:
${forward('web', `${LOCAL}:0`, web.port)}${forward('perf', `${LOCAL}:0`, iperfPort)}${
      o.extra ? forward('extra', `${LOCAL}:${extraPort}`, o.extra === 'A' ? bannerA.port : bannerB.port) : ''
    }${o.added ? forward('added', `${LOCAL}:0`, web.port) : ''}api:
  addr: ${LOCAL}:0
`;

  /** Port of a running service, from GET /status. */
  async function servicePort(name: string): Promise<number> {
    const st = await apiCall(api, 'GET', '/status');
    const s = (st.json.services as Array<{ name: string; addr: string }>).find((x) => x.name === name);
    assert.ok(s, `service ${name} in ${st.text}`);
    return Number(/:(\d+)$/.exec(s.addr)![1]);
  }

  /** Writes the config and reloads it by SIGHUP or by the API; resolves with the log line. */
  async function reload(cfg: string, how: 'SIGHUP' | 'api'): Promise<string> {
    writeFileSync(file, cfg);
    const from = server.mark();
    if (how === 'SIGHUP') server.proc.kill('SIGHUP');
    else {
      const r = await apiCall(api, 'POST', '/config/reload', { headers: { 'content-type': 'application/json' }, body: '{}' });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.code, 0);
    }
    const line = await server.waitForMsg(/^reload \(/, { from, what: 'the reload line' });
    return String(line.msg);
  }

  before(async () => {
    web = cleanup.add(await startHttpService('web'));
    bannerA = cleanup.add(await startBannerEcho('A'));
    bannerB = cleanup.add(await startBannerEcho('B'));
    extraPort = await freePort();
    iperfPort = await freePort();
    const iperfServer = run('iperf3', ['-s', '--forceflush', '-B', LOCAL, '-p', String(iperfPort)]);
    for (let i = 0; !iperfServer.out.includes('Server listening'); i++) {
      if (i > 200) throw new Error(`iperf3 -s did not start: ${iperfServer.out}`);
      await sleep(50);
    }
    file = tempFile('reload.yaml', config({ extra: 'A' }));
    server = burrow(['-C', file], { name: 'server' });
    api = await apiPort(server);
    await server.listening({ service: 'extra' });
  });

  it('keeps a keep-alive wrk run and an iperf3 stream whole while services come, change and go', async (t) => {
    const webPort = await servicePort('web');
    const perfPort = await servicePort('perf');
    const listensBefore = server.count((l) => /^listening on/.test(String(l.msg)) && (l.service === 'web' || l.service === 'perf'));
    assert.equal(listensBefore, 2);

    const wrk = run('wrk', ['-t1', '-c4', '-d15s', `http://${LOCAL}:${webPort}/`]);
    const iperf = run('iperf3', ['-c', LOCAL, '-p', String(perfPort), '-t', '15', '-b', '200M', '-J']);
    // Both loads are under way before the first reload.
    await httpRequest(webPort);
    for (let i = 0; web.connections < 5; i++) {
      if (i > 400) throw new Error(`wrk did not connect: ${wrk.out}`);
      await sleep(25);
    }
    let running = true;
    const ended = Promise.all([wrk.exited, iperf.exited]).then(() => (running = false));

    let cycles = 0;
    do {
      // Added: a new service starts and serves.
      const added = await reload(config({ extra: 'A', added: true }), 'SIGHUP');
      assert.match(added, /1 added, 0 changed, 0 removed, 3 unchanged/);
      const r = await httpRequest(await servicePort('added'));
      assert.match(r.body, /^web GET \//);
      // Changed on the same port: the new target answers there.
      const changed = await reload(config({ extra: 'B', added: true }), 'api');
      assert.match(changed, /0 added, 1 changed, 0 removed, 3 unchanged/);
      assert.equal((await bannerExchange(extraPort, Buffer.from('x'))).banner, 'B');
      // Removed: both go away, the port closes.
      const removed = await reload(config({}), 'SIGHUP');
      assert.match(removed, /0 added, 0 changed, 2 removed, 2 unchanged/);
      await assert.rejects(bannerExchange(extraPort, Buffer.from('x'), 2_000));
      // Back to the start for the next round.
      await reload(config({ extra: 'A' }), 'SIGHUP');
      cycles++;
    } while (running);
    await ended;
    // The first round of reloads ended while both loads were still running.
    assert.ok(cycles >= 2, `only ${cycles} round(s) of reloads while the load ran`);

    assert.equal(await wrk.exited, 0, wrk.out);
    const requests = Number(/(\d+) requests in/.exec(wrk.out)?.[1] ?? 0);
    assert.ok(requests > 0, wrk.out);
    assert.doesNotMatch(wrk.out, /Socket errors|Non-2xx/, wrk.out);

    assert.equal(await iperf.exited, 0, iperf.out);
    const result = JSON.parse(iperf.out) as { error?: string; end: { sum_sent: { bytes: number }; sum_received: { bytes: number } } };
    assert.equal(result.error, undefined);
    assert.ok(result.end.sum_sent.bytes > 0);
    assert.equal(result.end.sum_received.bytes, result.end.sum_sent.bytes);

    t.diagnostic(`${cycles} rounds of reloads; wrk: ${requests} requests; iperf3: ${result.end.sum_received.bytes} bytes`);
    // web and perf never listened again: their listeners were kept.
    assert.equal(server.count((l) => /^listening on/.test(String(l.msg)) && (l.service === 'web' || l.service === 'perf')), 2);
  });

  it('refuses a broken config with one log line and keeps everything running', async () => {
    const webPort = await servicePort('web');
    const before = await apiCall(api, 'GET', '/config');
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, LOCAL, () => r()));
    cleanup.fn(() => new Promise<void>((r) => blocker.close(() => r())));
    const taken = (blocker.address() as net.AddressInfo).port;
    const broken: Array<[string, RegExp]> = [
      ['services:\n- name: web\n  addr: [oops\n', /YAML/],
      [config({ extra: 'A' }).replace('type: tcp\n  listener', 'type: nosuch\n  listener'), /nosuch/],
      [`${config({ extra: 'A' })}`.replace('api:', `${forward('clash', `${LOCAL}:${taken}`, web.port)}api:`), /clash.*(EADDRINUSE|in use)/],
      [config({ extra: 'A' }).replace('handler:\n    type: tcp\n', 'handler:\n    type: tcp\n    chain: nowhere\n'), /nowhere/],
    ];
    for (const [text, reason] of broken) {
      for (const how of ['SIGHUP', 'api'] as const) {
        writeFileSync(file, text);
        const from = server.mark();
        if (how === 'SIGHUP') server.proc.kill('SIGHUP');
        else {
          const r = await apiCall(api, 'POST', '/config/reload', { headers: { 'content-type': 'application/json' }, body: '{}' });
          assert.equal(r.status, 400, r.text);
          assert.equal(r.json.code, 40003);
          assert.match(r.json.msg, reason);
        }
        const line = await server.waitForMsg(/^reload \(.*\) refused: /, { from });
        assert.equal(line.level, 'error');
        assert.match(String(line.msg), reason);
        assert.match(String(line.msg), /the running configuration is unchanged$/);
        // One line: nothing else about the reload was logged.
        await httpRequest(webPort);
        assert.equal(server.count((l) => /reload/.test(String(l.msg)), from), 1, server.recentOutput());
        assert.match((await httpRequest(webPort)).body, /^web GET/);
        assert.equal((await bannerExchange(extraPort, Buffer.from('y'))).banner, 'A');
        assert.equal((await apiCall(api, 'GET', '/config')).text, before.text);
      }
    }
    assert.ok(server.alive);
  });
});

describe('the -R period', () => {
  it('reads the file again every period and applies what changed', async () => {
    const echo = cleanup.add(await startBannerEcho('R'));
    const file = tempFile('period.yaml', `services:\n${forward('first', `${LOCAL}:0`, echo.port)}`);
    const p = burrow(['-C', file, '-R', '1s'], { name: 'periodic' });
    await p.listening({ service: 'first' });
    const from = p.mark();
    writeFileSync(file, `services:\n${forward('first', `${LOCAL}:0`, echo.port)}${forward('second', `${LOCAL}:0`, echo.port)}`);
    const line = await p.waitForMsg(/^reload \(-R\): 1 added, 0 changed, 0 removed, 1 unchanged$/, { from, timeoutMs: 20_000 });
    assert.ok(line);
    const second = await p.listening({ service: 'second' });
    const payload = randomBytes(4096);
    const got = await bannerExchange(second.port, payload);
    assert.equal(got.banner, 'R');
    assert.equal(sha256(got.echoed), sha256(payload));
  });
});
