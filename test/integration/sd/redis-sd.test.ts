/**
 * Service discovery on a real redis-server (`tunnel.sd=redis://…`): the hash a BIND writes has
 * gost-plugins' layout field for field, registrations are renewed (and written again when Redis
 * lost them), removed when the connector goes, and `lookup` answers other nodes' live entries —
 * another program's included — and never this node's own or expired ones. Redis down at start or
 * mid-run: local routing goes on, one warning, everything registered again when it is back.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startApp, httpServer, get, type RunningApp, Stops } from '../../helpers/inproc';
import { waitFor } from '../../helpers/net';
import { startRedis, type RedisServer } from '../../helpers/redis';
import type { SdRegistry } from '../../../src/sd/registry';

describe('service discovery in Redis (tunnel.sd)', () => {
  let redis: RedisServer;
  const stops = new Stops();

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await stops.stopAll();
    await redis?.stop();
  });

  const server = (url: string, extra = '', ep = '127.0.0.1:0'): Promise<RunningApp> =>
    startApp({ L: [`tunnel://127.0.0.1:0?entrypoint=${ep}&tunnel.sd=${url}${extra}`] });
  const client = (srv: RunningApp, port: number, id: string): Promise<RunningApp> =>
    startApp({ L: [`rtcp://:0/127.0.0.1:${port}`], F: [`tunnel://${srv.addr()}?tunnel.id=${id}`] });
  const registry = (srv: RunningApp): SdRegistry => srv.app.built.tunnelHandlers.get('service-0')!.server.sd!;
  const nodeOf = (srv: RunningApp): string => srv.app.built.tunnelHandlers.get('service-0')!.server.nodeId;

  test("after BIND the database holds gost-plugins' layout: hash = bare tunnel ID, field = connector ID", async () => {
    const srv = stops.track(await server(`redis://${redis.addr}/1`, '&sd.advertise=10.1.2.3:8080&sd.expiration=90s'));
    const svc = stops.track(await httpServer('x'));
    const id = randomUUID();
    const c = stops.track(await client(srv, svc.port, id));
    const b = await c.bound;
    const r = redis.client(1);
    await waitFor(async () => (await r.exists(id)) === 1, 10_000, 'the registration');
    assert.deepEqual(await r.keys('*'), [id]);
    assert.equal(await r.type(id), 'hash');
    const all = await r.hgetall(id);
    assert.deepEqual(Object.keys(all), [b.connectorId]);
    const raw = all[b.connectorId]!;
    const renew = (JSON.parse(raw) as { Renew: number }).Renew;
    // Byte for byte what Go's json.Marshal writes for gost-plugins' struct (field order included).
    assert.equal(raw, JSON.stringify({ Node: nodeOf(srv), Network: 'tcp', Address: '10.1.2.3:8080', Renew: renew }));
    assert.ok(Number.isInteger(renew) && Math.abs(renew - Date.now() / 1000) < 120, `Renew ${renew} in Unix seconds`);
    const pttl = await r.pttl(id);
    assert.ok(pttl > 0 && pttl <= 90_000, `the key expires with sd.expiration (pttl ${pttl})`);
    // Nothing else is written in other databases.
    assert.deepEqual(await redis.client(0).keys('*'), []);
  });

  test('renewal writes the entry again (Renew, expiry) even after Redis lost it; a leaving connector is removed', async () => {
    const srv = stops.track(await server(`redis://${redis.addr}/2`, '&sd.advertise=127.0.0.9:80&tunnel.ttl=100ms'));
    const svc = stops.track(await httpServer('x'));
    const id = randomUUID();
    const c = await client(srv, svc.port, id);
    const b = await c.bound;
    const r = redis.client(2);
    await waitFor(async () => (await r.hexists(id, b.connectorId)) === 1, 10_000, 'the registration');
    // An old entry, about to expire: the next renewal sets Renew and the expiry again.
    await r.hset(id, b.connectorId, JSON.stringify({ Node: nodeOf(srv), Network: 'tcp', Address: '127.0.0.9:80', Renew: 1 }));
    await r.pexpire(id, 600_000);
    await waitFor(
      async () => {
        const v = await r.hget(id, b.connectorId);
        return v !== null && (JSON.parse(v) as { Renew: number }).Renew > 1 && (await r.pttl(id)) <= 60_000;
      },
      10_000,
      'the renewal',
    );
    // The key gone altogether (a Redis that lost its data): the next renewal brings it back.
    await r.del(id);
    await waitFor(async () => (await r.hexists(id, b.connectorId)) === 1, 10_000, 'the entry written again');
    await c.stop();
    await waitFor(async () => (await r.hexists(id, b.connectorId)) === 0, 10_000, 'the deregistration');
    assert.equal(registry(srv).size, 0);
  });

  test('an entry point on all interfaces registers the address this server reaches Redis from', async () => {
    const srv = stops.track(await server(`redis://${redis.addr}/3`, '', '0.0.0.0:0'));
    const svc = stops.track(await httpServer('x'));
    const id = randomUUID();
    const b = await stops.track(await client(srv, svc.port, id)).bound;
    const r = redis.client(3);
    await waitFor(async () => (await r.hexists(id, b.connectorId)) === 1, 10_000, 'the registration');
    const port = srv.entrypoint().split(':').pop();
    assert.equal((JSON.parse((await r.hget(id, b.connectorId))!) as { Address: string }).Address, `127.0.0.1:${port}`);
  });

  test("lookup: other nodes' live entries (another program's too), never its own, expired or malformed ones", async () => {
    const url = `redis://${redis.addr}/4`;
    const a = stops.track(await server(url, '&sd.expiration=60s'));
    const bsrv = stops.track(await server(url, '&sd.expiration=60s'));
    const svc = stops.track(await httpServer('x'));
    const id = randomUUID();
    const bound = await stops.track(await client(bsrv, svc.port, id)).bound;
    const r = redis.client(4);
    await waitFor(async () => (await r.hexists(id, bound.connectorId)) === 1, 10_000, 'the registration');
    // Written by another program in the same layout: a gost node behind gost-plugins.
    const now = Math.floor(Date.now() / 1000);
    await r.hset(id, 'gost-connector', JSON.stringify({ Node: 'gost-node', Network: 'tcp', Address: '10.9.9.9:80', Renew: now }));
    await r.hset(id, 'gost-udp', JSON.stringify({ Node: 'gost-node', Network: 'udp', Address: '10.9.9.9:80', Renew: now }));
    await r.hset(id, 'stale', JSON.stringify({ Node: 'dead-node', Network: 'tcp', Address: '10.8.8.8:80', Renew: now - 3600 }));
    await r.hset(id, 'garbage', '{"Node": ');
    await r.hset(id, 'no-address', JSON.stringify({ Node: 'n', Network: 'tcp', Address: '', Renew: now }));
    await r.hset(id, 'wrong-types', JSON.stringify({ Node: 7, Network: 'tcp', Address: ['x'], Renew: 'now' }));

    const fromA = await registry(a).lookup(id, 'tcp');
    const byId = (l: Array<{ id: string }>) => l.map((s) => s.id).sort();
    assert.deepEqual(byId(fromA), [bound.connectorId, 'gost-connector'].sort());
    const mine = fromA.find((s) => s.id === bound.connectorId)!;
    assert.deepEqual(mine, { id: bound.connectorId, name: id, node: nodeOf(bsrv), network: 'tcp', address: bsrv.entrypoint() });
    assert.deepEqual(byId(await registry(a).lookup(id, 'udp')), ['gost-udp']);
    // B holds the tunnel itself: its own entry is not a remote node.
    assert.deepEqual(byId(await registry(bsrv).lookup(id, 'tcp')), ['gost-connector']);
    assert.deepEqual(await registry(a).lookup(randomUUID()), []);
  });

  test('Redis down at start and mid-run: local routing goes on, one warning per outage, registrations sent again', async () => {
    const flaky = await startRedis();
    stops.push(() => flaky.stop());
    await flaky.kill();
    const srv = stops.track(await server(`redis://${flaky.addr}/0`, '&sd.advertise=127.0.0.5:80&tunnel.ttl=200ms&tunnel.publicDomain=example.net'));
    const svc = stops.track(await httpServer('local'));
    const id = randomUUID();
    const c1 = stops.track(await client(srv, svc.port, id));
    const b1 = await c1.bound;
    const host = b1.publicHost!;
    assert.deepEqual(await get(srv.entrypoint(), host), { status: 200, body: 'local' });
    const sdWarnings = (): Array<Record<string, unknown>> => srv.logs.filter((l) => l.level === 'warn' && /^sd redis/.test(String(l.msg)));
    await waitFor(() => sdWarnings().length >= 1, 10_000, 'the warning');
    assert.match(String(sdWarnings()[0]!.msg), /local routing goes on/);
    await flaky.restart();
    await waitFor(async () => (await flaky.client().hexists(id, b1.connectorId)) === 1, 10_000, 'registered once Redis is up');
    // The info line follows the store's answer, which may come a moment after the key is there.
    await waitFor(() => srv.logs.some((l) => l.level === 'info' && /answers again/.test(String(l.msg))), 10_000, 'the "answers again" line');

    // Mid-run: Redis goes (and comes back empty).
    await flaky.kill();
    const c2 = stops.track(await client(srv, svc.port, id));
    const b2 = await c2.bound;
    assert.deepEqual(await get(srv.entrypoint(), host), { status: 200, body: 'local' });
    await waitFor(() => sdWarnings().length >= 2, 10_000, 'the second outage warning');
    // Several renewal rounds fail meanwhile; still one warning for this outage.
    const failing = srv.logs.length;
    await waitFor(() => srv.logs.slice(failing).filter((l) => /still failing/.test(String(l.msg))).length >= 2, 10_000, 'more failed rounds');
    assert.equal(sdWarnings().length, 2, JSON.stringify(sdWarnings()));
    await flaky.restart();
    const r = flaky.client();
    await waitFor(async () => (await r.hlen(id)) === 2, 10_000, 'both connectors registered again');
    assert.deepEqual(Object.keys(await r.hgetall(id)).sort(), [b1.connectorId, b2.connectorId].sort());
  });

  test('a password in the URL is never logged', async () => {
    const locked = await startRedis(['--requirepass', 'sd-secret-1']);
    stops.push(() => locked.stop());
    const srv = stops.track(await server(`redis://:wrong-sd-secret@${locked.addr}/0`, '&sd.advertise=127.0.0.5:80'));
    const svc = stops.track(await httpServer('x'));
    await stops.track(await client(srv, svc.port, randomUUID())).bound;
    await waitFor(() => srv.logs.some((l) => l.level === 'warn' && /^sd redis/.test(String(l.msg))), 10_000, 'the warning');
    assert.ok(!JSON.stringify(srv.logs).includes('wrong-sd-secret'));
  });
});
