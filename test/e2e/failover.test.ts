/**
 * Client failover across servers: gost's node address list (`-F "tunnel://a:p1,b:p2?…"`) makes
 * one hop of two nodes. The client binds to one; when that server is killed (-9), the client's
 * session ends, it binds again with its usual backoff, and a server that refuses the dial is
 * skipped for the hop's failTimeout: the tunnel comes back on the surviving server.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { burrow, type BurrowProcess } from '../helpers/cli';
import { Cleanup, TID, httpRequest, startHttpService, eventually } from './support';

const cleanup = new Cleanup();
after(() => cleanup.run());

const HOST = 'fo.example.com';

async function startServer(name: string): Promise<{ proc: BurrowProcess; port: number; ep: number }> {
  const proc = burrow(['-L', `tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel=.example.com:${TID.example}`], { name });
  cleanup.fn(() => proc.kill('SIGKILL'));
  return { proc, port: await proc.listeningPort(), ep: await proc.entrypointPort() };
}

describe('client failover across the servers of a node address list', () => {
  it('kill -9 of the server a client is bound to: it binds to the other one, which then serves the tunnel', async () => {
    const a = await startServer('server-a');
    const b = await startServer('server-b');
    const svc = await startHttpService('backend');
    cleanup.add(svc);
    const client = burrow(
      ['-L', `rtcp://:0/127.0.0.1:${svc.port}`, '-F', `tunnel://127.0.0.1:${a.port},127.0.0.1:${b.port}?tunnel.id=${TID.example}`],
      { name: 'client' },
    );
    cleanup.fn(() => client.kill('SIGKILL'));
    await client.tunnelCreated();
    const established = (s: { proc: BurrowProcess }): number => s.proc.count((l) => typeof l.msg === 'string' && / established$/.test(l.msg));
    await eventually(async () => assert.equal(established(a) + established(b), 1), 10_000);
    const [first, second] = established(a) === 1 ? [a, b] : [b, a];
    assert.equal((await httpRequest(first.ep, { host: HOST })).status, 200);
    assert.equal((await httpRequest(second.ep, { host: HOST })).status, 503, 'the other server has no connector yet');

    const mark = client.mark();
    await first.proc.kill('SIGKILL');
    await client.tunnelCreated({ from: mark, timeoutMs: 30_000 });
    // The server's own log line may arrive after the client's.
    await eventually(async () => assert.equal(established(second), 1), 10_000);
    const r = await httpRequest(second.ep, { host: HOST });
    assert.equal(r.status, 200);
    assert.ok(client.alive);
  });

  it('tunnel.all=true: a session to every server at once; kill -9 of one loses no request through the others', async () => {
    const a = await startServer('all-a');
    const b = await startServer('all-b');
    const c = await startServer('all-c');
    const svc = await startHttpService('backend-all');
    cleanup.add(svc);
    const nodes = [a, b, c].map((s) => `127.0.0.1:${s.port}`).join(',');
    const client = burrow(['-L', `rtcp://:0/127.0.0.1:${svc.port}`, '-F', `tunnel://${nodes}?tunnel.id=${TID.example}&tunnel.all=true`], {
      name: 'client-all',
    });
    cleanup.fn(() => client.kill('SIGKILL'));
    const established = (s: { proc: BurrowProcess }): number => s.proc.count((l) => typeof l.msg === 'string' && / established$/.test(l.msg));
    // Every server has a connector of its own: each serves the tunnel locally.
    await eventually(async () => assert.deepEqual([a, b, c].map(established), [1, 1, 1]), 20_000);
    for (const s of [a, b, c]) assert.equal((await httpRequest(s.ep, { host: HOST })).status, 200);

    await a.proc.kill('SIGKILL');
    for (let i = 0; i < 10; i++) {
      for (const s of [b, c]) {
        const r = await httpRequest(s.ep, { host: HOST, path: `/after/${i}` });
        assert.equal(r.status, 200, `request ${i} through a surviving server`);
      }
    }
    // The client keeps trying the dead server in the background and stays up.
    assert.ok(client.alive);
    assert.deepEqual([b, c].map(established), [1, 1], 'the sessions to the surviving servers were never dropped');
  });
});
