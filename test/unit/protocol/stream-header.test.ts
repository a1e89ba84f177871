import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ProtocolError, type ProtocolErrorKind } from '../../../src/core/errors';
import { StreamHeaderReader, decodeStreamHeader, encodeStreamHeader } from '../../../src/protocol/stream-header';
import { chunkings } from '../../helpers/vectors';

function h(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}

function isProtocolError(kind: ProtocolErrorKind) {
  return (err: unknown): boolean => err instanceof ProtocolError && err.kind === kind;
}

// protocol.md §9.6
const EX_9_6 = h(`01 00 00 20
  02 00 07 01 7f 00 00 01 c3 50
  02 00 13 03 0f 73 73 68 2e 73 72 76 2d 32 2e 6c 6f 63 61 6c 00 00`);
const EX_9_6_HTTP = h('01 00 00 1c  02 00 07 01 cb 00 71 07 00 00  02 00 0f 03 0b 65 78 61 6d 70 6c 65 2e 63 6f 6d 00 50');

describe('encodeStreamHeader', () => {
  test('visitor stream (protocol.md §9.6)', () => {
    assert.deepEqual(encodeStreamHeader('127.0.0.1:50000', 'ssh.srv-2.local:0'), EX_9_6);
  });

  test('HTTP entry point stream with X-Forwarded-For source, port 0', () => {
    assert.deepEqual(encodeStreamHeader('203.0.113.7:0', 'example.com:80'), EX_9_6_HTTP);
  });

  test('dst is optional', () => {
    assert.equal(encodeStreamHeader('10.0.0.1:1').toString('hex'), '0100000a' + '020007010a0000010001');
  });

  test('IPv6 source', () => {
    const b = encodeStreamHeader('[2001:db8::7]:443', 'example.com:443');
    assert.deepEqual(decodeStreamHeader(b), { src: '[2001:db8::7]:443', dst: 'example.com:443' });
  });

  test('refuses an oversized destination name', () => {
    assert.throws(() => encodeStreamHeader('1.2.3.4:0', `${'a'.repeat(256)}:80`), isProtocolError('bad_address'));
  });
});

describe('decodeStreamHeader / StreamHeaderReader', () => {
  test('decodes §9.6', () => {
    assert.deepEqual(decodeStreamHeader(EX_9_6), { src: '127.0.0.1:50000', dst: 'ssh.srv-2.local:0' });
    assert.deepEqual(decodeStreamHeader(EX_9_6_HTTP), { src: '203.0.113.7:0', dst: 'example.com:80' });
  });

  test('every chunking gives the header and the payload after it', () => {
    const payload = Buffer.from('GET / HTTP/1.1\r\nHost: example.com\r\n\r\n');
    const stream = Buffer.concat([EX_9_6_HTTP, payload]);
    for (const { name, chunks } of chunkings(stream, 100)) {
      const reader = new StreamHeaderReader();
      let got;
      let i = 0;
      for (; i < chunks.length && !got; i++) got = reader.push(chunks[i]!);
      assert.ok(got, name);
      assert.equal(got.src, '203.0.113.7:0', name);
      assert.equal(got.dst, 'example.com:80', name);
      assert.deepEqual(Buffer.concat([got.rest, ...chunks.slice(i)]), payload, name);
    }
  });

  test('a header with only src, or with no Addr at all', () => {
    assert.deepEqual(decodeStreamHeader(h('0100000a 020007010a0000010001')), { src: '10.0.0.1:1', dst: undefined });
    assert.deepEqual(decodeStreamHeader(h('01000000')), { src: undefined, dst: undefined });
  });

  test('later Addr features overwrite dst; other features are ignored', () => {
    const b = h('01 00 0023  020007010a0000010001  0400020001  0200070101010101 0002  020007010202020200 03');
    assert.deepEqual(decodeStreamHeader(b), { src: '10.0.0.1:1', dst: '2.2.2.2:3' });
  });

  for (const status of [1, 5, 6, 0x80]) {
    test(`status ${status} is an error (peer connect failed)`, () => {
      assert.throws(() => decodeStreamHeader(Buffer.from([1, status, 0, 0])), isProtocolError('bad_header'));
      assert.throws(() => new StreamHeaderReader().push(Buffer.from([1, status, 0, 0])), isProtocolError('bad_header'));
    });
  }

  test('bad version and truncation', () => {
    assert.throws(() => new StreamHeaderReader().push(Buffer.from([2])), isProtocolError('bad_version'));
    assert.throws(() => decodeStreamHeader(EX_9_6.subarray(0, 10)), isProtocolError('truncated'));
  });
});
