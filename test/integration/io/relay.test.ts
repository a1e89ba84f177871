/**
 * relay() on real loopback sockets: the send timeout ends a relay whose reader has stopped
 * reading, never one whose reader is slow but moving, and 0 turns it off.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { isSendTimeout, relay } from '../../../src/io/pipe';

const LOCAL = '127.0.0.1';
const servers: net.Server[] = [];
const sockets: net.Socket[] = [];

/** A connected pair of loopback sockets: [our end, the peer's end]. */
async function pair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer();
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, LOCAL, () => r()));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const peer = net.connect((server.address() as net.AddressInfo).port, LOCAL);
  await new Promise<void>((r, j) => peer.once('connect', r).once('error', j));
  const ours = await accepted;
  for (const s of [ours, peer]) {
    s.on('error', () => undefined);
    sockets.push(s);
  }
  return [ours, peer];
}

/** Writes as fast as `s` takes bytes until `stop()`; returns the count written. */
function firehose(s: net.Socket): { stop(): number } {
  const chunk = Buffer.alloc(64 * 1024, 0x5a);
  let written = 0;
  let running = true;
  const pump = (): void => {
    while (running && !s.destroyed && s.writable) {
      written += chunk.length;
      if (!s.write(chunk)) return void s.once('drain', pump);
    }
  };
  pump();
  return {
    stop: () => {
      running = false;
      return written;
    },
  };
}

describe('relay send timeout', () => {
  after(() => {
    for (const s of sockets) s.destroy();
    for (const s of servers) s.close();
  });

  it('a reader that never reads ends the relay after sendTimeout, both sides closed', async () => {
    const [a, source] = await pair();
    const [b, sink] = await pair();
    sink.pause(); // never reads
    const hose = firehose(source);
    const t0 = Date.now();
    const r = await relay(a, b, { sendTimeoutMs: 500 });
    const took = Date.now() - t0;
    hose.stop();
    assert.ok(isSendTimeout(r.error), `ended with ${String(r.error)}`);
    assert.ok(took >= 500 && took < 5_000, `ended after ${took} ms`);
    assert.ok(a.destroyed && b.destroyed);
    assert.ok(r.aToB > 0);
  });

  it('a slow reader that keeps taking bytes is never cut off', async () => {
    const [a, source] = await pair();
    const [b, sink] = await pair();
    const total = 24 << 20;
    const data = Buffer.alloc(total, 0x33);
    source.end(data);
    let got = 0;
    sink.on('data', (c: Buffer) => (got += c.length));
    sink.pause();
    // Reads in 10 ms bursts every 150 ms: each write may wait for a drain, none as long as the timeout.
    const reader = setInterval(() => {
      sink.resume();
      setTimeout(() => sink.pause(), 10);
    }, 150);
    const done = new Promise<void>((r) => sink.once('end', () => r()));
    const t0 = Date.now();
    const r = relayAndWait(a, b, 400);
    await done;
    clearInterval(reader);
    const res = await r;
    assert.equal(res.error, undefined);
    assert.equal(res.aToB, total);
    assert.ok(Date.now() - t0 > 400, 'the transfer was meant to outlast the timeout');
    assert.equal(got, total);
  });

  it('sendTimeout 0 never ends a stalled relay', async () => {
    const [a, source] = await pair();
    const [b, sink] = await pair();
    sink.pause();
    const hose = firehose(source);
    let settled = false;
    void relay(a, b, { sendTimeoutMs: 0 }).then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 1_500));
    hose.stop();
    assert.equal(settled, false);
    assert.ok(!a.destroyed && !b.destroyed);
    a.destroy();
  });
});

function relayAndWait(a: net.Socket, b: net.Socket, sendTimeoutMs: number): ReturnType<typeof relay> {
  return relay(a, b, { sendTimeoutMs, halfCloseIdleMs: 10_000 });
}

