/**
 * Service discovery on a Redis under Sentinel (`tunnel.sd=sentinel://…/<master>/<db>`),
 * against a real sentinel (redis-server --sentinel) and a real master: the registration a BIND
 * writes lands in the master's database, in gost-plugins' layout, and a wrong master name or a
 * malformed URL is a config error naming the flag.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startApp, httpServer, Stops } from '../../helpers/inproc';
import { waitFor } from '../../helpers/net';
import { startRedis, startSentinel, type RedisServer } from '../../helpers/redis';
import { parseRedisSdUrl } from '../../../src/sd/sd';

describe('service discovery through Redis Sentinel', () => {
  let redis: RedisServer;
  let sentinel: { port: number; addr: string; stop(): Promise<void> };
  const stops = new Stops();

  before(async () => {
    redis = await startRedis();
    sentinel = await startSentinel(redis, 'fleet');
  });
  after(async () => {
    await stops.stopAll();
    await sentinel?.stop();
    await redis?.stop();
  });

  test('a BIND registers in the master found through the sentinel', async () => {
    const srv = stops.track(
      await startApp({ L: [`tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel.sd=sentinel://${sentinel.addr}/fleet/6`] }),
    );
    const svc = stops.track(await httpServer('x'));
    const id = randomUUID();
    const c = stops.track(await startApp({ L: [`rtcp://:0/127.0.0.1:${svc.port}`], F: [`tunnel://${srv.addr()}?tunnel.id=${id}`] }));
    const b = await c.bound;
    const r = redis.client(6);
    await waitFor(async () => (await r.hlen(id)) === 1, 10_000, 'the registration in the master');
    const entry = JSON.parse((await r.hget(id, b.connectorId))!) as { Node: string; Address: string };
    assert.equal(entry.Node, srv.app.built.tunnelHandlers.get('service-0')!.server.nodeId);
    assert.match(entry.Address, /^127\.0\.0\.1:\d+$/);
    // And the lookup of another node reads it back through the sentinel.
    const other = stops.track(
      await startApp({ L: [`tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel.sd=sentinel://${sentinel.addr}/fleet/6`] }),
    );
    const found = await other.app.built.tunnelHandlers.get('service-0')!.server.sd!.lookup(id);
    assert.deepEqual(
      found.map((s) => s.id),
      [b.connectorId],
    );
  });

  test('URL forms: sentinels, master name, db, credentials; malformed ones are refused with the form expected', () => {
    const p = parseRedisSdUrl('redis+sentinel://:pw@127.0.0.1:26379,10.0.0.2/mymaster/3');
    assert.deepEqual(p.sentinel, {
      name: 'mymaster',
      sentinels: [
        { host: '127.0.0.1', port: 26379 },
        { host: '10.0.0.2', port: 26379 },
      ],
    });
    assert.equal(p.db, 3);
    assert.equal(p.password, 'pw');
    assert.deepEqual(parseRedisSdUrl('sentinel://127.0.0.1:5000/m').sentinel, { name: 'm', sentinels: [{ host: '127.0.0.1', port: 5000 }] });
    for (const bad of ['sentinel://127.0.0.1:26379', 'redis+sentinel://127.0.0.1:26379/m/x', 'sentinel:///m']) {
      assert.throws(() => parseRedisSdUrl(bad), /expected sentinel:\/\/|has no host/, bad);
    }
  });
});
