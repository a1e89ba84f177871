/**
 * A gost YAML file with Redis-backed ingress and auther sources (config.md §6.20, §2.6), run with
 * the real CLI against a real redis-server: the client logs in with a user from Redis, requests
 * through the entry point follow the Redis rules, and a rule added in Redis routes after the
 * next reload.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { burrow, tempFile, type BurrowProcess } from '../helpers/cli';
import { startRedis, type RedisServer } from '../helpers/redis';
import { Cleanup, TID, eventually, httpRequest, startHttpService, type HttpService } from './support';

const cleanup = new Cleanup();
after(() => cleanup.run());

describe('ingress and auther from Redis, through the real CLI (config.md §6.20)', () => {
  let redis: RedisServer;
  let web: HttpService;
  let server: BurrowProcess;
  let serverPort: number;
  let ep: number;

  before(async () => {
    redis = await startRedis();
    cleanup.fn(() => redis.stop());
    const r = redis.client(1);
    await r.hset('gost:ingresses:ingress-0', 'example.com', TID.example, '.example.com', TID.example);
    await r.hset('gost:authers:auther-0', 'alice', 'alice-pass');
    web = cleanup.add(await startHttpService('web'));
    const yaml = [
      'services:',
      '- name: service-0',
      '  addr: 127.0.0.1:0',
      '  handler:',
      '    type: tunnel',
      '    ingress: ingress-0',
      '    auther: auther-0',
      '    metadata:',
      '      entrypoint: 127.0.0.1:0',
      '  listener:',
      '    type: tcp',
      'ingresses:',
      '- name: ingress-0',
      '  reload: 1s',
      '  redis:',
      `    addr: ${redis.addr}`,
      '    db: 1',
      '    key: gost:ingresses:ingress-0',
      '    type: hash',
      'authers:',
      '- name: auther-0',
      '  reload: 1s',
      '  redis:',
      `    addr: ${redis.addr}`,
      '    db: 1',
      '    key: gost:authers:auther-0',
      '',
    ].join('\n');
    server = burrow(['-C', tempFile('redis-sources.yaml', yaml), '-D'], { name: 'server' });
    serverPort = await server.listeningPort();
    ep = await server.entrypointPort();
  });

  it('a client with a Redis user is accepted and Host: example.com routes to it', async () => {
    const client = burrow(
      ['-L', `rtcp://:0/127.0.0.1:${web.port}`, '-F', `tunnel://alice:alice-pass@127.0.0.1:${serverPort}?tunnel.id=${TID.example}`],
      { name: 'client' },
    );
    await client.tunnelCreated();
    const r = await eventually(async () => {
      const res = await httpRequest(ep, { host: 'www.example.com', path: '/x' });
      if (res.status !== 200) throw new Error(`status ${res.status}`);
      return res;
    });
    assert.equal(r.body, 'web GET /x host=www.example.com');
    // No rule for example.org yet: no route.
    assert.equal((await httpRequest(ep, { host: 'example.org' })).status, 502);
  });

  it('a rule added in Redis routes after the next reload', async () => {
    await redis.client(1).hset('gost:ingresses:ingress-0', 'example.org', TID.example);
    const r = await eventually(
      async () => {
        const res = await httpRequest(ep, { host: 'example.org' });
        if (res.status !== 200) throw new Error(`status ${res.status}`);
        return res;
      },
      5000,
      200,
    );
    assert.equal(r.body, 'web GET / host=example.org');
  });

  it('a client whose password is not the one in Redis is refused', async () => {
    const bad = burrow(
      ['-L', `rtcp://:0/127.0.0.1:${web.port}`, '-F', `tunnel://alice:not-this@127.0.0.1:${serverPort}?tunnel.id=${TID.example}`],
      { name: 'bad-client' },
    );
    const line = await bad.waitFor((l) => /create tunnel .*(unauthorized|failed|refused|status)/i.test(String(l.msg)), { timeoutMs: 10_000 });
    assert.doesNotMatch(String(line.msg), / OK/);
  });
});
