/**
 * The config routes of the web API against the real CLI: list/get/create/update/delete of every
 * kind burrow implements, with gost's payloads and `{code, msg}`; a service created through the
 * API accepts connections; an ingress rule changed through the API routes at once, without a
 * tunnel session dropping; bad payloads get 400 and change nothing; POST /config saves to the
 * loaded file; and the attacks: a stranger without credentials, a form-encoded POST, a
 * cross-origin POST.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { burrow, tempFile, type BurrowProcess } from '../helpers/cli';
import { apiCall, apiPort, basic, EventStream } from '../helpers/api';
import { tunnelClientYaml } from '../helpers/local';
import { bannerExchange, Cleanup, httpRequest, LOCAL, startBannerEcho, startHttpService, type HttpService } from './support';

const cleanup = new Cleanup();
after(() => cleanup.run());

const SECRET = 'api-secret-83d1';
const TID_A = '0b2f4a5e-1c3d-4e5f-8a9b-0c1d2e3f4a5b';
const TID_B = '7c8d9e0f-1a2b-4c3d-9e4f-5a6b7c8d9e0f';
const auth = { authorization: basic('admin', SECRET) };
const json = { ...auth, 'content-type': 'application/json' };

function serverYaml(): string {
  return `services:
- name: tunnel
  addr: ${LOCAL}:0
  handler:
    type: tunnel
    ingress: rules
    metadata:
      entrypoint: ${LOCAL}:0
  listener:
    type: tcp
ingresses:
- name: rules
  rules:
  - hostname: app.test
    endpoint: ${TID_A}
authers:
- name: users
  auths:
  - username: visitor
    password: visitor-secret
api:
  addr: ${LOCAL}:0
  auth:
    username: admin
    password: ${SECRET}
`;
}

const forward = (name: string, target: number, addr = `${LOCAL}:0`): Record<string, unknown> => ({
  name,
  addr,
  handler: { type: 'tcp' },
  listener: { type: 'tcp' },
  forwarder: { nodes: [{ name: `${name}-target`, addr: `${LOCAL}:${target}` }] },
});

describe('config routes of the web API', () => {
  let alpha: HttpService;
  let beta: HttpService;
  let file: string;
  let server: BurrowProcess;
  let api: number;
  let entry: number;

  const call = (method: string, path: string, body?: unknown) =>
    apiCall(api, method, path, { headers: body === undefined ? auth : json, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const fullConfig = async (): Promise<string> => (await call('GET', '/config?secrets=true')).text;
  const servicePort = async (name: string): Promise<number> => {
    const st = await call('GET', '/status');
    const s = (st.json.services as Array<{ name: string; addr: string }>).find((x) => x.name === name);
    assert.ok(s, `${name} in ${st.text}`);
    return Number(/:(\d+)$/.exec(s.addr)![1]);
  };

  before(async () => {
    alpha = cleanup.add(await startHttpService('alpha'));
    beta = cleanup.add(await startHttpService('beta'));
    file = tempFile('api-config.yaml', serverYaml());
    server = burrow(['-C', file], { name: 'server' });
    api = await apiPort(server);
    entry = await server.entrypointPort();
    const sp = await server.listeningPort({ service: 'tunnel' });
    for (const [tid, target, name] of [
      [TID_A, alpha, 'client-a'],
      [TID_B, beta, 'client-b'],
    ] as const) {
      const c = burrow(['-C', tempFile(`${name}.yaml`, tunnelClientYaml(sp, tid, [{ name: 'r', type: 'rtcp', nodes: [{ name: 'n', addr: `${LOCAL}:${target.port}` }] }]))], { name });
      await c.tunnelCreated();
    }
    await server.waitFor(() => server.count((l) => /established$/.test(String(l.msg))) >= 2, { what: 'two connectors' });
  });

  it('lists and gets every kind burrow implements, in gost shapes', async () => {
    const services = await call('GET', '/config/services');
    assert.equal(services.status, 200);
    assert.equal(services.json.count, 1);
    assert.equal(services.json.list[0].name, 'tunnel');
    for (const kind of ['chains', 'hops', 'sds']) assert.deepEqual((await call('GET', `/config/${kind}`)).json, { count: 0, list: [] }, kind);
    const ing = await call('GET', '/config/ingresses/rules');
    assert.deepEqual(ing.json, { name: 'rules', rules: [{ hostname: 'app.test', endpoint: TID_A }] });
    // Secrets redacted unless asked for with credentials.
    const users = await call('GET', '/config/authers/users');
    assert.equal(users.json.auths[0].username, 'visitor');
    assert.notEqual(users.json.auths[0].password, 'visitor-secret');
    assert.equal((await call('GET', '/config/authers/users?secrets=true')).json.auths[0].password, 'visitor-secret');
    const missing = await call('GET', '/config/services/nope');
    assert.equal(missing.status, 404);
    assert.deepEqual(missing.json, { code: 40004, msg: 'service nope not found' });
    assert.equal((await call('GET', '/config/nosuchkind')).status, 404);
  });

  it('changes an ingress rule at once, without dropping a tunnel session', async () => {
    const events = await EventStream.open(api, '/events', auth);
    cleanup.fn(() => events.close());
    await events.next((e) => e.event === 'status');
    assert.match((await httpRequest(entry, { host: 'app.test' })).body, /^alpha GET \//);
    const r = await call('PUT', '/config/ingresses/rules', { rules: [{ hostname: 'app.test', endpoint: TID_B }] });
    assert.deepEqual(r.json, { code: 0, msg: 'OK' });
    // The very next request routes by the new rule.
    assert.match((await httpRequest(entry, { host: 'app.test' })).body, /^beta GET \//);
    const reload = await events.next((e) => e.event === 'reload');
    assert.equal(reload.data.ok, true);
    assert.equal(reload.data.trigger, 'PUT /config/ingresses/rules');
    assert.deepEqual(reload.data.unchanged, ['tunnel']);
    assert.deepEqual(reload.data.changed, []);
    assert.equal(events.events.filter((e) => e.event === 'connector-down').length, 0);
    const st = await call('GET', '/status');
    assert.equal(st.json.tunnels.length, 2);
    assert.equal(server.count((l) => /^listening on/.test(String(l.msg)) && l.service === 'tunnel'), 1);
    // Back for the other tests.
    await call('PUT', '/config/ingresses/rules', { rules: [{ hostname: 'app.test', endpoint: TID_A }] });
    assert.match((await httpRequest(entry, { host: 'app.test' })).body, /^alpha GET \//);
  });

  it('creates a service that accepts connections, updates and deletes it', async () => {
    const one = cleanup.add(await startBannerEcho('one'));
    const two = cleanup.add(await startBannerEcho('two'));
    const created = await call('POST', '/config/services', forward('fwd', one.port));
    assert.deepEqual(created.json, { code: 0, msg: 'OK' });
    const port = await servicePort('fwd');
    assert.equal((await bannerExchange(port, Buffer.from('hello'))).banner, 'one');
    assert.equal((await call('GET', '/config/services/fwd')).json.forwarder.nodes[0].addr, `${LOCAL}:${one.port}`);

    // Update on the same address: the new target answers on the same port.
    const fixed = forward('fwd', two.port, `${LOCAL}:${port}`);
    delete fixed.name; // the path names it
    assert.equal((await call('PUT', '/config/services/fwd', fixed)).json.code, 0);
    assert.equal((await bannerExchange(port, Buffer.from('again'))).banner, 'two');
    assert.equal((await call('GET', '/config/services')).json.count, 2);

    assert.equal((await call('DELETE', '/config/services/fwd')).json.code, 0);
    await assert.rejects(bannerExchange(port, Buffer.from('gone'), 2_000));
    assert.equal((await call('GET', '/config/services/fwd')).status, 404);
    assert.equal((await call('DELETE', '/config/services/fwd')).status, 404);
  });

  it('creates, updates and deletes hops, chains, authers, ingresses and sds', async () => {
    const echo = cleanup.add(await startBannerEcho('e'));
    const hop = { name: 'h1', nodes: [{ name: 'n1', addr: `${LOCAL}:9`, connector: { type: 'tunnel', metadata: { 'tunnel.id': TID_A } }, dialer: { type: 'tcp' } }] };
    assert.equal((await call('POST', '/config/hops', hop)).json.code, 0);
    assert.equal((await call('PUT', '/config/hops/h1', { ...hop, nodes: [{ ...hop.nodes[0], addr: `${LOCAL}:10` }] })).json.code, 0);
    assert.equal((await call('GET', '/config/hops/h1')).json.nodes[0].addr, `${LOCAL}:10`);
    assert.equal((await call('POST', '/config/chains', { name: 'c1', hops: [{ name: 'h1' }] })).json.code, 0);
    assert.equal((await call('PUT', '/config/chains/c1', { hops: [{ name: 'h1' }] })).json.code, 0);
    assert.equal((await call('GET', '/config/chains')).json.count, 1);
    // A service that uses the chain; the chain cannot go while it does.
    const via = { ...forward('via', echo.port), handler: { type: 'tcp', chain: 'c1' } };
    assert.equal((await call('POST', '/config/services', via)).json.code, 0);
    const refused = await call('DELETE', '/config/chains/c1');
    assert.equal(refused.status, 400);
    assert.equal(refused.json.code, 40001);
    assert.match(refused.json.msg, /c1/);
    assert.equal((await call('DELETE', '/config/services/via')).json.code, 0);
    assert.equal((await call('DELETE', '/config/chains/c1')).json.code, 0);
    assert.equal((await call('DELETE', '/config/hops/h1')).json.code, 0);

    assert.equal((await call('POST', '/config/authers', { name: 'more', auths: [{ username: 'a', password: 'b' }] })).json.code, 0);
    assert.equal((await call('PUT', '/config/authers/more', { auths: [{ username: 'c', password: 'd' }] })).json.code, 0);
    assert.equal((await call('GET', '/config/authers/more')).json.auths[0].username, 'c');
    assert.equal((await call('DELETE', '/config/authers/more')).json.code, 0);

    assert.equal((await call('POST', '/config/ingresses', { name: 'other', rules: [{ hostname: 'x.test', endpoint: TID_B }] })).json.code, 0);
    assert.equal((await call('PUT', '/config/ingresses/other', { rules: [] })).json.code, 0);
    assert.equal((await call('DELETE', '/config/ingresses/other')).json.code, 0);

    assert.equal((await call('POST', '/config/sds', { name: 'sd1', plugin: { type: 'http', addr: `http://${LOCAL}:9` } })).json.code, 0);
    assert.equal((await call('PUT', '/config/sds/sd1', { plugin: { type: 'http', addr: `http://${LOCAL}:10` } })).json.code, 0);
    assert.equal((await call('GET', '/config/sds/sd1')).json.plugin.addr, `http://${LOCAL}:10`);
    assert.equal((await call('DELETE', '/config/sds/sd1')).json.code, 0);
    assert.equal((await call('GET', '/config/sds')).json.count, 0);
  });

  it('refuses bad payloads with 400 in gost shape and changes nothing', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, LOCAL, () => r()));
    cleanup.fn(() => new Promise<void>((r) => blocker.close(() => r())));
    const taken = (blocker.address() as net.AddressInfo).port;
    const before = await fullConfig();
    const cases: Array<[string, string, unknown, number, number]> = [
      ['POST', '/config/services', [1, 2], 400, 40001],
      ['POST', '/config/services', 'x', 400, 40001],
      ['POST', '/config/services', {}, 400, 40001],
      ['POST', '/config/services', { name: '' }, 400, 40001],
      ['POST', '/config/services', { ...forward('tunnel', alpha.port) }, 400, 40002],
      ['POST', '/config/services', { ...forward('x', alpha.port), handler: { type: 'nosuch' } }, 400, 40001],
      ['POST', '/config/services', { ...forward('x', alpha.port), addr: 12 }, 400, 40001],
      ['POST', '/config/services', { ...forward('x', alpha.port), handler: { type: 'tcp', chain: 'nowhere' } }, 400, 40001],
      ['POST', '/config/services', forward('x', alpha.port, `${LOCAL}:${taken}`), 400, 40003],
      ['PUT', '/config/ingresses/rules', { rules: 'not a list' }, 400, 40001],
      ['PUT', '/config/services/nope', forward('nope', alpha.port), 404, 40004],
      ['POST', '/config/chains', { name: 'c', hops: [{ name: 'h', nodes: [{ name: 'n', addr: `${LOCAL}:1`, connector: { type: 'nosuch' } }] }] }, 400, 40001],
      ['POST', '/config/limiters', { name: 'l' }, 501, 50100],
    ];
    for (const [method, path, body, status, code] of cases) {
      const r = await call(method, path, body);
      assert.equal(r.status, status, `${method} ${path} ${JSON.stringify(body)}: ${r.text}`);
      assert.equal(r.json.code, code, r.text);
      assert.equal(typeof r.json.msg, 'string');
      assert.equal(await fullConfig(), before, `${method} ${path} changed the config`);
    }
    assert.match((await httpRequest(entry, { host: 'app.test' })).body, /^alpha GET \//);
  });

  it('refuses a stranger, a form-encoded POST and a cross-origin POST, changing nothing', async () => {
    const before = await fullConfig();
    const routes: Array<[string, string]> = [
      ['GET', '/config/services'],
      ['GET', '/config/services/tunnel'],
      ['POST', '/config/services'],
      ['PUT', '/config/ingresses/rules'],
      ['DELETE', '/config/services/tunnel'],
      ['POST', '/config'],
      ['POST', '/config/reload'],
    ];
    const body = JSON.stringify({ name: 'evil', rules: [{ hostname: 'app.test', endpoint: TID_B }] });
    for (const [method, path] of routes) {
      const strangers: Array<Record<string, string>> = [{ 'content-type': 'application/json' }, { 'content-type': 'application/json', authorization: basic('admin', 'guess') }];
      for (const headers of strangers) {
        const r = await apiCall(api, method, path, { headers, ...(method === 'GET' ? {} : { body }) });
        assert.equal(r.status, 401, `${method} ${path}`);
        assert.deepEqual(r.json, { code: 40100, msg: 'unauthorized' });
      }
      if (method === 'GET') continue;
      const form = await apiCall(api, method, path, { headers: { ...auth, 'content-type': 'application/x-www-form-urlencoded' }, body: 'name=evil' });
      assert.equal(form.status, 415, `${method} ${path}`);
      const cross = await apiCall(api, method, path, { headers: { ...json, origin: 'http://evil.example' }, body });
      assert.equal(cross.status, 403, `${method} ${path}`);
      assert.equal(cross.json.code, 40300);
    }
    assert.equal(await fullConfig(), before);
    assert.equal(readFileSync(file, 'utf8'), serverYaml());
    assert.match((await httpRequest(entry, { host: 'app.test' })).body, /^alpha GET \//);
  });

  it('saves the running config to the loaded file (POST /config) and reloads it', async () => {
    const echo = cleanup.add(await startBannerEcho('saved'));
    assert.equal((await call('POST', '/config/services', forward('kept', echo.port))).json.code, 0);
    assert.equal((await call('POST', '/config?path=/tmp/elsewhere.yaml', {})).status, 400);
    assert.equal((await call('POST', '/config?format=json', {})).status, 400);
    const saved = await call('POST', '/config', {});
    assert.deepEqual(saved.json, { code: 0, msg: 'OK' });
    const onDisk = parseYaml(readFileSync(file, 'utf8')) as { services: Array<{ name: string }>; api: { auth: { password: string } } };
    assert.deepEqual(
      onDisk.services.map((s) => s.name),
      ['tunnel', 'kept'],
    );
    assert.equal(onDisk.api.auth.password, SECRET);
    // Reading the saved file back changes nothing.
    const r = await call('POST', '/config/reload', {});
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.data.unchanged, ['tunnel', 'kept']);
    assert.deepEqual([...r.json.data.added, ...r.json.data.changed, ...r.json.data.removed], []);
    assert.equal((await bannerExchange(await servicePort('kept'), Buffer.from('x'))).banner, 'saved');
  });
});

describe('POST /config without one loaded file', () => {
  it('refuses to save a config made from flags', async () => {
    const p = burrow(['-L', `tcp://${LOCAL}:0/${LOCAL}:9`, '-api', `${LOCAL}:0`], { name: 'flags' });
    const port = await apiPort(p);
    const r = await apiCall(port, 'POST', '/config', { headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(r.status, 400);
    assert.equal(r.json.code, 40005);
    assert.match(r.json.msg, /one file/);
  });
});
