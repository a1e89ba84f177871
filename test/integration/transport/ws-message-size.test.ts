// WebSocket message sizes: a peer's message larger than WS_MAX_MESSAGE_BYTES closes that
// connection alone (1009); what burrow sends never exceeds WS_MAX_SEND_BYTES per message, so a
// large write still crosses between two burrows.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { Metadata } from '../../../src/core/metadata';
import type { Conn } from '../../../src/core/transport';
import { DIALERS, LISTENERS } from '../../../src/transport';
import { WS_MAX_MESSAGE_BYTES, WS_MAX_SEND_BYTES } from '../../../src/transport/ws';
import { memoryLogger, randomBytes, readN, sha256 } from '../../helpers/net';

const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function echoServer(): Promise<{ addr: string; conns: Conn[] }> {
  const listener = LISTENERS['ws']!({ addr: '127.0.0.1:0', metadata: new Metadata({}), logger: memoryLogger('silent').logger });
  const conns: Conn[] = [];
  await listener.listen((conn) => {
    conns.push(conn);
    conn.stream.on('error', () => undefined);
    conn.stream.pipe(conn.stream);
  });
  cleanups.push(async () => {
    await listener.close();
    for (const c of conns) c.stream.destroy();
  });
  return { addr: listener.address(), conns };
}

/** A plain ws client, collecting what comes back and how it closed. */
async function rawClient(addr: string): Promise<{ ws: WebSocket; received: Buffer[]; closed: Promise<number> }> {
  const ws = new WebSocket(`ws://${addr}/ws`, { maxPayload: 0 });
  const received: Buffer[] = [];
  ws.on('message', (d: Buffer) => received.push(d));
  ws.on('error', () => undefined);
  const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  cleanups.push(() => ws.terminate());
  return { ws, received, closed };
}

async function echoed(c: { ws: WebSocket; received: Buffer[] }, size: number): Promise<void> {
  const probe = randomBytes(size);
  const before = c.received.length;
  c.ws.send(probe);
  for (let i = 0; i < 2000; i++) {
    const got = Buffer.concat(c.received.slice(before));
    if (got.length >= size) {
      assert.equal(sha256(got), sha256(probe));
      for (const m of c.received.slice(before)) assert.ok(m.length <= WS_MAX_SEND_BYTES, `a message of ${m.length} bytes`);
      return;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`no echo of ${size} bytes`);
}

describe('ws message sizes', () => {
  it('an oversized message closes that connection with 1009; the others go on', async () => {
    const server = await echoServer();
    const bad = await rawClient(server.addr);
    const good = await rawClient(server.addr);
    await echoed(good, 1000);
    await echoed(bad, WS_MAX_MESSAGE_BYTES); // the largest allowed message is fine
    bad.ws.send(randomBytes(WS_MAX_MESSAGE_BYTES + 1));
    assert.equal(await bad.closed, 1009);
    await echoed(good, 100_000);
    const later = await rawClient(server.addr);
    await echoed(later, 1000);
    assert.equal(server.conns.length, 3);
    assert.equal(server.conns[0]!.stream.destroyed, true);
    assert.equal(server.conns[1]!.stream.destroyed, false);
  });

  it('a large write crosses between two burrows as messages of at most WS_MAX_SEND_BYTES', async () => {
    const server = await echoServer();
    const dialer = DIALERS['ws']!({ metadata: new Metadata({}), logger: memoryLogger('silent').logger });
    const conn = await dialer.dial(server.addr);
    cleanups.push(() => conn.stream.destroy());
    const data = randomBytes(4 * 1024 * 1024 + 17);
    const reading = readN(conn.stream, data.length);
    conn.stream.write(data);
    assert.equal(sha256(await reading), sha256(data));
  });
});
