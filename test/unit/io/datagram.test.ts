import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { framedDatagrams } from '../../../src/io/datagram';
import { UdpFrameDecoder } from '../../../src/protocol/udp-frame';

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
