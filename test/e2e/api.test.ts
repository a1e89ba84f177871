/**
 * The web API against the real CLI: credentials, CORS preflight, the Origin and JSON-only checks
 * of state-changing routes, redaction of GET /config, gost's error shape, the 501 of gost's
 * kinds burrow does not implement, /docs, pathPrefix, the Host check of an API without credentials,
 * health on the metrics address, and the config errors of an exposed API without credentials.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import { burrow, stopAll, tempFile, type BurrowProcess } from '../helpers/cli';
import { apiCall, apiPort, basic, metricsPort } from '../helpers/api';
import { rawHttp } from './support';

after(stopAll);

const BIND_SECRET = 'bind-secret-7f3a';
const AUTHER_SECRET = 'auther-secret-91c2';
const REDIS_SECRET = 'redis-secret-5d0e';
const STORE_SECRET = 'store-secret-c4b8';
const API_SECRET = 'api-secret-2e6d';
const ALL_SECRETS = [BIND_SECRET, AUTHER_SECRET, REDIS_SECRET, STORE_SECRET, API_SECRET];

function configYaml(api: string): string {
  return `services:
- name: tunnel-server
  addr: 127.0.0.1:0
  handler:
    type: tunnel
    auther: users
    metadata:
      tunnel.bindAuth: "client:${BIND_SECRET}"
      tunnel.publicDomain: example.test
      tunnel.publicStore: "redis://:${STORE_SECRET}@127.0.0.1:1/0"
      tunnel.publicStoreTimeout: 200ms
  listener:
    type: tcp
authers:
- name: users
  auths:
  - username: visitor
    password: ${AUTHER_SECRET}
ingresses:
- name: rules
  redis:
    addr: 127.0.0.1:1
    password: ${REDIS_SECRET}
    key: burrow-test
${api}
`;
}

const STRANGER = { origin: 'http://evil.example' };

describe('web API with credentials', () => {
  let server: BurrowProcess;
  let port: number;
  const auth = { authorization: basic('admin', API_SECRET) };

  before(async () => {
    const file = tempFile(
      'api.yaml',
      configYaml(`api:
  addr: 127.0.0.1:0
  auth:
    username: admin
    password: ${API_SECRET}
  allowOrigins: [ "https://ui.example.com" ]`),
    );
    server = burrow(['-C', file], { name: 'server' });
    port = await apiPort(server);
  });

  it('refuses a request without or with wrong credentials (401, gost shape)', async () => {
    for (const headers of [{} as Record<string, string>, { authorization: basic('admin', 'wrong') }, { authorization: basic('nobody', API_SECRET) }, { authorization: 'Bearer x' }]) {
      for (const path of ['/config', '/status', '/events', '/config/reload']) {
        const r = await apiCall(port, path === '/config/reload' ? 'POST' : 'GET', path, { headers });
        assert.equal(r.status, 401, `${path} with ${JSON.stringify(headers)}`);
        assert.deepEqual(r.json, { code: 40100, msg: 'unauthorized' });
        assert.match(String(r.headers['www-authenticate']), /^Basic /);
      }
    }
    const ok = await apiCall(port, 'GET', '/status', { headers: auth });
    assert.equal(ok.status, 200);
    assert.equal(ok.json.services[0].name, 'tunnel-server');
  });

  it('answers health and the API description without credentials', async () => {
    const h = await apiCall(port, 'GET', '/healthz');
    assert.equal(h.status, 200);
    assert.deepEqual(h.json, { status: 'ok' });
    const docs = await apiCall(port, 'GET', '/docs');
    assert.equal(docs.status, 200);
    const doc = parseYaml(docs.text) as { swagger: string; paths: Record<string, unknown> };
    assert.equal(doc.swagger, '2.0');
    for (const p of ['/config', '/status', '/events', '/healthz', '/readyz']) assert.ok(doc.paths[p], p);
  });

  it('answers a CORS preflight as gost does, without credentials', async () => {
    const r = await apiCall(port, 'OPTIONS', '/config/services', {
      headers: {
        origin: 'http://gost-ui.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type,authorization',
        'access-control-request-private-network': 'true',
      },
    });
    assert.equal(r.status, 204);
    assert.equal(r.headers['access-control-allow-origin'], '*');
    assert.equal(r.headers['access-control-allow-methods'], 'GET,POST,PUT,DELETE,OPTIONS');
    assert.equal(r.headers['access-control-allow-headers'], '*');
    assert.equal(r.headers['access-control-allow-private-network'], 'true');
    const get = await apiCall(port, 'GET', '/status', { headers: { ...auth, origin: 'http://gost-ui.example' } });
    assert.equal(get.status, 200);
    assert.equal(get.headers['access-control-allow-origin'], '*');
  });

  it('refuses a state change from a foreign origin (403) and accepts its own and allowed ones', async () => {
    const json = { ...auth, 'content-type': 'application/json' };
    const foreign = await apiCall(port, 'POST', '/config/reload', { headers: { ...json, ...STRANGER }, body: '{}' });
    assert.equal(foreign.status, 403);
    assert.equal(foreign.json.code, 40300);
    assert.match(foreign.json.msg, /evil\.example/);
    // The API's own origin and an allowed one pass the check and reach the route (a reload of
    // the unchanged file here).
    for (const origin of [`http://127.0.0.1:${port}`, 'https://ui.example.com']) {
      const r = await apiCall(port, 'POST', '/config/reload', { headers: { ...json, origin }, body: '{}' });
      assert.equal(r.status, 200, origin);
      assert.deepEqual(r.json.data.unchanged, ['tunnel-server']);
    }
    // A foreign origin on DELETE and PUT too.
    for (const method of ['PUT', 'DELETE']) {
      const r = await apiCall(port, method, '/config/services/tunnel-server', { headers: { ...json, ...STRANGER }, body: '{}' });
      assert.equal(r.status, 403, method);
    }
  });

  it('refuses a form-encoded or untyped body on a state-changing route (415) and bad JSON (400)', async () => {
    for (const type of ['application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'text/plain']) {
      const r = await apiCall(port, 'POST', '/config/services', { headers: { ...auth, 'content-type': type }, body: 'name=x&addr=:80' });
      assert.equal(r.status, 415, type);
      assert.equal(r.json.code, 41500);
    }
    const untyped = await apiCall(port, 'POST', '/config/services', { headers: auth, body: '{"name":"x"}' });
    assert.equal(untyped.status, 415);
    const bad = await apiCall(port, 'POST', '/config/services', { headers: { ...auth, 'content-type': 'application/json' }, body: '{"name":' });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.code, 40001);
  });

  it("answers 501 for gost's kinds burrow does not implement, 400/405/404 otherwise", async () => {
    const json = { ...auth, 'content-type': 'application/json' };
    const cases: Array<[string, string]> = [
      ['GET', '/config/limiters'],
      ['POST', '/config/bypasses'],
      ['PUT', '/config/admissions/a'],
      ['DELETE', '/config/limiters/l'],
      ['POST', '/config/rlimiters'],
    ];
    for (const [method, path] of cases) {
      const r = await apiCall(port, method, path, { headers: json, ...(method === 'GET' ? {} : { body: '{"name":"x","addr":":0"}' }) });
      assert.equal(r.status, 501, `${method} ${path}`);
      assert.equal(r.json.code, 50100);
      assert.match(r.json.msg, /does not implement/);
    }
    // An incomplete service (no handler) is refused, and changes nothing.
    const incomplete = await apiCall(port, 'POST', '/config/services', { headers: json, body: '{"name":"x","addr":":0"}' });
    assert.equal(incomplete.status, 400);
    assert.equal(incomplete.json.code, 40001);
    assert.equal((await apiCall(port, 'GET', '/config/services', { headers: auth })).status, 200);
    assert.equal((await apiCall(port, 'PUT', '/config/services', { headers: json, body: '{}' })).status, 405);
    assert.equal((await apiCall(port, 'DELETE', '/status', { headers: auth })).status, 405);
    const missing = await apiCall(port, 'GET', '/nothing-here', { headers: auth });
    assert.equal(missing.status, 404);
    assert.equal(missing.json.code, 40004);
    // Nothing changed: the service is still there and the config the same.
    const st = await apiCall(port, 'GET', '/status', { headers: auth });
    assert.deepEqual(
      st.json.services.map((s: { name: string }) => s.name),
      ['tunnel-server'],
    );
  });

  it('redacts secrets from GET /config in json and yaml; shows them when asked with credentials', async () => {
    for (const format of ['json', 'yaml']) {
      const r = await apiCall(port, 'GET', `/config?format=${format}`, { headers: auth });
      assert.equal(r.status, 200, format);
      for (const s of ALL_SECRETS) assert.ok(!r.text.includes(s), `${format} shows ${s}`);
      const cfg = (format === 'json' ? r.json : parseYaml(r.text)) as {
        services: Array<{ handler: { metadata: Record<string, string> } }>;
        authers: Array<{ auths: Array<{ username: string; password: string }> }>;
        ingresses: Array<{ redis: { password: string; addr: string } }>;
        api: { auth: { username: string; password: string } };
      };
      assert.equal(cfg.services[0]!.handler.metadata['tunnel.bindAuth'], '******');
      assert.equal(cfg.authers[0]!.auths[0]!.username, 'visitor');
      assert.equal(cfg.authers[0]!.auths[0]!.password, '******');
      assert.equal(cfg.ingresses[0]!.redis.password, '******');
      assert.equal(cfg.ingresses[0]!.redis.addr, '127.0.0.1:1');
      assert.match(cfg.services[0]!.handler.metadata['tunnel.publicStore']!, /^redis:\/\/:\*+@127\.0\.0\.1:1\/0$/);
      assert.equal(cfg.api.auth.password, '******');
    }
    const shown = await apiCall(port, 'GET', '/config?secrets=true', { headers: auth });
    assert.equal(shown.status, 200);
    for (const s of ALL_SECRETS) assert.ok(shown.text.includes(s), `secrets=true hides ${s}`);
    const bad = await apiCall(port, 'GET', '/config?format=xml', { headers: auth });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.code, 40001);
  });
});

describe('web API without credentials, on loopback', () => {
  let server: BurrowProcess;
  let port: number;
  let mport: number;

  before(async () => {
    const file = tempFile('api-open.yaml', configYaml('api:\n  addr: 127.0.0.1:0\n  pathPrefix: /api\nmetrics:\n  addr: 127.0.0.1:0'));
    server = burrow(['-C', file], { name: 'server-open' });
    port = await apiPort(server);
    mport = await metricsPort(server);
  });

  it('serves under pathPrefix only', async () => {
    assert.equal((await apiCall(port, 'GET', '/api/status')).status, 200);
    assert.equal((await apiCall(port, 'GET', '/api/healthz')).status, 200);
    const outside = await apiCall(port, 'GET', '/status');
    assert.equal(outside.status, 404);
    assert.equal(outside.json.code, 40004);
  });

  it('never shows secrets: there are no credentials to ask with', async () => {
    const r = await apiCall(port, 'GET', '/api/config?secrets=true');
    assert.equal(r.status, 403);
    for (const s of ALL_SECRETS) assert.ok(!r.text.includes(s));
    const plain = await apiCall(port, 'GET', '/api/config');
    assert.equal(plain.status, 200);
    for (const s of ALL_SECRETS) assert.ok(!plain.text.includes(s));
  });

  it('answers only requests addressed to an IP or localhost (DNS rebinding)', async () => {
    const r = await apiCall(port, 'GET', '/api/status', { headers: { host: `rebind.evil.example:${port}` } });
    assert.equal(r.status, 403);
    assert.equal(r.json.code, 40300);
    assert.equal((await apiCall(port, 'GET', '/api/status', { headers: { host: `localhost:${port}` } })).status, 200);
    assert.equal((await apiCall(port, 'GET', '/api/status', { headers: { host: `[::1]:${port}` } })).status, 200);
  });

  it('serves /healthz and /readyz on the metrics address, beside /metrics', async () => {
    const h = await apiCall(mport, 'GET', '/healthz');
    assert.equal(h.status, 200);
    assert.deepEqual(h.json, { status: 'ok' });
    // The ingress and the public store name a Redis on port 1, which nothing answers.
    const r = await apiCall(mport, 'GET', '/readyz');
    assert.equal(r.status, 503);
    assert.equal(r.json.ready, false);
    assert.equal(r.json.checks.listeners.ok, true);
    const redisChecks = Object.entries(r.json.checks as Record<string, { ok: boolean }>).filter(([k]) => k.startsWith('redis '));
    assert.equal(redisChecks.length, 2);
    for (const [k, c] of redisChecks) {
      assert.equal(c.ok, false, k);
      for (const s of ALL_SECRETS) assert.ok(!k.includes(s), `check name shows a secret: ${k}`);
    }
    assert.equal((await apiCall(mport, 'GET', '/metrics')).status, 200);
  });
});

describe('an exposed API without credentials', () => {
  it('is a config error of the -api flag (exit 2) unless allowUnauthenticated', async () => {
    const p = burrow(['-L', 'tunnel://127.0.0.1:0', '-api', '0.0.0.0:0'], { name: 'exposed' });
    const exit = await p.exited;
    assert.equal(exit.code, 2);
    const text = p.output.join('\n');
    assert.match(text, /-api/);
    assert.match(text, /api\.addr/);
    assert.match(text, /no credentials/);
    const q = burrow(['-L', 'tunnel://127.0.0.1:0', '-api', ':0?allowUnauthenticated=true'], { name: 'exposed-ok' });
    const port = await apiPort(q);
    assert.equal((await apiCall(port, 'GET', '/healthz')).status, 200);
    await q.stop();
  });

  it('is a config error of the file (exit 2), naming the file and api.addr', async () => {
    const file = tempFile('exposed.yaml', 'services:\n- name: s\n  addr: 127.0.0.1:0\n  handler: {type: tunnel}\n  listener: {type: tcp}\napi:\n  addr: ":0"\n');
    const p = burrow(['-C', file], { name: 'exposed-file' });
    assert.equal((await p.exited).code, 2);
    const text = p.output.join('\n');
    assert.ok(text.includes(file), text);
    assert.match(text, /api\.addr/);
  });

  it('with credentials it starts on every interface', async () => {
    const p = burrow(['-L', 'tunnel://127.0.0.1:0', '-api', `admin:${API_SECRET}@:0`], { name: 'exposed-auth' });
    const port = await apiPort(p);
    assert.equal((await apiCall(port, 'GET', '/status')).status, 401);
    await p.stop();
  });

  it('refuses an allowOrigins entry that is not an origin (exit 2)', async () => {
    const p = burrow(['-L', 'tunnel://127.0.0.1:0', '-api', '127.0.0.1:0?allowOrigins=https://ui.example.com/path'], { name: 'bad-origin' });
    assert.equal((await p.exited).code, 2);
    assert.match(p.output.join('\n'), /allowOrigins\[0\]/);
  });
});

describe('readiness with a real Redis, and a stranger sending wrong bytes', () => {
  it('/readyz follows the Redis of an ingress: ready while it answers, 503 while it is down', async (t) => {
    const { ensureRedisServer, startRedis } = await import('../helpers/redis');
    const have = ensureRedisServer();
    if (!have.ok) {
      t.skip(have.why);
      return;
    }
    const redis = await startRedis();
    try {
      const file = tempFile(
        'api-redis.yaml',
        `services:\n- name: s\n  addr: 127.0.0.1:0\n  handler: {type: tunnel, ingress: rules}\n  listener: {type: tcp}\ningresses:\n- name: rules\n  redis: {addr: "${redis.addr}", key: burrow-ready}\napi:\n  addr: 127.0.0.1:0\n`,
      );
      const p = burrow(['-C', file], { name: 'server-redis' });
      const port = await apiPort(p);
      const ok = await apiCall(port, 'GET', '/readyz');
      assert.equal(ok.status, 200, ok.text);
      assert.equal(ok.json.checks[`redis ${redis.addr} (ingress rules)`].ok, true);
      await redis.kill();
      const down = await apiCall(port, 'GET', '/readyz');
      assert.equal(down.status, 503);
      assert.equal(down.json.checks[`redis ${redis.addr} (ingress rules)`].ok, false);
      await redis.restart();
      // ioredis reconnects on its own (backing off up to 5 s).
      let again = await apiCall(port, 'GET', '/readyz');
      const deadline = Date.now() + 20_000;
      while (again.status !== 200 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 250));
        again = await apiCall(port, 'GET', '/readyz');
      }
      assert.equal(again.status, 200, again.text);
      await p.stop();
    } finally {
      await redis.stop();
    }
  });

  it('answers garbage with 400 and a close, and keeps serving', async () => {
    const p = burrow(['-L', 'tunnel://127.0.0.1:0', '-api', '127.0.0.1:0'], { name: 'server-garbage' });
    const port = await apiPort(p);
    for (const bytes of ['GARBAGE\r\n\r\n', '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03', 'GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: x\r\n\r\n']) {
      const r = await rawHttp(port, bytes);
      assert.ok(r.closed, JSON.stringify(bytes));
      assert.match(r.data, /^HTTP\/1\.1 400 /);
    }
    // Heads beyond Node's 16 KiB limit: 431, not a hang.
    const long = await apiCall(port, 'GET', `/status?${'a'.repeat(20_000)}`);
    assert.equal(long.status, 431);
    const big = await apiCall(port, 'POST', '/config/services', { headers: { 'content-type': 'application/json' }, body: `{"a":"${'x'.repeat(1_100_000)}"}` }).catch(
      (err: Error) => ({ status: -1, text: err.message }),
    );
    assert.ok(big.status === 413 || big.status === -1, `status ${big.status}`);
    assert.equal((await apiCall(port, 'GET', '/healthz')).status, 200);
    assert.ok(p.alive);
    await p.stop();
  });
});
