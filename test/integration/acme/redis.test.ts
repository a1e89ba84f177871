/**
 * Servers sharing Redis (a real redis-server) against pebble: one server answers the CA's
 * challenge for another's order (HTTP-01 and TLS-ALPN-01), concurrent first handshakes on two
 * servers make one order, and a third server starting later serves the certificate from Redis
 * without ordering; with Redis down, names pass through.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { acmeSetup as setup, handshake } from '../../helpers/acme';
import { startRedis } from '../../helpers/redis';
import { memoryLogger } from '../../helpers/net';

test('servers sharing Redis: challenges answered by any, each name issued once', async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const s = await setup(t);
  const url = `redis://${redis.addr}/0`;
  const dirs = [`${s.storage}-a`, `${s.storage}-b`, `${s.storage}-c`];
  t.after(async () => {
    for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
  });
  const a = s.manager({ redis: url, storageDir: dirs[0], challenges: ['http-01'] });
  const b = s.manager({ redis: url, storageDir: dirs[1], challenges: ['http-01'] });
  await Promise.all([a.start(), b.start()]);
  const root = await s.pebble.rootPem();

  // A orders; the CA's requests reach B only, which answers from what A published.
  s.edge.answerer = b;
  s.live.add('one.example.test');
  const ctx = await a.contextFor('one.example.test');
  assert.ok(ctx, s.pebble.output());
  assert.equal(a.stats.orders, 1);
  assert.ok(s.edge.challengeAnswers.some((x) => x.status === 200), 'B answered A\'s HTTP-01 token');
  assert.equal(b.stats.orders, 0);

  // The same for TLS-ALPN-01.
  const a2 = s.manager({ redis: url, storageDir: dirs[0], challenges: ['tls-alpn-01'] });
  await a2.start();
  s.live.add('alpn.example.test');
  assert.ok(await a2.contextFor('alpn.example.test'), s.pebble.output());
  assert.ok(s.edge.alpnAnswers.includes('alpn.example.test'), 'B answered A\'s TLS-ALPN-01 challenge');
  assert.deepEqual(s.edge.alpnUnanswered, []);

  // Concurrent first handshakes on A and B for a new name: one order between them.
  s.live.add('both.example.test');
  const before = a.stats.orders + b.stats.orders;
  const [ca, cb] = await Promise.all([a.contextFor('both.example.test'), b.contextFor('both.example.test')]);
  assert.ok(ca && cb, s.pebble.output());
  assert.equal(a.stats.orders + b.stats.orders - before, 1, 'one order for both.example.test');
  assert.equal(a.stats.adopted + b.stats.adopted, 1, 'the other server took it from Redis');
  s.edge.provider = a;
  const viaA = await handshake(s.edge.port, 'both.example.test', root);
  s.edge.provider = b;
  const viaB = await handshake(s.edge.port, 'both.example.test', root);
  assert.equal(viaA.error, undefined);
  assert.equal(viaA.cert?.serialNumber, viaB.cert?.serialNumber, 'both serve the same certificate');

  // A server started later serves all three from Redis, ordering nothing.
  const c = s.manager({ redis: url, storageDir: dirs[2] });
  await c.start();
  assert.deepEqual(new Set(c.names()), new Set(['one.example.test', 'alpn.example.test', 'both.example.test']));
  s.edge.provider = c;
  for (const n of c.names()) assert.equal((await handshake(s.edge.port, n, root)).error, undefined, n);
  assert.equal(c.stats.orders, 0);
  // Nothing of it on disk: with Redis the storage directory stays empty.
  for (const d of dirs) await assert.rejects(fs.stat(`${d}`));

  // Close leaves no connection to Redis open.
  for (const m of [a, b, a2, c]) await m.close();
  const admin = redis.client();
  const clients = String(await admin.client('LIST')).trim().split('\n');
  assert.equal(clients.length, 1, clients.join('\n'));
});

test('Redis down: the name passes through, one warning per cause, and close does not hang', async (t) => {
  const redis = await startRedis();
  const url = `redis://${redis.addr}/0`;
  await redis.kill();
  t.after(() => redis.stop());
  const s = await setup(t);
  const log = memoryLogger('debug');
  const m = s.manager({ redis: url, storageDir: `${s.storage}-down`, logger: log.logger, retryMinMs: 3_600_000 });
  s.edge.provider = m;
  s.edge.answerer = m;
  s.live.add('down.example.test');
  const root = await s.pebble.rootPem();
  for (let i = 0; i < 3; i++) assert.ok((await handshake(s.edge.port, 'down.example.test', root)).error);
  assert.equal(m.stats.orders, 0, 'no order without the lock');
  assert.equal(m.stats.failures, 1, 'later handshakes fall in the back-off');
  assert.equal(log.lines.filter((l) => l['msg'] === 'ACME order failed; the name passes through until a retry succeeds').length, 1);
  assert.equal(log.lines.filter((l) => l['msg'] === 'ACME store: Redis error').length, 1);
  await m.close();
});
