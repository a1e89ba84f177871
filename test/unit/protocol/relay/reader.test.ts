import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ProtocolError, type ProtocolErrorKind } from '../../../../src/core/errors';
import { RelayReader } from '../../../../src/protocol/relay/reader';
import { buildConnectRequest, decodeRequest, decodeResponse, encodeResponse } from '../../../../src/protocol/relay/message';
import { parseTunnelId } from '../../../../src/protocol/relay/tunnel-id';
import { chunkings } from '../../../helpers/vectors';

function isProtocolError(kind: ProtocolErrorKind) {
  return (err: unknown): boolean => err instanceof ProtocolError && err.kind === kind;
}

const REQ = buildConnectRequest({
  srcAddr: '127.0.0.1:50000',
  dstAddr: 'ssh.srv-2.local:0',
  tunnelId: parseTunnelId('aede1f6a-762b-45da-b937-b6632356555a'),
  udp: false,
});
const PAYLOAD = Buffer.from('then raw payload for the next layer');

/** Pushes chunks until the reader completes; returns the result and everything left over. */
function feed<M>(reader: RelayReader<M>, chunks: Buffer[]) {
  for (let i = 0; i < chunks.length; i++) {
    const r = reader.push(chunks[i]!);
    if (r) return { ...r, leftover: Buffer.concat([r.rest, ...chunks.slice(i + 1)]), index: i };
  }
  return undefined;
}

describe('RelayReader', () => {
  const stream = Buffer.concat([REQ, PAYLOAD]);

  test('every chunking yields the same request, the exact raw bytes and the payload after it', () => {
    const want = decodeRequest(REQ);
    for (const { name, chunks } of chunkings(stream, 200)) {
      const reader = RelayReader.forRequest();
      const r = feed(reader, chunks);
      assert.ok(r, `${name}: completes`);
      assert.deepEqual(r.message, want, name);
      assert.deepEqual(r.raw, REQ, name);
      assert.deepEqual(r.leftover, PAYLOAD, name);
      assert.equal(reader.done, true);
    }
  });

  test('does not complete one byte early', () => {
    const reader = RelayReader.forRequest();
    assert.equal(reader.push(REQ.subarray(0, REQ.length - 1)), undefined);
    assert.equal(reader.bufferedBytes, REQ.length - 1);
    const r = reader.push(REQ.subarray(REQ.length - 1));
    assert.ok(r);
    assert.equal(r.rest.length, 0);
  });

  test('a message with FEALEN 0 completes on its 4th byte', () => {
    const reader = RelayReader.forResponse();
    assert.equal(reader.push(Buffer.from([1, 0, 0])), undefined);
    const r = reader.push(Buffer.from([0, 0xaa]));
    assert.deepEqual(r?.message, { status: 0, features: [] });
    assert.deepEqual(r?.rest, Buffer.from([0xaa]));
  });

  test('empty chunks are harmless', () => {
    const reader = RelayReader.forRequest();
    assert.equal(reader.push(Buffer.alloc(0)), undefined);
    assert.equal(reader.push(REQ.subarray(0, 2)), undefined);
    assert.equal(reader.push(Buffer.alloc(0)), undefined);
    assert.ok(reader.push(REQ.subarray(2)));
  });

  test('a single chunk is not copied: raw and rest are views of it', () => {
    const reader = RelayReader.forRequest();
    const r = reader.push(stream)!;
    assert.equal(r.raw.buffer, stream.buffer);
    assert.equal(r.rest.buffer, stream.buffer);
  });

  test('bad version is reported on the first byte', () => {
    const reader = RelayReader.forRequest();
    assert.throws(() => reader.push(Buffer.from([0x05])), isProtocolError('bad_version'));
    // The reader stays failed.
    assert.throws(() => reader.push(REQ), isProtocolError('bad_version'));
  });

  test('only byte 0 is checked as the version', () => {
    const reader = RelayReader.forRequest();
    assert.equal(reader.push(Buffer.from([0x01])), undefined);
    assert.equal(reader.push(Buffer.from([0x05, 0x00])), undefined);
  });

  test('an HTTP or TLS first byte is a bad version', () => {
    assert.throws(() => RelayReader.forRequest().push(Buffer.from('GET / HTTP/1.1\r\n')), isProtocolError('bad_version'));
    assert.throws(() => RelayReader.forRequest().push(Buffer.from([0x16, 0x03, 0x01])), isProtocolError('bad_version'));
  });

  test('maxFeaturesBytes rejects a large FEALEN as soon as the header is in, before buffering', () => {
    const reader = RelayReader.forRequest({ maxFeaturesBytes: 100 });
    assert.throws(() => reader.push(Buffer.from([1, 1, 0x00, 101])), isProtocolError('too_large'));
    const ok = RelayReader.forRequest({ maxFeaturesBytes: 100 });
    assert.equal(ok.push(Buffer.from([1, 1, 0x00, 100])), undefined);
  });

  test('the largest message (FEALEN 65535) is accepted byte by byte and holds no more than it', () => {
    const features = Array.from({ length: 127 }, () => ({ kind: 'userAuth' as const, username: 'u'.repeat(255), password: 'p'.repeat(255) }));
    const body = encodeResponse({ status: 0, features });
    // Pad with an unknown feature to exactly 65535 bytes of features.
    const pad = 65535 - (body.length - 4) - 3;
    const padTlv = Buffer.alloc(3 + pad);
    padTlv[0] = 0x7f;
    padTlv.writeUInt16BE(pad, 1);
    const msg = Buffer.concat([body, padTlv]);
    msg.writeUInt16BE(65535, 2);
    assert.equal(msg.length, 4 + 65535);
    const reader = RelayReader.forResponse();
    let r;
    for (let i = 0; i < msg.length; i += 1000) {
      r = reader.push(msg.subarray(i, i + 1000));
      assert.ok(reader.bufferedBytes <= msg.length);
    }
    assert.ok(r);
    assert.equal(r.message.features.length, 128);
    assert.deepEqual(decodeResponse(r.raw), r.message);
  });

  test('a malformed feature block fails when the message completes', () => {
    const reader = RelayReader.forRequest();
    assert.equal(reader.push(Buffer.from([1, 1, 0, 5, 4, 0])), undefined);
    assert.throws(() => reader.push(Buffer.from([3, 0, 1])), isProtocolError('bad_feature'));
  });

  test('pushing after completion is a programming error, not a ProtocolError', () => {
    const reader = RelayReader.forRequest();
    reader.push(REQ);
    assert.throws(
      () => reader.push(PAYLOAD),
      (err: unknown) => err instanceof Error && !(err instanceof ProtocolError),
    );
  });
});
