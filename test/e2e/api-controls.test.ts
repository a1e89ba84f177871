/**
 * Abuse controls of the web API against real processes: a tunnel server in public mode with an
 * API behind credentials, two clients (real CLI processes) and visitors at the entry point.
 * Each action goes through the API and is checked where it matters: the client's session
 * really closes, a revoked tunnel's client is refused at BIND and the logs say why, a released
 * name is claimed by another tunnel, a blocked one by none. Strangers change nothing.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { burrow, type BurrowProcess } from '../helpers/cli';
import { apiCall, apiPort, basic, EventStream } from '../helpers/api';
import { Cleanup, TID, eventually, httpRequest, startHttpService, type HttpService } from './support';

const cleanup = new Cleanup();
after(() => cleanup.run());

const AUTH = { authorization: basic('admin', 'pw-7d1') };
const JSON_AUTH = { ...AUTH, 'content-type': 'application/json' };

describe('abuse controls through the web API', () => {
  let server: BurrowProcess;
  let clientA: BurrowProcess;
  let clientB: BurrowProcess | undefined;
  let api: number;
  let entry: number;
  let tunnelPort: number;
  let webA: HttpService;
  let webB: HttpService;
  let events: EventStream;

  const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = JSON_AUTH) =>
    apiCall(api, method, path, body === undefined ? { headers } : { headers, body: JSON.stringify(body) });
  const status = async () => (await apiCall(api, 'GET', '/status', { headers: AUTH })).json;
  const visit = (host: string) => httpRequest(entry, { host, path: '/x' });
  const connectorOf = async (tunnelId: string): Promise<string> => {
    const st = await status();
    const t = st.tunnels.find((x: { id: string }) => x.id === tunnelId);
    assert.ok(t, `tunnel ${tunnelId} in /status: ${JSON.stringify(st.tunnels)}`);
    assert.equal(t.connectors.length, 1);
    return t.connectors[0].id;
  };
  const startClient = (name: string, tunnelId: string, web: HttpService) =>
    burrow(['-L', `rtcp://hello:0/127.0.0.1:${web.port}`, '-F', `tunnel://127.0.0.1:${tunnelPort}?tunnel.id=${tunnelId}`], { name });

  before(async () => {
    server = burrow(
      ['-L', 'tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel.publicDomain=example.test', '-api', 'admin:pw-7d1@127.0.0.1:0'],
      { name: 'server' },
    );
    tunnelPort = await server.listeningPort();
    entry = await server.entrypointPort();
    api = await apiPort(server);
    events = await EventStream.open(api, '/events', AUTH);
    cleanup.fn(() => events.close());
    webA = await startHttpService('web-a');
    webB = await startHttpService('web-b');
    cleanup.add(webA);
    cleanup.add(webB);
    clientA = startClient('client-a', TID.public, webA);
    const line = await clientA.tunnelCreated({ timeoutMs: 20_000 });
    assert.match(line.msg!, /^create tunnel on hello:/);
    assert.match((await visit('hello.example.test')).body, /^web-a GET \/x/);
  });

  it('a stranger without credentials gets 401 and nothing changes', async () => {
    const id = await connectorOf(TID.public);
    const routes: Array<[string, string]> = [
      ['POST', `/status/connectors/${id}/disconnect`],
      ['POST', `/status/tunnels/${TID.public}/revoke`],
      ['DELETE', `/status/tunnels/${TID.public}/revoke`],
      ['POST', '/status/names/hello/release'],
      ['POST', '/status/names/hello/block'],
      ['DELETE', '/status/names/hello/block'],
    ];
    for (const [method, path] of routes) {
      const anonymous: Array<Record<string, string>> = [{ 'content-type': 'application/json' }, { 'content-type': 'application/json', authorization: basic('admin', 'wrong') }];
      for (const headers of anonymous) {
        const r = await call(method, path, {}, headers);
        assert.equal(r.status, 401, `${method} ${path}`);
        assert.equal(r.json.code, 40100);
      }
    }
    // With credentials, but from another site's page, or as a form post: refused too.
    const cross = await call('POST', `/status/tunnels/${TID.public}/revoke`, {}, { ...JSON_AUTH, origin: 'http://evil.example' });
    assert.equal(cross.status, 403);
    const form = await apiCall(api, 'POST', `/status/tunnels/${TID.public}/revoke`, {
      headers: { ...AUTH, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'reason=x',
    });
    assert.equal(form.status, 415);
    const st = await status();
    assert.equal(await connectorOf(TID.public), id);
    assert.deepEqual(st.revoked, []);
    assert.deepEqual(st.blockedNames, []);
    assert.ok(st.names.some((n: { name: string }) => n.name === 'hello'));
    assert.match((await visit('hello.example.test')).body, /^web-a /);
    assert.equal(server.count((l) => /disconnected by|revoked by|released by|blocked by/.test(String(l.msg))), 0);
  });

  it('bad requests get 4xx with gost\'s error shape and change nothing', async () => {
    const cases: Array<[string, string, unknown, number]> = [
      ['POST', '/status/connectors/not-a-uuid/disconnect', {}, 400],
      ['POST', `/status/connectors/${TID.org}/disconnect`, {}, 404],
      ['POST', `/status/tunnels/${TID.public}/revoke`, { reason: 5 }, 400],
      ['POST', `/status/tunnels/${TID.public}/revoke`, { reason: 'x', extra: true }, 400],
      ['POST', `/status/tunnels/${TID.public}/revoke`, [1, 2], 400],
      ['DELETE', `/status/tunnels/${TID.org}/revoke`, undefined, 404],
      ['GET', `/status/tunnels/${TID.public}/revoke`, undefined, 405],
      ['POST', '/status/names/not_a_label!/release', {}, 400],
      ['POST', '/status/names/nobody/release', {}, 404],
      ['POST', '/status/names/0123456789abcdef/block', {}, 400],
      ['DELETE', '/status/names/hello/block', undefined, 404],
    ];
    for (const [method, path, body, code] of cases) {
      const r = await call(method, path, body);
      assert.equal(r.status, code, `${method} ${path} ${JSON.stringify(body)}: ${r.text}`);
      assert.equal(typeof r.json.code, 'number');
      assert.equal(typeof r.json.msg, 'string');
    }
    const st = await status();
    assert.deepEqual(st.revoked, []);
    assert.deepEqual(st.blockedNames, []);
    assert.match((await visit('hello.example.test')).body, /^web-a /);
  });

  it('disconnect closes the client\'s session; the client reconnects with a new connector', async () => {
    const id = await connectorOf(TID.public);
    const from = events.events.length;
    const mark = clientA.mark();
    const r = await call('POST', `/status/connectors/${id}/disconnect`, { reason: 'spam' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.data, { service: 'service-0', tunnelId: TID.public, id, client: r.json.data.client });
    const ev = await events.next((e) => e.event === 'connector-disconnect', 10_000, from);
    assert.equal(ev.data.id, id);
    assert.equal(ev.data.reason, 'spam');
    assert.match(ev.data.by, /^127\.0\.0\.1:\d+ \(user admin\)$/);
    const down = await events.next((e) => e.event === 'connector-down', 10_000, from);
    assert.equal(down.data.id, id);
    await server.waitForMsg(new RegExp(`connector ${id} of tunnel ${TID.public} .* disconnected by 127\\.0\\.0\\.1:\\d+ \\(user admin\\) \\(reason: spam\\)`));
    // The client saw its session close and bound again.
    await clientA.waitForMsg(/^accept: tunnel session closed, retrying/, { from: mark, timeoutMs: 15_000 });
    await clientA.tunnelCreated({ from: mark, timeoutMs: 20_000 });
    const again = await eventually(() => connectorOf(TID.public), 10_000);
    assert.notEqual(again, id);
    assert.match((await visit('hello.example.test')).body, /^web-a /);
  });

  it('a released name can be claimed by another tunnel', async () => {
    const from = events.events.length;
    const r = await call('POST', '/status/names/hello.example.test/release', { reason: 'phishing' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.data.released, [{ service: 'service-0', name: 'hello', host: 'hello.example.test', tunnelId: TID.public }]);
    const ev = await events.next((e) => e.event === 'name-free', 10_000, from);
    assert.equal(ev.data.name, 'hello');
    await server.waitForMsg(/^public name hello\.example\.test \(tunnel \S+\) released by .* \(reason: phishing\)/);
    // It no longer routes to A (whose session is untouched)...
    assert.doesNotMatch((await visit('hello.example.test')).body, /^web-/);
    assert.ok((await status()).tunnels.some((t: { id: string }) => t.id === TID.public));
    // ...and B, asking for it, gets it.
    clientB = startClient('client-b', TID.org, webB);
    const line = await clientB.tunnelCreated({ timeoutMs: 20_000 });
    assert.match(line.msg!, /^create tunnel on hello:/);
    assert.match((await visit('hello.example.test')).body, /^web-b GET \/x/);
  });

  it('a blocked name is taken from its holder and no tunnel gets it until unblocked', async () => {
    const b = clientB!;
    const from = events.events.length;
    const r = await call('POST', '/status/names/hello/block', { reason: 'abuse report' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.data.blocked, [{ service: 'service-0', name: 'hello', host: 'hello.example.test', releasedFrom: TID.org }]);
    const ev = await events.next((e) => e.event === 'name-block', 10_000, from);
    assert.equal(ev.data.reason, 'abuse report');
    const st = await status();
    assert.deepEqual(
      st.blockedNames.map((x: { name: string; reason: string }) => [x.name, x.reason]),
      [['hello', 'abuse report']],
    );
    assert.ok(!st.names.some((n: { name: string }) => n.name === 'hello'));
    assert.doesNotMatch((await visit('hello.example.test')).body, /^web-/);

    // B binds again (disconnected through the API) and gets its endpoint name instead.
    let mark = b.mark();
    const idB = await connectorOf(TID.org);
    assert.equal((await call('POST', `/status/connectors/${idB}/disconnect`, {})).status, 200);
    let line = await b.tunnelCreated({ from: mark, timeoutMs: 20_000 });
    assert.match(line.msg!, /^create tunnel on [0-9a-f]{16}:/);
    assert.doesNotMatch((await visit('hello.example.test')).body, /^web-/);

    // Unblocked: the next BIND asking for it gets it.
    const u = await call('DELETE', '/status/names/hello/block');
    assert.equal(u.status, 200, u.text);
    await events.next((e) => e.event === 'name-unblock', 10_000, from);
    assert.deepEqual((await status()).blockedNames, []);
    mark = b.mark();
    assert.equal((await call('POST', `/status/connectors/${await connectorOf(TID.org)}/disconnect`)).status, 200);
    line = await b.tunnelCreated({ from: mark, timeoutMs: 20_000 });
    assert.match(line.msg!, /^create tunnel on hello:/);
    assert.match((await visit('hello.example.test')).body, /^web-b /);
  });

  it('a revoked tunnel is disconnected and refused at BIND, with the reason logged, until restored', async () => {
    const from = events.events.length;
    const mark = clientA.mark();
    const smark = server.mark();
    const r = await call('POST', `/status/tunnels/${TID.public}/revoke`, { reason: 'terms of use' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.data, { tunnelId: TID.public, disconnected: 1 });
    const ev = await events.next((e) => e.event === 'tunnel-revoke', 10_000, from);
    assert.equal(ev.data.reason, 'terms of use');
    await events.next((e) => e.event === 'connector-down' && e.data.tunnelId === TID.public, 10_000, from);
    // The client's next BIND is refused: FORBIDDEN, and the server says why.
    await clientA.waitForMsg(/^accept: .*server answered 0x03/, { from: mark, timeoutMs: 20_000 });
    await server.waitForMsg(new RegExp(`^bind refused: tunnel ${TID.public} is revoked since \\S+: terms of use`), { from: smark, timeoutMs: 20_000 });
    const st = await status();
    assert.ok(!st.tunnels.some((t: { id: string }) => t.id === TID.public));
    assert.deepEqual(
      st.revoked.map((x: { tunnelId: string; reason: string }) => [x.tunnelId, x.reason]),
      [[TID.public, 'terms of use']],
    );
    assert.equal(clientA.count((l) => /^create tunnel on /.test(String(l.msg)), mark), 0);
    // Other tunnels are untouched.
    assert.match((await visit('hello.example.test')).body, /^web-b /);

    const restored = await call('DELETE', `/status/tunnels/${TID.public}/revoke`);
    assert.equal(restored.status, 200, restored.text);
    await events.next((e) => e.event === 'tunnel-restore', 10_000, from);
    await clientA.tunnelCreated({ from: mark, timeoutMs: 20_000 });
    assert.deepEqual((await status()).revoked, []);
    assert.equal((await call('DELETE', `/status/tunnels/${TID.public}/revoke`)).status, 404);
  });
});
