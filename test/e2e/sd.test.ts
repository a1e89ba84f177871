/**
 * Service discovery through the real CLI: a server registered in Redis deregisters its
 * connectors at once on SIGTERM (while it still drains, long before it exits), and bad sd
 * settings stop the start with exit code 2 naming the flag or path.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { listenLocal } from '../helpers/local';
import { burrow, tempFile } from '../helpers/cli';
import { startRedis, type RedisServer } from '../helpers/redis';
import { waitFor } from '../helpers/net';
import { Cleanup, LOCAL, TID } from './support';

const cleanup = new Cleanup();
after(() => cleanup.run());

describe('service discovery (CLI)', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis();
    cleanup.fn(() => redis.stop());
  });

  it('SIGTERM deregisters every connector at once, before the grace period ends', async () => {
    const server = burrow(['-L', `tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel=sd.example.com:${TID.example}&tunnel.sd=redis://${redis.addr}/5`], {
      name: 'server',
      // A long grace and a request in flight (below): the process lives on after the signal.
      env: { BURROW_SHUTDOWN_GRACE_MS: '60000' },
    });
    cleanup.fn(() => server.kill('SIGKILL'));
    const port = await server.listeningPort();
    const ep = await server.entrypointPort();
    // A service that holds `/hold` unanswered: a stream stays open through the drain.
    let held = 0;
    const svc = await listenLocal(
      http.createServer((req, res) => {
        if (req.url === '/hold') held++;
        else res.end('ok');
      }),
    );
    cleanup.add(svc);
    const clients = [1, 2].map((n) =>
      burrow(['-L', `rtcp://:0/127.0.0.1:${svc.port}`, '-F', `tunnel://127.0.0.1:${port}?tunnel.id=${TID.example}`], { name: `client-${n}` }),
    );
    for (const c of clients) cleanup.fn(() => c.kill('SIGKILL'));
    for (const c of clients) await c.tunnelCreated();
    const r = redis.client(5);
    await waitFor(async () => (await r.hlen(TID.example)) === 2, 10_000, 'two registrations');
    for (const v of Object.values(await r.hgetall(TID.example))) {
      assert.equal((JSON.parse(v) as { Address: string }).Address, `127.0.0.1:${ep}`);
    }
    const inFlight = http.get({ host: LOCAL, port: ep, path: '/hold', headers: { host: 'sd.example.com' }, agent: false });
    inFlight.on('error', () => undefined);
    cleanup.fn(() => inFlight.destroy());
    await waitFor(() => held === 1, 10_000, 'the held request to reach the service');
    server.proc.kill('SIGTERM');
    await waitFor(async () => (await r.exists(TID.example)) === 0 || (await r.hlen(TID.example)) === 0, 10_000, 'the deregistrations');
    assert.ok(server.alive, 'deregistered while the server still drains');
    await server.kill('SIGKILL');
  });

  it('bad sd settings: exit code 2, naming what and where', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['-L', 'tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel.sd=http://127.0.0.1:1/sd'], /tunnel\.sd.*expected a Redis URL/],
      [['-L', 'tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel.sd=redis://127.0.0.1:1/x'], /tunnel\.sd.*database 'x'/],
      [['-L', `tunnel://127.0.0.1:0?tunnel.sd=redis://${redis.addr}/0`], /sd\.advertise.*needs an entry point/],
      [
        [
          '-C',
          tempFile(
            'sd-undefined.yaml',
            'services:\n- name: s\n  addr: 127.0.0.1:0\n  handler:\n    type: tunnel\n    metadata: {entrypoint: "127.0.0.1:0", sd: nope}\n  listener: {type: tcp}\n',
          ),
        ],
        /handler\.metadata\.sd.*sd 'nope' is not defined/,
      ],
      [
        ['-C', tempFile('sd-empty.yaml', 'sds:\n- name: sd-0\nservices:\n- name: s\n  addr: 127.0.0.1:0\n  handler: {type: tunnel}\n  listener: {type: tcp}\n')],
        /sds\[0\].*expected plugin: \{type: http, addr: URL\} or redis/,
      ],
      [
        ['-C', tempFile('sd-exp.yaml', 'sds:\n- name: sd-0\n  redis: {addr: "127.0.0.1:1", expiration: "-5s"}\nservices:\n- name: s\n  addr: 127.0.0.1:0\n  handler: {type: tunnel}\n  listener: {type: tcp}\n')],
        /sds\[0\].*redis\.expiration.*positive duration/,
      ],
    ];
    for (const [args, re] of cases) {
      const p = burrow(args, { name: 'bad-sd' });
      const exit = await p.exited;
      assert.equal(exit.code, 2, `${args.join(' ')}: ${p.recentOutput()}`);
      assert.match(p.output.join('\n'), re, args.join(' '));
    }
  });
});
