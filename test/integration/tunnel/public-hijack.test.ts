/**
 * Taking another tunnel's public name (`tunnel.publicDomain`), as an attacker would: asking
 * for a victim's 16-hex endpoint as a custom name (first after a restart, or while the victim
 * is bound), and waiting out the TTL of a name whose owner stays connected. In memory, with a
 * shared Redis store, and across two servers sharing it.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startApp, httpServer, get, type RunningApp, Stops } from '../../helpers/inproc';
import { connect, readN, waitFor } from '../../helpers/net';
import { sleep } from '../../helpers/local';
import { startRedis, type RedisServer } from '../../helpers/redis';
import { buildBindRequest } from '../../../src/protocol/relay/message';
import { parseTunnelId, tunnelEndpoint } from '../../../src/protocol/relay/tunnel-id';

/** Sends a BIND for `tunnelId` asking for `name`; the status byte of the answer. */
async function bindStatus(port: number, tunnelId: string, name: string): Promise<number> {
  const s = await connect(port);
  try {
    s.write(buildBindRequest({ srcAddr: '127.0.0.1:1', bindAddr: `${name}:0`, tunnelId: parseTunnelId(tunnelId), udp: false }));
    return (await readN(s, 4))[1]!;
  } finally {
    s.destroy();
  }
}

describe('public names cannot be hijacked', () => {
  const stops = new Stops();
  const track = <T extends { stop(): Promise<void> } | { close(): Promise<void> }>(x: T): T => stops.track(x);
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await stops.stopAll();
    await redis?.stop();
  });

  const client = (server: RunningApp, name: string, port: number, id: string): Promise<RunningApp> =>
    startApp({ L: [`rtcp://${name}/127.0.0.1:${port}`], F: [`tunnel://${server.addr()}?tunnel.id=${id}`] });

  for (const store of ['memory', 'redis'] as const) {
    const serverArgs = (extra = '', db = 4): string =>
      `tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel.publicDomain=example.net${store === 'redis' ? `&tunnel.publicStore=redis://${redis.addr}/${db}` : ''}${extra}`;

    test(`${store}: a claim of another tunnel's endpoint is refused, first after a restart and while it is bound`, async () => {
      const victimId = randomUUID();
      const victimEp = tunnelEndpoint(parseTunnelId(victimId));
      const attackerId = randomUUID();
      // The server has just (re)started: nobody holds anything yet.
      const server = track(await startApp({ L: [serverArgs('', 5)] }));
      assert.equal(await bindStatus(server.port(), attackerId, victimEp), 0x03, 'endpoint claimed as a custom name');
      assert.equal(await bindStatus(server.port(), attackerId, victimEp.toUpperCase()), 0x03, 'in upper case');
      const victimSvc = track(await httpServer('victim'));
      const victim = track(await client(server, ':0', victimSvc.port, victimId));
      assert.equal((await victim.bound).publicHost, `${victimEp}.example.net`);
      assert.deepEqual(await get(server.entrypoint(), `${victimEp}.example.net`), { status: 200, body: 'victim' });
      assert.equal(await bindStatus(server.port(), attackerId, victimEp), 0x03, 'while the victim is bound');
      assert.deepEqual(await get(server.entrypoint(), `${victimEp}.example.net`), { status: 200, body: 'victim' });
      assert.ok(server.logs.some((l) => l.level === 'warn' && /reserved for another tunnel's endpoint/.test(String(l.msg))));
      // Its own endpoint asked for explicitly is the tunnel's.
      assert.equal(await bindStatus(server.port(), victimId, victimEp), 0x00);
    });

    test(`${store}: a name whose owner stays connected outlives its TTL; the TTL counts from the owner leaving`, async () => {
      const server = track(await startApp({ L: [serverArgs('&tunnel.publicTTL=2s&tunnel.customTTL=2s', 6)] }));
      const ownerSvc = track(await httpServer('owner'));
      const thiefSvc = track(await httpServer('thief'));
      const ownerId = randomUUID();
      const owner = await client(server, 'shop', ownerSvc.port, ownerId);
      assert.equal((await owner.bound).publicHost, 'shop.example.net');
      await sleep(5000);
      assert.deepEqual(await get(server.entrypoint(), 'shop.example.net'), { status: 200, body: 'owner' });
      const thiefId = randomUUID();
      const thief = track(await client(server, 'shop', thiefSvc.port, thiefId));
      // The answer names what the thief really got: its own endpoint.
      assert.equal((await thief.bound).publicHost, `${tunnelEndpoint(parseTunnelId(thiefId))}.example.net`);
      assert.deepEqual(await get(server.entrypoint(), 'shop.example.net'), { status: 200, body: 'owner' });
      assert.deepEqual(await get(server.entrypoint(), `${tunnelEndpoint(parseTunnelId(ownerId))}.example.net`), { status: 200, body: 'owner' });
      if (store === 'redis') assert.equal(await redis.client(6).get('shop'), ownerId);
      await owner.stop();
      // Gone: after the TTL the name is free.
      await waitFor(async () => (await get(server.entrypoint(), 'shop.example.net')).status === 502, 20_000, 'name expired');
      if (store === 'redis') await waitFor(async () => (await redis.client(6).exists('shop')) === 0, 20_000, 'key expired');
      const next = track(await client(server, 'shop', thiefSvc.port, thiefId));
      assert.equal((await next.bound).publicHost, 'shop.example.net');
    });
  }

  test('two servers sharing Redis: a held name outlives its TTL at both; an endpoint is refused at the other', async () => {
    const args = 'tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel.publicDomain=example.net&tunnel.customTTL=2s&tunnel.publicTTL=2s';
    const s1 = track(await startApp({ L: [`${args}&tunnel.publicStore=redis://${redis.addr}/7`] }));
    const s2 = track(await startApp({ L: [`${args}&tunnel.publicStore=redis://${redis.addr}/7`] }));
    const ownerSvc = track(await httpServer('owner'));
    const thiefSvc = track(await httpServer('thief'));
    const ownerId = randomUUID();
    const owner = track(await client(s1, 'hello', ownerSvc.port, ownerId));
    assert.equal((await owner.bound).publicHost, 'hello.example.net');
    await sleep(5000);
    const thiefId = randomUUID();
    const thief = track(await client(s2, 'hello', thiefSvc.port, thiefId));
    assert.equal((await thief.bound).publicHost, `${tunnelEndpoint(parseTunnelId(thiefId))}.example.net`);
    assert.equal((await get(s2.entrypoint(), 'hello.example.net')).status, 502);
    assert.equal(await bindStatus(s2.port(), thiefId, tunnelEndpoint(parseTunnelId(ownerId))), 0x03);
    assert.equal(await redis.client(7).get('hello'), ownerId);
  });

  test('redis: an endpoint key written for another tunnel (a stale or forged entry) goes to the tunnel it derives from', async () => {
    const victimId = randomUUID();
    const victimEp = tunnelEndpoint(parseTunnelId(victimId));
    const r = redis.client(8);
    await r.set(victimEp, randomUUID(), 'PX', 3600_000);
    const server = track(
      await startApp({ L: [`tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel.publicDomain=example.net&tunnel.publicStore=redis://${redis.addr}/8`] }),
    );
    const svc = track(await httpServer('victim'));
    const victim = track(await client(server, ':0', svc.port, victimId));
    assert.equal((await victim.bound).publicHost, `${victimEp}.example.net`);
    assert.deepEqual(await get(server.entrypoint(), `${victimEp}.example.net`), { status: 200, body: 'victim' });
    assert.equal(await r.get(victimEp), victimId);
  });
});
