/**
 * The entry point keeps nothing of a closed connection: after thousands of one-request
 * connections (Connection: close), the heap is back where it was once collected. A connection
 * held by a pending deadline timer (its socket, buffers and state, about 2.5 KiB) would stay
 * until `entrypoint.idleTimeout`, so at 5,000 connections a second memory would grow by
 * hundreds of MiB a minute.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import { httpServer, startApp, type RunningApp } from '../../helpers/inproc';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const TID = '5b1c7e2a-3d4f-4a6b-8c9d-0e1f2a3b4c5d';

/** One request on a new connection with Connection: close; resolves when the entry point has closed it. */
function oneShot(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => (got += d));
    s.on('error', reject);
    s.on('close', () => (got.startsWith('HTTP/1.1 200') ? resolve() : reject(new Error(`unexpected response ${JSON.stringify(got.slice(0, 80))}`))));
    s.write('GET / HTTP/1.1\r\nHost: mem.example.com\r\nConnection: close\r\n\r\n');
  });
}

async function burst(port: number, n: number, concurrency = 20): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        next++;
        await oneShot(port);
      }
    }),
  );
}

async function settledHeap(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setImmediate(r));
    gc();
  }
  return process.memoryUsage().heapUsed;
}

describe('entry point memory', () => {
  let origin: Awaited<ReturnType<typeof httpServer>>;
  let server: RunningApp;
  let client: RunningApp;
  let port: number;
  before(async () => {
    origin = await httpServer('ok');
    server = await startApp({ L: [`tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel=.example.com:${TID}`], level: 'info' });
    client = await startApp({ L: [`rtcp://:0/127.0.0.1:${origin.port}`], F: [`tunnel://${server.addr()}?tunnel.id=${TID}`], level: 'info' });
    await client.bound;
    port = Number(server.entrypoint().split(':').pop());
  });
  after(async () => {
    await client.stop();
    await server.stop();
    await origin.close();
  });

  test('4,000 closed one-request connections leave the heap where it was (< 2 MiB more)', async () => {
    await burst(port, 500); // warm-up: code, pools, idle streams
    const before = await settledHeap();
    await burst(port, 4_000);
    const grown = (await settledHeap()) - before;
    assert.ok(grown < 2 * 1024 * 1024, `heap grew by ${(grown / 1024).toFixed(0)} KiB over 4,000 connections`);
  });
});
