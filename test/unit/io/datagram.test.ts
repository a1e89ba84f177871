import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { framedDatagrams, relayDatagramPorts, relayDatagrams, type DatagramPort } from '../../../src/io/datagram';
import type { RelayResult } from '../../../src/io/pipe';
import { dialUdp } from '../../../src/transport/dial';
import { createUdpListener } from '../../../src/transport/udp/listener';
import { Metadata } from '../../../src/core/metadata';
import { silentLogger } from '../../../src/observe/logger';
import { isSendTimeout } from '../../../src/core/errors';
import { encodeDatagram, UdpFrameDecoder } from '../../../src/protocol/udp-frame';

/** A byte stream that records its writes (one entry per _write/_writev call) and never answers. */
class Recorder extends Duplex {
  writes: Buffer[] = [];
  hold = false;
  #held: Array<() => void> = [];
  constructor(highWaterMark = 16 * 1024) {
    super({ highWaterMark });
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.writes.push(chunk);
    if (this.hold) this.#held.push(cb);
    else cb();
  }
  override _writev(chunks: Array<{ chunk: Buffer }>, cb: () => void): void {
    this._write(Buffer.concat(chunks.map((c) => c.chunk)), 'latin1', cb);
  }
  release(): void {
    this.hold = false;
    for (const cb of this.#held.splice(0)) cb();
  }
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('framedDatagrams', () => {
  it('datagrams written in one event-loop turn leave in one write, framed and in order', async () => {
    const inner = new Recorder();
    const d = framedDatagrams(inner);
    const sent = [Buffer.from('a'), Buffer.alloc(1400, 7), Buffer.from('third')];
    for (const dg of sent) d.write(dg);
    assert.equal(inner.writes.length, 0);
    await turn();
    await turn();
    assert.equal(inner.writes.length, 1);
    assert.deepEqual(new UdpFrameDecoder().push(Buffer.concat(inner.writes)), sent);
    d.write(Buffer.from('next turn'));
    await turn();
    await turn();
    assert.equal(inner.writes.length, 2);
    d.destroy();
  });

  it('a byte stream that takes nothing stops the datagram writer', async () => {
    const inner = new Recorder(4096);
    inner.hold = true;
    const d = framedDatagrams(inner);
    let accepted = 0;
    for (let i = 0; i < 10_000; i++) {
      accepted++;
      if (!d.write(Buffer.alloc(1000))) break;
      if (i % 16 === 0) await turn();
    }
    assert.ok(accepted < 1000, `${accepted} datagrams accepted`);
    const before = d.writableLength;
    await turn();
    await turn();
    assert.equal(d.writableLength, before);
    inner.release();
    await new Promise<void>((r) => d.once('drain', () => r()));
    d.destroy();
  });

  it('decodes datagrams from any chunking of the byte stream', async () => {
    const inner = new Recorder();
    const d = framedDatagrams(inner);
    const got: Buffer[] = [];
    d.on('data', (dg: Buffer) => got.push(dg));
    inner.push(Buffer.from([0, 2, 0x61]));
    inner.push(Buffer.from([0x62, 0, 1, 0x63]));
    await turn();
    assert.deepEqual(got.map((b) => b.toString()), ['ab', 'c']);
    d.destroy();
  });
});

/** A UDP socket on loopback that records what it receives. */
async function peer(): Promise<{ sock: dgram.Socket; port: number; got: Buffer[]; close: () => void }> {
  const sock = dgram.createSocket('udp4');
  const got: Buffer[] = [];
  sock.on('message', (m) => got.push(m));
  sock.bind(0, '127.0.0.1');
  await once(sock, 'listening');
  return { sock, port: sock.address().port, got, close: () => sock.close() };
}

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function sendTo(sock: dgram.Socket, port: number, dg: Buffer): Promise<void> {
  return new Promise((res, rej) => sock.send(dg, port, '127.0.0.1', (err) => (err ? rej(err) : res())));
}

function portOf(addr: string): number {
  return Number(addr.slice(addr.lastIndexOf(':') + 1));
}

describe('relayDatagrams (a dialed UDP socket and a framed byte stream)', () => {
  it('datagrams from the socket leave framed, in order, one write per turn; framed bytes become datagrams', async () => {
    const p = await peer();
    const conn = await dialUdp(`127.0.0.1:${p.port}`);
    const stream = new Recorder();
    let result: RelayResult | undefined;
    relayDatagrams(conn, stream, {}, (r) => (result = r));
    const sent = [Buffer.from('one'), Buffer.alloc(1400, 9), Buffer.alloc(0), Buffer.alloc(30_000, 3), Buffer.from('last')];
    const connPort = portOf(conn.localAddress);
    for (const dg of sent) p.sock.send(dg, connPort, '127.0.0.1');
    await until(() => new UdpFrameDecoder().push(Buffer.concat(stream.writes)).length === sent.length, 'five framed datagrams');
    assert.deepEqual(new UdpFrameDecoder().push(Buffer.concat(stream.writes)), sent);
    assert.ok(stream.writes.length < sent.length, `${stream.writes.length} writes for ${sent.length} datagrams`);

    // The other way: one frame split over two chunks, two frames in one chunk.
    const back = Buffer.concat([encodeDatagram(Buffer.from('reply-1')), encodeDatagram(Buffer.from('reply-2')), encodeDatagram(Buffer.alloc(2000, 5))]);
    stream.push(back.subarray(0, 4));
    stream.push(back.subarray(4));
    await until(() => p.got.length === 3, 'three replies');
    assert.deepEqual(p.got.map((b) => b.length), [7, 7, 2000]);
    assert.equal(p.got[1]!.toString(), 'reply-2');

    // The stream's peer finishes: the relay ends, the socket is closed, counts are payload bytes.
    stream.push(null);
    await until(() => result !== undefined, 'the relay to settle');
    assert.equal(result!.error, undefined);
    assert.equal(result!.aToB, sent.reduce((n, b) => n + b.length, 0));
    assert.equal(result!.bToA, 7 + 7 + 2000);
    assert.ok(conn.destroyed);
    p.close();
  });

  it('a burst larger than one poll leaves in one write, not one per poll', async () => {
    const p = await peer();
    const conn = await dialUdp(`127.0.0.1:${p.port}`);
    const stream = new Recorder(1 << 20);
    relayDatagrams(conn, stream, {}, () => {});
    const connPort = portOf(conn.localAddress);
    // Sent in one synchronous loop: all 100 wait in the socket before the relay's first poll,
    // which reads 32 of them at most.
    for (let i = 0; i < 100; i++) p.sock.send(Buffer.alloc(1000, i), connPort, '127.0.0.1');
    await until(() => new UdpFrameDecoder().push(Buffer.concat(stream.writes)).length === 100, 'a hundred datagrams');
    assert.ok(stream.writes.length <= 2, `${stream.writes.length} writes`);
    conn.destroy();
    p.close();
  });

  it('a stream that takes nothing: at most queueLimit datagrams wait, the rest are dropped', async () => {
    const p = await peer();
    const conn = await dialUdp(`127.0.0.1:${p.port}`);
    const stream = new Recorder(4096);
    stream.hold = true;
    let result: RelayResult | undefined;
    relayDatagrams(conn, stream, {}, (r) => (result = r));
    const connPort = portOf(conn.localAddress);
    const total = 3000;
    for (let i = 0; i < total; i++) {
      const dg = Buffer.alloc(100);
      dg.writeUInt32BE(i);
      await sendTo(p.sock, connPort, dg);
      if (i % 100 === 0) await turn();
    }
    // Every datagram reaches the relay (the kernel's queue is read) while the stream still holds.
    await new Promise((r) => setTimeout(r, 200));
    stream.release();
    // Keep releasing until the relay has written everything it kept.
    for (let i = 0; i < 20; i++) {
      await turn();
      stream.release();
    }
    const got = new UdpFrameDecoder().push(Buffer.concat(stream.writes));
    assert.ok(got.length < total, `${got.length} of ${total} kept`);
    assert.ok(got.length >= conn.queueLimit, `${got.length} kept`);
    // What was kept is in order.
    const seq = got.map((d) => d.readUInt32BE(0));
    assert.deepEqual(seq, [...seq].sort((a, b) => a - b));
    // The relay goes on after the stall: a new datagram still gets through.
    const before = got.length;
    await sendTo(p.sock, connPort, Buffer.from('after'));
    await until(() => new UdpFrameDecoder().push(Buffer.concat(stream.writes)).length === before + 1, 'the datagram after the stall');
    assert.equal(new UdpFrameDecoder().push(Buffer.concat(stream.writes)).at(-1)!.toString(), 'after');
    conn.destroy();
    await until(() => result !== undefined, 'the relay to settle');
    p.close();
  });

  it('a stream that takes nothing for sendTimeout ends the relay with a send-timeout error', async () => {
    const p = await peer();
    const conn = await dialUdp(`127.0.0.1:${p.port}`);
    const stream = new Recorder(1024);
    stream.hold = true;
    let result: RelayResult | undefined;
    relayDatagrams(conn, stream, { sendTimeoutMs: 100 }, (r) => (result = r));
    const connPort = portOf(conn.localAddress);
    for (let i = 0; i < 5; i++) await sendTo(p.sock, connPort, Buffer.alloc(800));
    await until(() => result !== undefined, 'the send timeout');
    assert.ok(isSendTimeout(result!.error), String(result!.error));
    assert.ok(conn.destroyed && stream.destroyed);
    p.close();
  });

  it('the socket side closing ends the stream after what it sent has been written', async () => {
    const p = await peer();
    const conn = await dialUdp(`127.0.0.1:${p.port}`);
    const stream = new Recorder(16);
    stream.hold = true;
    let result: RelayResult | undefined;
    relayDatagrams(conn, stream, {}, (r) => (result = r));
    const connPort = portOf(conn.localAddress);
    // The first fills the stream (it wants a 'drain'); the next two wait in the relay.
    for (const dg of [Buffer.alloc(100, 1), Buffer.from('second'), Buffer.from('third')]) {
      await sendTo(p.sock, connPort, dg);
      await new Promise((r) => setTimeout(r, 30));
    }
    assert.equal(new UdpFrameDecoder().push(Buffer.concat(stream.writes)).length, 1);
    conn.destroy();
    await until(() => result !== undefined, 'the relay to settle');
    assert.equal(result!.aToB, 100 + 6 + 5);
    assert.ok(!stream.destroyed && stream.writableEnded, 'the stream is ended, not destroyed, while it flushes');
    const finished = once(stream, 'finish');
    stream.release();
    await finished;
    assert.deepEqual(new UdpFrameDecoder().push(Buffer.concat(stream.writes)).slice(1).map(String), ['second', 'third']);
    await until(() => stream.destroyed, 'the stream to be destroyed once flushed');
    p.close();
  });

  it('a stream error destroys the socket and is the result', async () => {
    const p = await peer();
    const conn = await dialUdp(`127.0.0.1:${p.port}`);
    const stream = new Recorder();
    let result: RelayResult | undefined;
    relayDatagrams(conn, stream, {}, (r) => (result = r));
    stream.destroy(new Error('reset by peer'));
    await until(() => result !== undefined, 'the relay to settle');
    assert.equal(result!.error?.message, 'reset by peer');
    assert.ok(conn.destroyed);
    p.close();
  });
});

describe('relayDatagrams (a UDP listener session)', () => {
  async function listen(md: Record<string, unknown>): Promise<{ port: number; sessions: DatagramPort[]; close: () => Promise<void> }> {
    const l = createUdpListener({ addr: '127.0.0.1:0', metadata: new Metadata(md), logger: silentLogger });
    const sessions: DatagramPort[] = [];
    await l.listen((c) => sessions.push(c.stream as DatagramPort));
    return { port: portOf(l.address()), sessions, close: () => l.close() };
  }

  it('datagrams that came before the relay began are relayed first, in order; replies reach the client', async () => {
    const l = await listen({ keepalive: true });
    const client = await peer();
    for (const s of ['a', 'b', 'c']) await sendTo(client.sock, l.port, Buffer.from(s));
    await until(() => l.sessions.length === 1 && l.sessions[0]!.readableLength === 3, 'three queued datagrams');
    const stream = new Recorder();
    let result: RelayResult | undefined;
    relayDatagrams(l.sessions[0]!, stream, {}, (r) => (result = r));
    await sendTo(client.sock, l.port, Buffer.from('d'));
    await until(() => new UdpFrameDecoder().push(Buffer.concat(stream.writes)).length === 4, 'four datagrams');
    assert.deepEqual(new UdpFrameDecoder().push(Buffer.concat(stream.writes)).map(String), ['a', 'b', 'c', 'd']);
    stream.push(Buffer.concat([encodeDatagram(Buffer.from('r1')), encodeDatagram(Buffer.from('r2'))]));
    await until(() => client.got.length === 2, 'two replies');
    assert.deepEqual(client.got.map(String), ['r1', 'r2']);
    assert.equal(result, undefined);
    await l.close();
    await until(() => result !== undefined, 'the relay to settle with the listener');
    client.close();
  });

  it('keepalive=false: one reply reaches the client, then the session and its stream end', async () => {
    const l = await listen({});
    const client = await peer();
    await sendTo(client.sock, l.port, Buffer.from('query'));
    await until(() => l.sessions.length === 1, 'a session');
    const stream = new Recorder();
    let result: RelayResult | undefined;
    relayDatagrams(l.sessions[0]!, stream, {}, (r) => (result = r));
    stream.push(Buffer.concat([encodeDatagram(Buffer.from('answer')), encodeDatagram(Buffer.from('extra'))]));
    await until(() => result !== undefined && stream.writableFinished, 'the relay to settle and the stream to finish');
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(client.got.map(String), ['answer']);
    assert.equal(result!.error, undefined);
    await l.close();
    client.close();
  });
});

describe('relayDatagramPorts (a UDP listener session and a dialed socket)', () => {
  async function setup(md: Record<string, unknown>): Promise<{
    client: Awaited<ReturnType<typeof peer>>;
    listenerPort: number;
    sessions: DatagramPort[];
    service: dgram.Socket;
    close: () => Promise<void>;
  }> {
    // The service answers each datagram with it twice over.
    const service = dgram.createSocket('udp4');
    service.on('message', (m, r) => service.send(Buffer.concat([m, m]), r.port, r.address));
    service.bind(0, '127.0.0.1');
    await once(service, 'listening');
    const l = createUdpListener({ addr: '127.0.0.1:0', metadata: new Metadata(md), logger: silentLogger });
    const sessions: DatagramPort[] = [];
    await l.listen((c) => sessions.push(c.stream as DatagramPort));
    const client = await peer();
    return {
      client,
      listenerPort: portOf(l.address()),
      sessions,
      service,
      close: async () => {
        await l.close();
        client.close();
        service.close();
      },
    };
  }

  it('datagrams go both ways, the first ones included; each side counts payload bytes; closing one ends both', async () => {
    const t = await setup({ keepalive: true });
    await sendTo(t.client.sock, t.listenerPort, Buffer.from('first'));
    await until(() => t.sessions.length === 1, 'a session');
    const dial = await dialUdp(`127.0.0.1:${t.service.address().port}`);
    let result: RelayResult | undefined;
    relayDatagramPorts(t.sessions[0]!, dial, (r) => (result = r));
    await sendTo(t.client.sock, t.listenerPort, Buffer.alloc(1400, 1));
    await until(() => t.client.got.length === 2, 'two replies');
    assert.deepEqual(t.client.got.map((b) => b.length).sort((a, b) => a - b), [10, 2800]);
    t.sessions[0]!.destroy();
    await until(() => result !== undefined, 'the relay to settle');
    assert.equal(result!.aToB, 5 + 1400);
    assert.equal(result!.bToA, 10 + 2800);
    assert.equal(result!.error, undefined);
    assert.ok(dial.destroyed);
    await t.close();
  });

  it('keepalive=false: one reply reaches the client, then both sides are closed', async () => {
    const t = await setup({});
    await sendTo(t.client.sock, t.listenerPort, Buffer.from('q'));
    await until(() => t.sessions.length === 1, 'a session');
    const dial = await dialUdp(`127.0.0.1:${t.service.address().port}`);
    let result: RelayResult | undefined;
    relayDatagramPorts(t.sessions[0]!, dial, (r) => (result = r));
    await until(() => result !== undefined, 'the relay to settle after the reply');
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(t.client.got.map(String), ['qq']);
    assert.ok(dial.destroyed);
    await t.close();
  });
});
