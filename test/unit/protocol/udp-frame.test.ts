import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ProtocolError, type ProtocolErrorKind } from '../../../src/core/errors';
import {
  MAX_DATAGRAM_BYTES,
  UdpFrameDecoder,
  encodeDatagram,
  encodeDatagramHeader,
} from '../../../src/protocol/udp-frame';
import { chunkings } from '../../helpers/vectors';

function isProtocolError(kind: ProtocolErrorKind) {
  return (err: unknown): boolean => err instanceof ProtocolError && err.kind === kind;
}

function decodeAll(dec: UdpFrameDecoder, chunks: Buffer[]): Buffer[] {
  return chunks.flatMap((c) => dec.push(c));
}

describe('encodeDatagram', () => {
  test('"hello" (protocol.md §9.8)', () => {
    assert.equal(encodeDatagram(Buffer.from('hello')).toString('hex'), '000568656c6c6f');
  });

  test('empty and maximal datagrams', () => {
    assert.equal(encodeDatagram(Buffer.alloc(0)).toString('hex'), '0000');
    const max = encodeDatagram(Buffer.alloc(MAX_DATAGRAM_BYTES, 7));
    assert.equal(max.length, 2 + 65535);
    assert.equal(max.readUInt16BE(0), 65535);
  });

  test('refuses more than 65535 bytes', () => {
    assert.throws(() => encodeDatagram(Buffer.alloc(65536)), isProtocolError('too_large'));
    assert.throws(() => encodeDatagramHeader(65536), isProtocolError('too_large'));
    assert.throws(() => encodeDatagramHeader(-1), isProtocolError('too_large'));
    assert.equal(encodeDatagramHeader(0x1234).toString('hex'), '1234');
  });
});

describe('UdpFrameDecoder', () => {
  const datagrams = [Buffer.from('hello udp visitor 1'), Buffer.alloc(0), Buffer.from([0]), Buffer.alloc(300, 0xab), Buffer.from('end')];
  const stream = Buffer.concat(datagrams.map((d) => encodeDatagram(d)));

  test('every chunking yields the same datagrams', () => {
    for (const { name, chunks } of chunkings(stream, 200)) {
      const dec = new UdpFrameDecoder();
      assert.deepEqual(decodeAll(dec, chunks), datagrams, name);
      assert.equal(dec.partial, false, name);
      dec.finish();
    }
  });

  test('a datagram inside one chunk is a zero-copy view', () => {
    const dec = new UdpFrameDecoder();
    const out = dec.push(stream);
    assert.equal(out[0]!.buffer, stream.buffer);
    assert.equal(out[3]!.buffer, stream.buffer);
  });

  test('a datagram split over chunks is copied into one buffer', () => {
    const dec = new UdpFrameDecoder();
    const frame = encodeDatagram(Buffer.from('abcdef'));
    assert.deepEqual(dec.push(frame.subarray(0, 4)), []);
    assert.equal(dec.partial, true);
    assert.throws(() => dec.finish(), isProtocolError('truncated'));
    const out = dec.push(frame.subarray(4));
    assert.deepEqual(out, [Buffer.from('abcdef')]);
  });

  test('a zero-length datagram is delivered even when its header ends the chunk', () => {
    const dec = new UdpFrameDecoder();
    assert.deepEqual(dec.push(Buffer.from([0])), []);
    assert.deepEqual(dec.push(Buffer.from([0])), [Buffer.alloc(0)]);
  });

  test('oversize frames are refused on the length field by default', () => {
    const dec = new UdpFrameDecoder({ maxDatagramBytes: 10 });
    assert.deepEqual(dec.push(encodeDatagram(Buffer.alloc(10, 1))), [Buffer.alloc(10, 1)]);
    assert.throws(() => dec.push(Buffer.from([0x00, 0x0b])), isProtocolError('too_large'));
    assert.throws(() => dec.push(Buffer.from([0x00])), isProtocolError('too_large'), 'stays failed');
  });

  test('truncate mode keeps the first max bytes and drops the rest, like gost', () => {
    const frames = Buffer.concat([encodeDatagram(Buffer.from('0123456789abcdef')), encodeDatagram(Buffer.from('xyz'))]);
    for (const { name, chunks } of chunkings(frames, 50)) {
      const dec = new UdpFrameDecoder({ maxDatagramBytes: 4, oversize: 'truncate' });
      assert.deepEqual(decodeAll(dec, chunks), [Buffer.from('0123'), Buffer.from('xyz')], name);
    }
  });

  test('option checks', () => {
    assert.throws(() => new UdpFrameDecoder({ maxDatagramBytes: 0 }), RangeError);
    assert.throws(() => new UdpFrameDecoder({ maxDatagramBytes: 65536 }), RangeError);
  });
});
