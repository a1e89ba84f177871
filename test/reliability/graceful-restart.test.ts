/**
 * A restart as a supervisor does it: SIGTERM to the running server, the next process started
 * on the same ports at once. At the first signal every listener of the old process (the
 * tunnel port and the entry point) stops accepting, an idle keep-alive connection and an idle
 * tunnel session close at once, while a request in flight gets the grace period (a long one
 * here, so a process that kept accepting for it would be caught) and completes. The new process
 * listens without EADDRINUSE and serves once a client has reconnected to it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type net from 'node:net';
import { stopAll } from '../helpers/cli';
import { LOCAL, httpCall, listenLocal, type LocalServer } from '../helpers/local';
import { newTid, spawnClient, startServer, type ServerProc } from './support';

const HOST = 'app.example.com';
const GRACE = { BURROW_SHUTDOWN_GRACE_MS: '600000' };

describe('graceful restart of a server with clients and keep-alive users attached', () => {
  let origin: LocalServer;
  /** Responses of /hold requests, answered when the test says so. */
  const held: http.ServerResponse[] = [];
  let heldArrived: () => void = () => undefined;
  const tid = newTid();

  before(async () => {
    const server = http.createServer((req, res) => {
      if (req.url === '/hold') {
        held.push(res);
        heldArrived();
        return;
      }
      res.end(`ok ${req.url}`);
    });
    origin = await listenLocal(server);
  });
  after(async () => {
    await stopAll();
    await origin.close();
  });

  it('frees every port at the first SIGTERM, finishes the request in flight, and the next process serves', async () => {
    const rules = `tunnel=${HOST}:${tid}`;
    const old: ServerProc = await startServer(rules, { name: 'server-old', env: GRACE });
    // Two clients: the one carrying the held request keeps its session until that request is
    // done; the idle one is told to go at once and comes back to the new process.
    const clients = [0, 1].map((i) => spawnClient(old.port, tid, `${LOCAL}:${origin.port}`, { name: `client-${i}` }));
    await Promise.all(clients.map((c) => c.tunnelCreated({ timeoutMs: 60_000 })));
    await old.proc.waitFor(() => old.proc.count((l) => /established$/.test(String(l.msg))) >= 2, {
      timeoutMs: 60_000,
      what: 'two connectors',
    });

    // A keep-alive user with an idle connection to the entry point.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const first = await httpCall({ host: LOCAL, port: old.ep, path: '/first', headers: { Host: HOST }, agent }, undefined, 60_000);
    assert.equal(first.res.statusCode, 200);
    const idleSocket: net.Socket = first.socket;
    const idleClosed = new Promise<void>((r) => (idleSocket.destroyed ? r() : idleSocket.once('close', () => r())));

    // A request in flight: the origin holds its response.
    const arrived = new Promise<void>((r) => (heldArrived = r));
    const inFlight = httpCall({ host: LOCAL, port: old.ep, path: '/hold', headers: { Host: HOST }, agent: false }, undefined, 120_000);
    await arrived;

    const mark = old.proc.mark();
    old.proc.proc.kill('SIGTERM');
    await old.proc.waitForMsg(/^stopped accepting; connections in flight get up to 600000 ms$/, { from: mark, timeoutMs: 60_000 });
    assert.ok(old.proc.alive, 'the old process waits for its request in flight');
    // The grace period logged is the one in effect (BURROW_SHUTDOWN_GRACE_MS).
    assert.equal(old.proc.count((l) => l.msg === 'SIGTERM: shutting down (grace 600000 ms)', mark), 1);

    // The idle keep-alive connection is closed by the old process, not left to time out.
    await idleClosed;

    // The next process takes both ports (no EADDRINUSE) while the old one still finishes its work.
    const next = await startServer(rules, { name: 'server-new', port: old.port, ep: old.ep, env: GRACE });
    assert.equal(next.port, old.port);
    assert.equal(next.ep, old.ep);
    assert.ok(old.proc.alive, 'the old process is still draining');

    // The idle client was let go and registers with the new process, which then serves.
    await next.proc.waitForMsg(/established$/, { timeoutMs: 60_000 });
    const served = await httpCall({ host: LOCAL, port: next.ep, path: '/after', headers: { Host: HOST }, agent: false }, undefined, 60_000);
    assert.equal(served.res.statusCode, 200);
    assert.equal(served.body.toString(), 'ok /after');

    // The request in flight completes on the old process, which then exits cleanly.
    assert.equal(held.length, 1);
    held[0]!.end('held answer');
    const r = await inFlight;
    assert.equal(r.res.statusCode, 200);
    assert.equal(r.body.toString(), 'held answer');
    const exit = await old.proc.exited;
    assert.equal(exit.code, 0, old.proc.recentOutput());

    // The client that carried the request comes back too.
    await next.proc.waitFor(() => next.proc.count((l) => /established$/.test(String(l.msg))) >= 2, {
      timeoutMs: 60_000,
      what: 'both clients on the new process',
    });
    agent.destroy();
  });
});
