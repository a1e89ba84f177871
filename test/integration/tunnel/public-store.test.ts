/**
 * Public names in a shared Redis store (`tunnel.publicStore`), against a real redis-server: two
 * servers agree on who owns a custom name, a name survives a server restart, the keys have
 * gost-plugins' layout (bare name → tunnel ID, with an expiry), and a Redis that is down leaves
 * BINDs working from memory.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startApp, httpServer, get, type RunningApp, Stops } from '../../helpers/inproc';
import { waitFor } from '../../helpers/net';
import { startRedis, type RedisServer } from '../../helpers/redis';
import { parseTunnelId, tunnelEndpoint } from '../../../src/protocol/relay/tunnel-id';

describe('public names in Redis (tunnel.publicStore)', () => {
  let redis: RedisServer;
  const stops = new Stops();
  const track = <T extends { stop(): Promise<void> } | { close(): Promise<void> }>(x: T): T => stops.track(x);

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await stops.stopAll();
    await redis?.stop();
  });

  const serverArgs = (db: number, extra = ''): string =>
    `tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel.publicDomain=example.net&tunnel.publicStore=redis://${redis.addr}/${db}${extra}`;

  const client = (server: RunningApp, name: string, port: number, id: string): Promise<RunningApp> =>
    startApp({ L: [`rtcp://${name}/127.0.0.1:${port}`], F: [`tunnel://${server.addr()}?tunnel.id=${id}`] });

  test("the keys are gost-plugins' layout: the bare name → the tunnel ID, with the TTL as expiry", async () => {
    const server = track(await startApp({ L: [serverArgs(1, '&tunnel.customTTL=30m')] }));
    const svc = track(await httpServer('stored'));
    const id = randomUUID();
    const c = track(await client(server, 'shop', svc.port, id));
    assert.equal((await c.bound).publicHost, 'shop.example.net');
    const r = redis.client(1);
    assert.equal(await r.get('shop'), id);
    const pttl = await r.pttl('shop');
    assert.ok(pttl > 29 * 60_000 && pttl <= 30 * 60_000, `pttl ${pttl}`);
    // The hash endpoint name is stored too, with tunnel.publicTTL (default 24 h).
    const ep = tunnelEndpoint(parseTunnelId(id));
    assert.equal(await r.get(ep), id);
    assert.ok((await r.pttl(ep)) > 23 * 3600_000);
    assert.deepEqual(await get(server.entrypoint(), 'shop.example.net'), { status: 200, body: 'stored' });
  });

  test('two servers sharing the store: a custom name taken at one is refused at the other', async () => {
    const s1 = track(await startApp({ L: [serverArgs(2)] }));
    const s2 = track(await startApp({ L: [serverArgs(2)] }));
    const first = track(await httpServer('first'));
    const second = track(await httpServer('second'));
    const id1 = randomUUID();
    const id2 = randomUUID();
    const c1 = track(await client(s1, 'hello', first.port, id1));
    assert.equal((await c1.bound).publicHost, 'hello.example.net');
    const c2 = track(await client(s2, 'hello', second.port, id2));
    const b2 = await c2.bound;
    assert.equal(b2.publicHost, `${tunnelEndpoint(parseTunnelId(id2))}.example.net`);
    assert.equal((await get(s2.entrypoint(), 'hello.example.net')).status, 502);
    assert.equal((await get(s2.entrypoint(), b2.publicHost!)).body, 'second');
    // The owner itself binding at the second server gets its name there too (HA: a client bound to both).
    const c1b = track(await client(s2, 'hello', first.port, id1));
    assert.equal((await c1b.bound).publicHost, 'hello.example.net');
    assert.equal((await get(s2.entrypoint(), 'hello.example.net')).body, 'first');
  });

  test('a name survives a server restart: its owner gets it back; others do not', async () => {
    const before1 = await startApp({ L: [serverArgs(3, '&tunnel.customTTL=1h')] });
    const owner = track(await httpServer('owner'));
    const other = track(await httpServer('other'));
    const idOwner = randomUUID();
    const c = await client(before1, 'keep', owner.port, idOwner);
    assert.equal((await c.bound).publicHost, 'keep.example.net');
    const r = redis.client(3);
    // Pretend the claim is older: 10 minutes left of its hour.
    await r.pexpire('keep', 10 * 60_000);
    await c.stop();
    await before1.stop();

    const after1 = track(await startApp({ L: [serverArgs(3, '&tunnel.customTTL=1h')] }));
    // Another tunnel asking first after the restart does not get the name.
    const thief = track(await client(after1, 'keep', other.port, randomUUID()));
    assert.notEqual((await thief.bound).publicHost, 'keep.example.net');
    const back = track(await client(after1, 'keep', owner.port, idOwner));
    assert.equal((await back.bound).publicHost, 'keep.example.net');
    assert.deepEqual(await get(after1.entrypoint(), 'keep.example.net'), { status: 200, body: 'owner' });
    // Held again: the expiry counts from when its last connector leaves, a full TTL while it is held.
    const left = await r.pttl('keep');
    assert.ok(left > 10 * 60_000 && left <= 60 * 60_000, `pttl ${left}`);
  });

  test('Redis down: BINDs are answered from memory, one warning; names are stored again once it is back', async () => {
    const down = await startRedis();
    stops.push(() => down.stop());
    await down.kill();
    const server = track(
      await startApp({
        L: [`tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel.publicDomain=example.net&tunnel.publicStore=redis://${down.addr}&tunnel.publicStoreTimeout=500ms`],
      }),
    );
    const svc = track(await httpServer('memory'));
    const t0 = Date.now();
    const c = track(await client(server, 'offline', svc.port, randomUUID()));
    assert.equal((await c.bound).publicHost, 'offline.example.net');
    assert.ok(Date.now() - t0 < 60_000, `bind took ${Date.now() - t0} ms`);
    assert.deepEqual(await get(server.entrypoint(), 'offline.example.net'), { status: 200, body: 'memory' });
    const warns = server.logs.filter((l) => l.level === 'warn' && /public names: redis:\/\//.test(String(l.msg)));
    assert.equal(warns.length, 1, JSON.stringify(server.logs.filter((l) => l.level === 'warn')));
    assert.match(String(warns[0]!.msg), /names are claimed in memory only until it answers/);
    await down.restart();
    const id = randomUUID();
    const c2 = track(await client(server, 'online', svc.port, id));
    await c2.bound;
    await waitFor(async () => (await down.client().get('online')) === id, 5000, 'name stored after Redis came back');
  });

  test('a password in the store URL is never logged', async () => {
    const locked = await startRedis(['--requirepass', 'pub-secret-1']);
    stops.push(() => locked.stop());
    const server = track(
      await startApp({
        L: [`tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel.publicDomain=example.net&tunnel.publicStore=redis://:wrong-secret-2@${locked.addr}&tunnel.publicStoreTimeout=500ms`],
      }),
    );
    const svc = track(await httpServer('x'));
    const c = track(await client(server, 'pw', svc.port, randomUUID()));
    assert.equal((await c.bound).publicHost, 'pw.example.net');
    await waitFor(() => server.logs.some((l) => l.level === 'warn' && /public names/.test(String(l.msg))), 5000, 'warning');
    assert.ok(!JSON.stringify(server.logs).includes('wrong-secret-2'));
  });
});
