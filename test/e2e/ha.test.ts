/**
 * High availability with several clients on one tunnel (behavior.md §3, §6): weighted
 * selection, the exclusive weight 255, a client killed mid-traffic, and a server restart that
 * the clients survive by reconnecting.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { burrow, type BurrowProcess } from '../helpers/cli';
import { Cleanup, TID, httpRequest, sleep, startHttpService, type HttpService } from './support';

const cleanup = new Cleanup();
after(() => cleanup.run());

const HOST = 'ha.example.com';

function serverArgs(port = 0, ep = 0): string[] {
  return ['-L', `tunnel://127.0.0.1:${port}?entrypoint=127.0.0.1:${ep}&tunnel=.example.com:${TID.example}`, '-D'];
}

function startClient(serverPort: number, target: number, weight: number, name: string): BurrowProcess {
  return burrow(
    ['-L', `rtcp://:0/127.0.0.1:${target}`, '-F', `tunnel://127.0.0.1:${serverPort}?tunnel.id=${TID.example}&tunnel.weight=${weight}`],
    { name },
  );
}

/**
 * `n` requests, `concurrency` at a time; counts answers by service. With `keepAlive` the
 * requests share a few client connections (each request is still a weighted pick of its own);
 * without it every request comes on a new connection.
 */
async function fire(ep: number, n: number, concurrency = 4, keepAlive = true): Promise<{ by: Map<string, number>; failures: string[] }> {
  const agent = new http.Agent({ keepAlive, maxSockets: concurrency });
  const by = new Map<string, number>();
  const failures: string[] = [];
  let next = 0;
  try {
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < n) {
          const i = next++;
          try {
            const r = await httpRequest(ep, { host: HOST, path: `/r/${i}`, agent });
            if (r.status !== 200) failures.push(`#${i}: ${r.status}`);
            else by.set(String(r.headers['x-service']), (by.get(String(r.headers['x-service'])) ?? 0) + 1);
          } catch (err) {
            failures.push(`#${i}: ${(err as Error).message}`);
          }
        }
      }),
    );
  } finally {
    agent.destroy();
  }
  return { by, failures };
}

describe('HA: several clients on one tunnel', () => {
  let a: HttpService;
  let b: HttpService;
  let c: HttpService;
  let server: BurrowProcess;
  let port: number;
  let ep: number;

  before(async () => {
    a = cleanup.add(await startHttpService('A'));
    b = cleanup.add(await startHttpService('B'));
    c = cleanup.add(await startHttpService('C'));
    server = burrow(serverArgs(), { name: 'server' });
    port = await server.listeningPort();
    ep = await server.entrypointPort();
  });

  it('splits traffic by weight (1 : 3)', async () => {
    const ca = startClient(port, a.port, 1, 'client-w1');
    const cb = startClient(port, b.port, 3, 'client-w3');
    await Promise.all([ca.tunnelCreated(), cb.tunnelCreated()]);
    await server.waitFor(() => server.count((l) => /established$/.test(String(l.msg))) >= 2, { what: 'two connectors' });
    // A new client connection per request: each one is a fresh weighted pick.
    const { by, failures } = await fire(ep, 400, 4, false);
    assert.deepEqual(failures, []);
    const nb = by.get('B') ?? 0;
    const na = by.get('A') ?? 0;
    assert.equal(na + nb, 400);
    assert.ok(nb >= 240 && nb <= 360, `weight-3 client got ${nb}/400 (A: ${na})`);
  });

  it('routes each request of one keep-alive connection on its own: weights, weight 255, failover', async () => {
    // The weight-1 and weight-3 clients of the previous case are registered.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<string>();
    const one = async (n: number, label: string): Promise<Map<string, number>> => {
      const by = new Map<string, number>();
      for (let i = 0; i < n; i++) {
        const r = await httpRequest(ep, { host: HOST, path: `/${label}/${i}`, agent });
        assert.equal(r.status, 200, `${label} #${i}`);
        sockets.add(`${r.socket.localPort}`);
        const svc = String(r.headers['x-service']);
        by.set(svc, (by.get(svc) ?? 0) + 1);
      }
      return by;
    };
    try {
      const split = await one(40, 'split');
      assert.ok((split.get('A') ?? 0) > 0 && (split.get('B') ?? 0) > 0, `one keep-alive connection: ${JSON.stringify([...split])}`);
      assert.equal(sockets.size, 1, 'the requests shared one client connection');

      // A weight-255 client joins: the next requests of the same connection all go to it.
      const cc = startClient(port, c.port, 255, 'client-w255-keepalive');
      const cid = /connector=([0-9a-f-]+)/.exec(String((await cc.tunnelCreated()).msg))![1]!;
      await server.waitForMsg(new RegExp(`connector=${cid}, weight=255 established$`));
      assert.deepEqual([...(await one(20, 'exclusive'))], [['C', 20]]);

      // It goes away: the same connection fails over to the weighted pair.
      const mark = server.mark();
      await cc.kill('SIGKILL');
      await server.waitForMsg(new RegExp(`^remove connector: ${TID.example} ${cid}$`), { from: mark });
      const back = await one(20, 'failover');
      assert.equal((back.get('A') ?? 0) + (back.get('B') ?? 0), 20, JSON.stringify([...back]));
      assert.equal(sockets.size, 1, 'the requests shared one client connection');
    } finally {
      agent.destroy();
    }
  });

  it('gives all traffic to a weight-255 client; killing it mid-run fails no later request', async (t) => {
    const cc = startClient(port, c.port, 255, 'client-w255');
    const created = await cc.tunnelCreated();
    const cid = /connector=([0-9a-f-]+)/.exec(String(created.msg))![1]!;
    await server.waitForMsg(new RegExp(`connector=${cid}, weight=255 established$`));
    const { by, failures } = await fire(ep, 100);
    assert.deepEqual(failures, []);
    assert.deepEqual([...by], [['C', 100]]);

    // Killed mid-run: once the server has dropped the connector, no new request fails and the
    // traffic goes back to the weighted pair.
    const results: Array<{ start: number; end: number; ok: boolean; service?: string; err?: string }> = [];
    let running = true;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const loops = Array.from({ length: 4 }, async () => {
      while (running) {
        const start = Date.now();
        try {
          const r = await httpRequest(ep, { host: HOST, agent, timeoutMs: 5_000 });
          results.push({ start, end: Date.now(), ok: r.status === 200, service: String(r.headers['x-service']), err: `${r.status}` });
        } catch (err) {
          results.push({ start, end: Date.now(), ok: false, err: (err as Error).message });
        }
      }
    });
    await sleep(300);
    const mark = server.mark();
    const killAt = Date.now();
    await cc.kill('SIGKILL');
    await server.waitForMsg(new RegExp(`^remove connector: ${TID.example} ${cid}$`), { from: mark, timeoutMs: 5_000 });
    const goneAt = Date.now();
    await sleep(1_500);
    running = false;
    await Promise.all(loops);
    agent.destroy();
    const after = results.filter((r) => r.start >= goneAt);
    assert.ok(after.length > 20, `only ${after.length} requests after the removal`);
    assert.deepEqual(
      after.filter((r) => !r.ok).map((r) => r.err),
      [],
      'requests started after the connector was removed failed',
    );
    assert.ok(after.every((r) => r.service === 'A' || r.service === 'B'));
    const before = results.filter((r) => r.end < killAt);
    assert.ok(before.length > 0, 'no request completed before the kill');
    assert.deepEqual(before.filter((r) => !r.ok || r.service !== 'C'), [], 'before the kill only C answered');
    const inFlight = results.filter((r) => r.end >= killAt && r.start < goneAt && !r.ok);
    if (inFlight.length) t.diagnostic(`${inFlight.length} request(s) in flight at the kill failed: ${[...new Set(inFlight.map((r) => r.err))].join(', ')}`);
  });

  it('clients reconnect after a server restart and traffic resumes', async (t) => {
    await server.kill('SIGKILL');
    const killedAt = Date.now();
    server = burrow(serverArgs(port, ep), { name: 'server-restarted' });
    await server.listeningPort();
    let resumedAt = 0;
    // A hang guard, not a timing requirement (the reconnect timing is measured by the bench).
    while (Date.now() - killedAt < 60_000) {
      try {
        const r = await httpRequest(ep, { host: HOST, timeoutMs: 2_000 });
        if (r.status === 200) {
          resumedAt = Date.now();
          break;
        }
      } catch {
        /* refused while restarting */
      }
      await sleep(100);
    }
    assert.ok(resumedAt > 0, 'traffic did not resume within 60 s');
    t.diagnostic(`traffic resumed ${resumedAt - killedAt} ms after the kill`);
    // Both surviving clients are back, with their weights.
    await server.waitFor(() => server.count((l) => /established$/.test(String(l.msg))) >= 2, {
      timeoutMs: 60_000,
      what: 'both clients re-registered',
    });
    const { by, failures } = await fire(ep, 100, 4, false);
    assert.deepEqual(failures, []);
    assert.ok((by.get('A') ?? 0) > 0 && (by.get('B') ?? 0) > (by.get('A') ?? 0), JSON.stringify([...by]));
  });
});
