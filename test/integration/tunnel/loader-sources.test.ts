/**
 * The redis and http sources of ingresses and authers (behavior.md §1.1, config.md §2.5–2.6,
 * §6.20), against a real redis-server (Debian's package, started here) and a real HTTP server on
 * 127.0.0.1: formats (hash, set, file-format bodies), gost's priority (inline < file < redis <
 * http), reloads, and sources that are down, slow, wrong or password-protected.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { Ingress } from '../../../src/ingress/ingress';
import { Auther } from '../../../src/auth/auther';
import { RedisSource } from '../../../src/loader/sources';
import { capturingLogger } from '../../helpers/replay';
import { connect, readN, waitFor } from '../../helpers/net';
import { startDirectServerWithAuther } from '../../helpers/inproc';
import { buildConnectRequest } from '../../../src/protocol/relay/message';
import { parseTunnelId } from '../../../src/protocol/relay/tunnel-id';
import { LOCAL } from '../../helpers/local';
import { startRedis, type RedisServer } from '../../helpers/redis';

const A = '4d21094e-b74c-4916-86c1-d9fa36ea677b';
const B = 'ac74d9dd-3125-442a-a7c1-f9e49e05faca';
const C = 'aede1f6a-762b-45da-b937-b6632356555a';
const D = '9fd6c586-86f9-49c1-a03a-d4876851695a';

/** An HTTP server whose answer the test sets: status, body, or no answer at all. */
async function startRulesServer(): Promise<{
  url: string;
  set(status: number, body: string): void;
  hang(on: boolean): void;
  requests: number;
  /** Requests per URL path. */
  paths: Map<string, number>;
  close(): Promise<void>;
}> {
  let status = 200;
  let body = '';
  let hanging = false;
  const state = { requests: 0 };
  const paths = new Map<string, number>();
  const server = http.createServer((req, res) => {
    state.requests++;
    const path = (req.url ?? '').split('?')[0]!;
    paths.set(path, (paths.get(path) ?? 0) + 1);
    if (hanging) return; // never answers
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, LOCAL, resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://${LOCAL}:${port}/rules`,
    set(s, b) {
      status = s;
      body = b;
    },
    hang(on) {
      hanging = on;
    },
    get requests() {
      return state.requests;
    },
    paths,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const warnings = (lines: Array<Record<string, unknown>>): string[] =>
  lines.filter((l) => l.level === 'warn').map((l) => String(l.msg));

describe('ingress and auther redis/http sources', () => {
  let redis: RedisServer;
  let web: Awaited<ReturnType<typeof startRulesServer>>;
  const closers: Array<() => unknown> = [];

  before(async () => {
    redis = await startRedis();
    web = await startRulesServer();
  });
  after(async () => {
    for (const c of closers.splice(0).reverse()) await c();
    await web?.close();
    await redis?.stop();
  });

  test('redis hash (the default type): HGETALL key, field = host, value = endpoint; reloaded every period', async () => {
    const r = redis.client(1);
    await r.hset('gost:ingresses:ingress-0', 'example.com', A, '*.example.org', `$${B}`);
    const { logger, lines } = capturingLogger();
    const ing = new Ingress({
      name: 'ingress-0',
      redis: { addr: redis.addr, db: 1, key: 'gost:ingresses:ingress-0' },
      reloadMs: 1000,
      logger,
    });
    closers.push(() => ing.close());
    await ing.start();
    assert.deepEqual(ing.lookup('example.com'), { tunnelId: A, private: false });
    assert.deepEqual(ing.lookup('www.example.org'), { tunnelId: B, private: true });
    assert.equal(ing.size, 2);
    // Changes at the source show at the next reload; a removed field is gone.
    await r.hdel('gost:ingresses:ingress-0', 'example.com');
    await r.hset('gost:ingresses:ingress-0', 'new.example.net', C);
    await waitFor(() => ing.lookup('new.example.net')?.tunnelId === C, 5000, 'redis reload');
    assert.equal(ing.lookup('example.com'), undefined);
    assert.deepEqual(warnings(lines), []);
  });

  test('redis set: SMEMBERS key, each member a "hostname endpoint" line; the default key is "gost"', async () => {
    const r = redis.client(2);
    await r.sadd('gost', `set.example.com ${A}`, `  other.example.com\t${B}  `, 'no-endpoint-here', '# a comment');
    const ing = new Ingress({ name: 's', redis: { addr: redis.addr, db: 2, type: 'set' }, logger: capturingLogger().logger });
    closers.push(() => ing.close());
    await ing.start();
    assert.equal(ing.lookup('set.example.com')?.tunnelId, A);
    assert.equal(ing.lookup('other.example.com')?.tunnelId, B);
    assert.equal(ing.size, 2);
  });

  test('a missing key reads as no rules, without a warning', async () => {
    const { logger, lines } = capturingLogger();
    const ing = new Ingress({ name: 'm', redis: { addr: redis.addr, db: 3, key: 'nothing-here' }, logger });
    closers.push(() => ing.close());
    await ing.start();
    assert.equal(ing.size, 0);
    assert.deepEqual(warnings(lines), []);
  });

  test('a key of the wrong Redis type: a warning naming the source, no rules from it', async () => {
    const r = redis.client(4);
    await r.set('gost', 'a string, not a hash');
    const { logger, lines } = capturingLogger();
    const ing = new Ingress({ name: 'w', rules: [{ hostname: 'inline.com', endpoint: A }], redis: { addr: redis.addr, db: 4 }, logger });
    closers.push(() => ing.close());
    await ing.start();
    assert.equal(ing.lookup('inline.com')?.tunnelId, A);
    assert.equal(ing.size, 1);
    const w = warnings(lines);
    assert.equal(w.length, 1, w.join('\n'));
    assert.match(w[0]!, /ingress w: redis 127\.0\.0\.1:\d+ db 4 key gost: WRONGTYPE/);
  });

  test('http source: GET the URL, body in the file format; only 200 counts; periodic reload', async () => {
    web.set(200, `# hostname endpoint\n\nweb.example.com  ${A}\nbad-line\nwild.example.com\t$${B}\n`);
    const { logger, lines } = capturingLogger();
    // A generous source timeout: this case is about what is read, not how fast (a loaded machine).
    const ing = new Ingress({ name: 'h', http: { url: web.url, timeoutMs: 30_000 }, reloadMs: 1000, logger });
    closers.push(() => ing.close());
    await ing.start();
    assert.equal(ing.lookup('web.example.com')?.tunnelId, A);
    assert.deepEqual(ing.lookup('wild.example.com'), { tunnelId: B, private: true });
    assert.equal(ing.size, 2);
    // A non-200 answer: one warning, and the source contributes nothing for that round.
    web.set(500, `web.example.com ${C}\n`);
    await waitFor(() => ing.size === 0, 60_000, 'http 500 round');
    assert.ok(warnings(lines).some((m) => /ingress h: http http:\/\/127\.0\.0\.1:\d+\/rules: status 500 \(expected 200\)/.test(m)));
    // Back to 200: the rules return, and one info line says the source answers again.
    web.set(200, `web.example.com ${C}\n`);
    await waitFor(() => ing.lookup('web.example.com')?.tunnelId === C, 60_000, 'http recovery');
    await waitFor(() => lines.some((l) => l.level === 'info' && /answers again/.test(String(l.msg))), 3000, 'recovery line');
  });

  test('an http source that never answers times out (the timeout option) and does not hold up start', async () => {
    web.hang(true);
    try {
      const { logger, lines } = capturingLogger();
      const ing = new Ingress({ name: 't', rules: [{ hostname: 'inline.com', endpoint: A }], http: { url: web.url, timeoutMs: 300 }, logger });
      closers.push(() => ing.close());
      const t0 = Date.now();
      await ing.start();
      const took = Date.now() - t0;
      assert.ok(took >= 250 && took < 60_000, `start took ${took} ms`);
      assert.equal(ing.lookup('inline.com')?.tunnelId, A);
      assert.ok(warnings(lines).some((m) => m.includes('no answer within 300 ms')), warnings(lines).join('\n'));
    } finally {
      web.hang(false);
    }
  });

  test('a source slower than the reload period gets one request at a time, not a growing queue', async () => {
    web.hang(true);
    try {
      const url = web.url.replace(/\/rules$/, '/slow');
      const ing = new Ingress({ name: 'slow', http: { url, timeoutMs: 2500 }, reloadMs: 1000, logger: capturingLogger().logger });
      closers.push(() => ing.close());
      void ing.start();
      // 6 s: six reload periods, but each request takes its 2.5 s timeout: at most three requests.
      await new Promise((r) => setTimeout(r, 6000));
      ing.close();
      const n = web.paths.get('/slow') ?? 0;
      assert.ok(n >= 2 && n <= 3, `${n} requests`);
    } finally {
      web.hang(false);
    }
  });

  test("gost's priority for one host: inline < file < redis < http", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'burrow-sources-'));
    closers.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'rules.txt');
    writeFileSync(file, `all.example.com ${B}\nfile.example.com ${B}\n`);
    const r = redis.client(5);
    await r.hset('gost', 'all.example.com', C, 'redis.example.com', C);
    web.set(200, `all.example.com ${D}\n`);
    const ing = new Ingress({
      name: 'p',
      rules: [
        { hostname: 'all.example.com', endpoint: A },
        { hostname: 'inline.example.com', endpoint: A },
      ],
      filePath: file,
      redis: { addr: redis.addr, db: 5 },
      http: { url: web.url },
      logger: capturingLogger().logger,
    });
    closers.push(() => ing.close());
    await ing.start();
    assert.equal(ing.lookup('all.example.com')?.tunnelId, D);
    assert.equal(ing.lookup('redis.example.com')?.tunnelId, C);
    assert.equal(ing.lookup('file.example.com')?.tunnelId, B);
    assert.equal(ing.lookup('inline.example.com')?.tunnelId, A);
  });

  test('Redis down at start: one warning, start does not hang, the rules arrive once it is up; repeats are not warned again', async () => {
    const down = await startRedis();
    closers.push(() => down.stop());
    await down.kill();
    const { logger, lines } = capturingLogger();
    const ing = new Ingress({ name: 'd', redis: { addr: down.addr }, reloadMs: 1000, logger });
    closers.push(() => ing.close());
    const t0 = Date.now();
    await ing.start();
    assert.ok(Date.now() - t0 < 60_000, `start took ${Date.now() - t0} ms`);
    assert.equal(ing.size, 0);
    await waitFor(() => lines.filter((l) => /still failing/.test(String(l.msg))).length >= 1, 5000, 'a second failed round');
    const w = warnings(lines);
    assert.equal(w.length, 1, w.join('\n'));
    assert.match(w[0]!, new RegExp(`ingress d: redis ${down.addr.replace(/\./g, '\\.')} db 0 key gost: .*ECONNREFUSED`));
    await down.restart();
    await down.client().hset('gost', 'late.example.com', A);
    await waitFor(() => ing.lookup('late.example.com')?.tunnelId === A, 10_000, 'rules after Redis came up');
    assert.ok(lines.some((l) => l.level === 'info' && /ingress d: redis .* answers again/.test(String(l.msg))));
  });

  test('Redis with a password: the right one reads, a wrong one is a warning that never shows the password', async () => {
    const locked = await startRedis(['--requirepass', 's3cret-pass']);
    closers.push(() => locked.stop());
    await locked.client().hset('gost', 'locked.example.com', A);
    const good = new Ingress({ name: 'ok', redis: { addr: locked.addr, password: 's3cret-pass' }, logger: capturingLogger().logger });
    closers.push(() => good.close());
    await good.start();
    assert.equal(good.lookup('locked.example.com')?.tunnelId, A);
    const { logger, lines } = capturingLogger();
    const bad = new Ingress({ name: 'bad', redis: { addr: locked.addr, password: 'wrong-pass-xyz' }, logger });
    closers.push(() => bad.close());
    await bad.start();
    assert.equal(bad.size, 0);
    const w = warnings(lines);
    assert.equal(w.length, 1, w.join('\n'));
    assert.match(w[0]!, /WRONGPASS|invalid username-password/i);
    assert.ok(!JSON.stringify(lines).includes('wrong-pass-xyz'));
  });

  test('Redis ACL user (username + password)', async () => {
    const acl = await startRedis(['--user', 'burrow', 'on', '>acl-pass', '~*', '+@all']);
    closers.push(() => acl.stop());
    const admin = acl.client();
    await admin.hset('gost', 'acl.example.com', B);
    const ing = new Ingress({ name: 'acl', redis: { addr: acl.addr, username: 'burrow', password: 'acl-pass' }, logger: capturingLogger().logger });
    closers.push(() => ing.close());
    await ing.start();
    assert.equal(ing.lookup('acl.example.com')?.tunnelId, B);
  });

  test('auther: redis hash (field = user, value = password) and http lines, later sources win for one user', async () => {
    const r = redis.client(6);
    await r.hset('gost:authers:auther-0', 'alice', 'from-redis', 'bob', 'bob-redis');
    web.set(200, `# username password\nbob bob-http\ncarol carol-http\n`);
    const { logger, lines } = capturingLogger();
    const a = new Auther({
      name: 'auther-0',
      auths: [
        { username: 'alice', password: 'inline' },
        { username: 'dave', password: 'dave-inline' },
      ],
      redis: { addr: redis.addr, db: 6, key: 'gost:authers:auther-0' },
      http: { url: web.url },
      reloadMs: 1000,
      logger,
    });
    closers.push(() => a.close());
    await a.start();
    assert.equal(a.authenticate('alice', 'from-redis', '10.0.0.1:1'), true);
    assert.equal(a.authenticate('alice', 'inline', '10.0.0.2:1'), false);
    assert.equal(a.authenticate('bob', 'bob-http', '10.0.0.3:1'), true);
    assert.equal(a.authenticate('bob', 'bob-redis', '10.0.0.4:1'), false);
    assert.equal(a.authenticate('carol', 'carol-http', '10.0.0.5:1'), true);
    assert.equal(a.authenticate('dave', 'dave-inline', '10.0.0.6:1'), true);
    // A user added in Redis can log in after the next reload.
    await r.hset('gost:authers:auther-0', 'erin', 'erin-redis');
    // (a new client address each try: failed tries count towards the per-IP lockout)
    let n = 0;
    await waitFor(() => a.authenticate('erin', 'erin-redis', `10.0.1.${++n % 250}:1`), 5000, 'auther redis reload');
    assert.deepEqual(warnings(lines), []);
    assert.ok(!JSON.stringify(lines).includes('from-redis'));
  });

  test('auther: a source that fails keeps the users it last gave', async () => {
    web.set(200, 'frank frank-http\n');
    const { logger, lines } = capturingLogger();
    const a = new Auther({ name: 'keep', http: { url: web.url }, reloadMs: 1000, logger });
    closers.push(() => a.close());
    await a.start();
    assert.equal(a.authenticate('frank', 'frank-http', '10.0.2.1:1'), true);
    web.set(503, 'down');
    await waitFor(() => warnings(lines).some((m) => m.includes('status 503')), 5000, 'failed round');
    assert.equal(a.authenticate('frank', 'frank-http', '10.0.2.2:1'), true);
  });

  test("auther http plugin (gost's): POST {service, username, password, client} → {ok}; fails closed", async () => {
    const seen: Array<Record<string, unknown>> = [];
    let status = 200;
    const plugin = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>;
        seen.push({ ...body, method: req.method, type: req.headers['content-type'] });
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ ok: body.username === 'alice' && body.password === 'pw', id: 'alice-id' }));
      });
    });
    await new Promise<void>((r) => plugin.listen(0, LOCAL, () => r()));
    const url = `http://${LOCAL}:${(plugin.address() as { port: number }).port}/auth`;
    closers.push(() => new Promise<void>((r) => plugin.close(() => r())));
    const { logger, lines } = capturingLogger();
    const a = new Auther({ name: 'plug', plugin: { url, timeoutMs: 1000 }, auths: [{ username: 'bob', password: 'inline' }], logger });
    closers.push(() => a.close());
    await a.start();
    assert.equal(await a.check('alice', 'pw', '10.0.3.1:5000', 'service-0'), true);
    assert.deepEqual(seen[0], { service: 'service-0', username: 'alice', password: 'pw', client: '10.0.3.1:5000', method: 'POST', type: 'application/json' });
    assert.equal(await a.check('alice', 'nope', '10.0.3.2:5000'), false);
    // The plugin alone decides: inline users are not used.
    assert.equal(await a.check('bob', 'inline', '10.0.3.3:5000'), false);
    assert.equal(a.authenticate('alice', 'pw', '10.0.3.4:5000'), false, 'the synchronous check never asks a plugin');
    // A plugin answering 500, then one that is gone: refused, one warning each.
    status = 500;
    assert.equal(await a.check('alice', 'pw', '10.0.3.5:5000'), false);
    assert.ok(warnings(lines).some((m) => /auther plug: plugin http:\/\/127\.0\.0\.1:\d+\/auth: status 500/.test(m)), warnings(lines).join('\n'));
    status = 200;
    assert.equal(await a.check('alice', 'pw', '10.0.3.6:5000'), true);
    assert.ok(lines.some((l) => l.level === 'info' && /answers again/.test(String(l.msg))));
    plugin.closeAllConnections();
    await new Promise<void>((r) => plugin.close(() => r()));
    assert.equal(await a.check('alice', 'pw', '10.0.3.7:5000'), false);
    assert.ok(warnings(lines).some((m) => /ECONNREFUSED/.test(m)));
    assert.ok(!JSON.stringify(lines).includes('"pw"'));
  });

  test('a tunnel server with an http plugin auther: CONNECTs the plugin accepts get through auth', async () => {
    const plugin = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString()) as { username: string; password: string; service: string };
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ ok: body.username === 'carol' && body.password === 'c-pw' && body.service === 'service-0' }));
      });
    });
    await new Promise<void>((r) => plugin.listen(0, LOCAL, () => r()));
    closers.push(() => new Promise<void>((r) => plugin.close(() => r())));
    const server = await startDirectServerWithAuther([
      { name: 'auther-0', plugin: { type: 'http', addr: `http://${LOCAL}:${(plugin.address() as { port: number }).port}/` } },
    ]);
    closers.push(() => server.stop());
    const status = async (u: string, p: string): Promise<number> => {
      const sock = await connect(server.port());
      sock.write(buildConnectRequest({ srcAddr: '127.0.0.1:1', dstAddr: ':0', tunnelId: parseTunnelId(A), udp: false, auth: { username: u, password: p } }));
      const resp = await readN(sock, 4);
      sock.destroy();
      return resp[1]!;
    };
    // Accepted, then no connector for the tunnel (0x05); refused: unauthorized (0x02).
    assert.equal(await status('carol', 'c-pw'), 0x05);
    assert.equal(await status('carol', 'wrong'), 0x02);
  });

  test('RedisSource: a closed source refuses to load; bad types are refused at construction', async () => {
    const s = new RedisSource({ addr: redis.addr });
    assert.deepEqual(await s.load(), { kind: 'hash', entries: [] });
    s.close();
    await assert.rejects(s.load(), /closed/);
    assert.throws(() => new RedisSource({ addr: redis.addr, type: 'zset' }), /expected hash or set/);
  });
});
