/**
 * Faults survived: a client that vanishes without FIN or RST (its process paused with SIGSTOP:
 * the kernel still ACKs, nothing is read or sent). With `mux.keepaliveInterval=200ms` and
 * `mux.keepaliveTimeout=1s` on both sides the server notices the silence, drops the connector
 * from selection at once (gost keeps such a connector selectable for up to 15 s, until its
 * `tunnel.ttl` sweep) and the tunnel's traffic moves to its other, live client.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { stopAll } from '../helpers/cli';
import { waitFor } from '../helpers/net';
import {
  LOCAL,
  established,
  newTid,
  removed,
  request,
  sleep,
  startClient,
  startOrigin,
  startServer,
  type Origin,
  type ServerProc,
} from './support';

const TID = newTid();
const MUX = 'mux.keepaliveInterval=200ms&mux.keepaliveTimeout=1s';
const TIMEOUT_MS = 1_000;

describe('half-open connector (SIGSTOP)', () => {
  let originA: Origin;
  let originB: Origin;
  let server: ServerProc;

  before(async () => {
    originA = await startOrigin();
    originB = await startOrigin();
    server = await startServer(`tunnel=.example.com:${TID}&${MUX}`, { name: 'server' });
  });
  after(async () => {
    await stopAll();
    await originA.close();
    await originB.close();
  });

  it('is detected by keepalive, removed from selection at once, and traffic moves to the live connector', async (t) => {
    const a = await startClient(server.port, TID, `${LOCAL}:${originA.port}`, { name: 'client-a', query: MUX });
    const b = await startClient(server.port, TID, `${LOCAL}:${originB.port}`, { name: 'client-b', query: MUX });
    await Promise.all([established(server.proc, a.connector), established(server.proc, b.connector)]);

    // Both connectors serve.
    for (let i = 0; i < 20; i++) assert.equal((await request(server.ep, { host: 'x.example.com', path: `/warm/${i}` })).status, 200);
    assert.ok(originA.seen.length > 0 && originB.seen.length > 0, `A ${originA.seen.length}, B ${originB.seen.length}`);

    // Long-lived downloads on both connectors.
    const streams = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        new Promise<{ res: http.IncomingMessage; closedAt?: number }>((resolve, reject) => {
          http
            .get({ host: LOCAL, port: server.ep, path: `/sse?n=0&every=50&i=${i}`, headers: { host: 'x.example.com' }, agent: false }, (res) => {
              const s: { res: http.IncomingMessage; closedAt?: number } = { res };
              res.on('data', () => undefined);
              res.on('error', () => undefined);
              res.on('close', () => (s.closedAt ??= Date.now()));
              resolve(s);
            })
            .on('error', reject);
        }),
      ),
    );
    await sleep(200);
    const onA = originA.seen.filter((u) => u.startsWith('/sse')).length;

    // The client vanishes: no FIN, no RST, no frames.
    const mark = server.proc.mark();
    const stoppedAt = Date.now();
    a.proc.proc.kill('SIGSTOP');
    t.after(() => {
      if (a.proc.alive) a.proc.proc.kill('SIGCONT');
    });
    const line = await removed(server.proc, TID, a.connector, { from: mark, timeoutMs: 15_000 });
    const detectedAfter = Date.parse(String(line.time)) - stoppedAt;
    t.diagnostic(`connector removed ${detectedAfter} ms after SIGSTOP (keepaliveTimeout ${TIMEOUT_MS} ms); ${onA} of 8 downloads were on it`);

    // The downloads that were on the vanished connector end with it (no hang).
    await waitFor(() => streams.filter((s) => s.closedAt !== undefined).length >= onA, 2_000, 'downloads on the dead connector closed');

    // From then on every request goes to the live connector.
    const seenB = originB.seen.length;
    const seenA = originA.seen.length;
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => request(server.ep, { host: 'x.example.com', path: `/after/${i}`, timeoutMs: 3_000 }).then(
        (r) => r.status,
        (e: Error) => e.message,
      )),
    );
    assert.deepEqual(results.filter((s) => s !== 200), [], 'requests after the removal failed');
    assert.equal(originB.seen.length - seenB, 30);
    assert.equal(originA.seen.length, seenA);
    for (const s of streams) s.res.destroy();

    // Within the configured timeout after the last frame, plus scheduling slack (a check runs
    // every tenth of the timeout); smux's once-per-window check would take up to twice the timeout.
    assert.ok(detectedAfter <= TIMEOUT_MS + 500, `the silent connector was removed ${detectedAfter} ms after it stopped (keepaliveTimeout ${TIMEOUT_MS} ms)`);
  });

  it('the paused client, resumed, registers again and serves', async () => {
    // Whatever state the first test left: a resumed client notices its dead session and binds anew.
    const c = await startClient(server.port, TID, `${LOCAL}:${originA.port}`, { name: 'client-c', query: MUX });
    const mark = server.proc.mark();
    c.proc.proc.kill('SIGSTOP');
    await removed(server.proc, TID, c.connector, { from: mark, timeoutMs: 5_000 });
    const m2 = c.proc.mark();
    c.proc.proc.kill('SIGCONT');
    const again = await c.proc.tunnelCreated({ from: m2, timeoutMs: 10_000 });
    assert.notEqual(/connector=([0-9a-f-]+)/.exec(String(again.msg))![1], c.connector);
  });
});
