/**
 * relay() on real loopback sockets: the send timeout ends a relay whose reader has stopped
 * reading, never one whose reader is slow but moving, and 0 turns it off; idle timeouts of
 * several relays (one shared timer) each end their own relay only; a side that ended before
 * the relay began is still passed on as a half-close.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { relay } from '../../../src/io/pipe';
import { isSendTimeout } from '../../../src/core/errors';
import { nextStream, sessionPair } from '../smux/helpers';
import { dialTcp } from '../../../src/transport/tcp/socket';

const LOCAL = '127.0.0.1';
const servers: net.Server[] = [];
const sockets: net.Socket[] = [];

/** A connected pair of loopback sockets: [our end, the peer's end], half-open allowed as burrow's are. */
async function pair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer({ allowHalfOpen: true });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, LOCAL, () => r()));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const peer = net.connect({ port: (server.address() as net.AddressInfo).port, host: LOCAL, allowHalfOpen: true });
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

/** Waits half a second, then reads `s` (paused until then) to its end; returns the byte count. */
async function readLate(s: import('node:stream').Readable): Promise<number> {
  await new Promise((res) => setTimeout(res, 500));
  let got = 0;
  s.on('data', (c: Buffer) => (got += c.length));
  s.resume();
  await new Promise<void>((res) => s.once('end', () => res()));
  return got;
}

describe('relay end', () => {
  after(() => {
    for (const s of sockets) s.destroy();
  });

  it('a side that sends its last bytes and closes: a slow reader on the other side still gets every byte', async () => {
    const [a, source] = await pair();
    const [b, sink] = await pair();
    const total = 8 << 20;
    sink.pause();
    source.end(Buffer.alloc(total, 0x42));
    const r = relay(a, b, { sendTimeoutMs: 5_000 });
    // The reader starts late: the relay has long seen the source end and close by then.
    assert.equal(await readLate(sink), total);
    const result = await r;
    assert.equal(result.aToB, total);
    assert.equal(result.error, undefined);
  });

  it('both directions ended: the relay waits for the slow side to flush before closing', async () => {
    const [a, source] = await pair();
    const [b, sink] = await pair();
    const total = 8 << 20;
    sink.pause();
    sink.end(); // the far side has nothing to say
    source.end(Buffer.alloc(total, 0x43));
    const r = relay(a, b, { sendTimeoutMs: 5_000 });
    assert.equal(await readLate(sink), total);
    await r;
  });

  it('into an smux stream whose window is full: the relay ends only after the stream has sent every byte', async () => {
    // The far end has half-closed and reads nothing yet. The source sends all but 10 KiB of
    // the stream's initial 256 KiB window, then a last 64 KiB and its FIN: the stream takes
    // 10 KiB of that chunk, and the source's 'end' comes while 54 KiB wait for window.
    // Destroying the stream then would end it early behind a clean FIN.
    const sp = await sessionPair();
    after(() => sp.close());
    const server = net.createServer({ allowHalfOpen: true });
    servers.push(server);
    await new Promise<void>((res) => server.listen(0, LOCAL, () => res()));
    const sourceP = new Promise<net.Socket>((res) => server.once('connection', res));
    const a = await dialTcp(`${LOCAL}:${(server.address() as net.AddressInfo).port}`);
    const source = await sourceP;
    sockets.push(a, source);
    const accepted = nextStream(sp.server);
    const stream = sp.client.openStream();
    const far = await accepted;
    far.pause();
    far.end();
    const r = relay(a, stream, { sendTimeoutMs: 5_000 });
    await new Promise((res) => setTimeout(res, 100));
    const first = 256 * 1024 - 10 * 1024;
    source.write(Buffer.alloc(first, 0x44));
    await new Promise((res) => setTimeout(res, 200));
    source.end(Buffer.alloc(64 * 1024, 0x45));
    assert.equal(await readLate(far), first + 64 * 1024);
    await r;
  });
});

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
    assert.ok(took >= 500 && took < 60_000, `ended after ${took} ms`);
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

describe('relay idle timeout and late start', () => {
  after(() => {
    for (const s of sockets) s.destroy();
    for (const s of servers) s.close();
  });

  it('relays with different idle timeouts each end after their own, a busy one goes on', async () => {
    const started = Date.now();
    const idle = async (ms: number): Promise<number> => {
      const [a] = await pair();
      const [b] = await pair();
      const r = await relay(a, b, { idleTimeoutMs: ms });
      assert.equal(r.error, undefined);
      assert.ok(a.destroyed && b.destroyed);
      return Date.now() - started;
    };
    const [a, source] = await pair();
    const [b, sink] = await pair();
    let got = 0;
    sink.on('data', (c: Buffer) => (got += c.length));
    let busyEnded = false;
    const busy = relay(a, b, { idleTimeoutMs: 400 }).then((r) => {
      busyEnded = true;
      return r;
    });
    const ticker = setInterval(() => source.write('x'), 100);
    const [short, long] = await Promise.all([idle(300), idle(1_500)]);
    clearInterval(ticker);
    assert.ok(short >= 300 && short < long, `300 ms relay ended after ${short} ms`);
    assert.ok(long >= 1_500 && long < 60_000, `1,500 ms relay ended after ${long} ms`);
    assert.equal(busyEnded, false, 'a relay with data every 100 ms hit its 400 ms idle timeout');
    const r = await busy;
    assert.equal(r.error, undefined);
    assert.ok(r.aToB >= 10 && got === r.aToB, `${r.aToB} bytes relayed, ${got} received`);
  });

  it('a side that ended before the relay began: the other side gets its FIN, the reply still flows', async () => {
    const [a, visitor] = await pair();
    const [b, target] = await pair();
    visitor.end('request');
    const request = await new Promise<Buffer>((res) => {
      const parts: Buffer[] = [];
      a.on('data', (c: Buffer) => parts.push(c));
      a.once('end', () => res(Buffer.concat(parts)));
    });
    a.removeAllListeners('data');
    assert.equal(a.readableEnded, true);
    assert.equal(request.toString(), 'request');
    const r = relay(a, b, { halfCloseIdleMs: 10_000 });
    await new Promise<void>((res) => target.once('end', () => res()));
    const t0 = Date.now();
    target.end('reply');
    let reply = '';
    visitor.on('data', (c: Buffer) => (reply += c.toString()));
    await new Promise<void>((res) => visitor.once('end', () => res()));
    const res = await r;
    assert.ok(Date.now() - t0 < 5_000, 'the relay did not settle once both directions were done');
    assert.equal(reply, 'reply');
    assert.equal(res.bToA, 5);
  });
});

function relayAndWait(a: net.Socket, b: net.Socket, sendTimeoutMs: number): ReturnType<typeof relay> {
  return relay(a, b, { sendTimeoutMs, halfCloseIdleMs: 10_000 });
}

