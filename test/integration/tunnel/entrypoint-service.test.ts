/**
 * The entry point as a service of its own (`<service>-ep-<addr>`): its connections are counted
 * in the gost_service_* metrics under that name (bytes both ways, in flight back to 0), its log
 * lines keep gost's fields, and it stops with the app — the listener refuses, a keep-alive
 * visitor connection and a visitor still sending its first bytes are closed.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startApp, type RunningApp } from '../../helpers/inproc';
import { buildConfigFromCli } from '../../../src/cli/build';
import { connect, readAll, waitFor } from '../../helpers/net';

const TID = '4d21094e-b74c-4916-86c1-d9fa36ea677b';

async function start(): Promise<RunningApp> {
  const config = buildConfigFromCli([`tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel=app.local:${TID}`], []);
  config.metrics = { addr: '127.0.0.1:0' };
  return startApp({ config, level: 'debug' });
}

/** The value of a metric line for `service`, 0 when it has none. */
async function metric(ra: RunningApp, name: string, service: string): Promise<number> {
  const text = await ra.app.metrics!.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{service="${service}"}`));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

function portOf(addr: string): number {
  return Number(addr.split(':').pop());
}

describe('entry point service', () => {
  it('counts its connections under <service>-ep-<addr>, bytes both ways, in flight back to 0', async () => {
    const ra = await start();
    const ep = 'service-0-ep-127.0.0.1:0';
    try {
      const port = portOf(ra.entrypoint());
      // No route: 502, and the connection closes (Connection: close asked for).
      const req = 'GET / HTTP/1.1\r\nHost: nowhere.local\r\nConnection: close\r\n\r\n';
      const c1 = await connect(port);
      c1.end(req);
      const res = (await readAll(c1)).toString('latin1');
      assert.match(res, /^HTTP\/1\.1 502 Bad Gateway\r\n/);
      // Garbage: closed without an answer, counted all the same.
      const c2 = await connect(port);
      c2.end('\x00\x01garbage\r\n\r\n');
      assert.equal((await readAll(c2)).length, 0);
      await waitFor(async () => (await metric(ra, 'gost_service_requests_total', ep)) === 2, 10_000, 'two requests counted');
      await waitFor(async () => (await metric(ra, 'gost_service_requests_in_flight', ep)) === 0, 10_000, 'none in flight');
      assert.equal(await metric(ra, 'gost_service_transfer_output_bytes_total', ep), Buffer.byteLength(res, 'latin1'));
      assert.equal(
        await metric(ra, 'gost_service_transfer_input_bytes_total', ep),
        Buffer.byteLength(req, 'latin1') + '\x00\x01garbage\r\n\r\n'.length,
      );
      // The tunnel port is a service of its own, not counted here.
      assert.equal(await metric(ra, 'gost_service_requests_total', 'service-0'), 0);
      // gost's log fields on the entry point's lines.
      const line = ra.logs.find((l) => String(l.msg).startsWith('no route to host nowhere.local'));
      assert.ok(line, 'the no-route line');
      assert.equal(line.kind, 'entrypoint');
      assert.equal(line.handler, 'tunnel');
      assert.equal(line.service, 'service-0');
    } finally {
      await ra.stop();
    }
  });

  it('stops with the app: the listener refuses, open visitor connections are closed', async () => {
    const ra = await start();
    const port = portOf(ra.entrypoint());
    // A keep-alive connection that got its answer and stays open, and one that sent half a head.
    const idle = await connect(port);
    idle.write('GET / HTTP/1.1\r\nHost: nowhere.local\r\n\r\n');
    await new Promise<void>((resolve) => idle.once('data', () => resolve()));
    const half = await connect(port);
    half.write('GET / HT');
    // The server's side goes: a FIN ('end', the client allows half-open) or a reset.
    const gone = (s: net.Socket): Promise<void> =>
      new Promise<void>((r) => {
        s.once('end', () => r());
        s.once('close', () => r());
      });
    const idleClosed = gone(idle);
    const halfClosed = gone(half);
    for (const s of [idle, half]) {
      s.on('error', () => {});
      s.resume();
    }
    await ra.stop();
    await idleClosed;
    await halfClosed;
    const refused = await new Promise<string>((resolve) => {
      const s = net.connect({ port, host: '127.0.0.1' });
      s.once('connect', () => {
        s.destroy();
        resolve('connected');
      });
      s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    });
    assert.equal(refused, 'ECONNREFUSED');
  });
});
