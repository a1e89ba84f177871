import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ProtocolError } from '../../../../src/core/errors';
import { sniffHost, sniffProtocol } from '../../../../src/protocol/sniff/host';

function tlsHelloWithSni(name: string): Buffer {
  const host = Buffer.from(name);
  const entry = Buffer.concat([Buffer.from([0, host.length >> 8, host.length & 0xff]), host]);
  const list = Buffer.concat([Buffer.from([entry.length >> 8, entry.length & 0xff]), entry]);
  const extension = Buffer.concat([Buffer.from([0, 0, list.length >> 8, list.length & 0xff]), list]);
  const body = Buffer.concat([
    Buffer.from([3, 3]),
    Buffer.alloc(32),
    Buffer.from([0]),
    Buffer.from([0, 2, 0x13, 0x01]),
    Buffer.from([1, 0]),
    Buffer.from([extension.length >> 8, extension.length & 0xff]),
    extension,
  ]);
  const hs = Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 0xff]), body]);
  return Buffer.concat([Buffer.from([0x16, 3, 1, hs.length >> 8, hs.length & 0xff]), hs]);
}

describe('sniffHost', () => {
  test('HTTP: Host with the default port 80', () => {
    assert.deepEqual(sniffHost(Buffer.from('GET / HTTP/1.1\r\nHost: srv-2.local\r\n\r\n')), { done: true, value: 'srv-2.local:80' });
  });

  test('HTTP: explicit port and IPv6', () => {
    assert.deepEqual(sniffHost(Buffer.from('GET / HTTP/1.1\r\nHost: a:8080\r\n\r\n')), { done: true, value: 'a:8080' });
    assert.deepEqual(sniffHost(Buffer.from('GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n')), { done: true, value: '[::1]:80' });
  });

  test('HTTP without Host: decided, no target', () => {
    assert.deepEqual(sniffHost(Buffer.from('GET / HTTP/1.0\r\n\r\n')), { done: true, value: undefined });
  });

  test('TLS: SNI on port 443', () => {
    assert.deepEqual(sniffHost(tlsHelloWithSni('srv-2.local')), { done: true, value: 'srv-2.local:443' });
  });

  test('incomplete input asks for more, and gives up at eof', () => {
    const hello = tlsHelloWithSni('x.example');
    for (const partial of [Buffer.alloc(0), Buffer.from('GE'), Buffer.from('GET / HTTP/1.1\r\nHost: a'), hello.subarray(0, 20)]) {
      assert.deepEqual(sniffHost(partial), { done: false });
      assert.deepEqual(sniffHost(partial, true), { done: true, value: undefined });
    }
  });

  test('anything else has no target', () => {
    assert.deepEqual(sniffHost(Buffer.from('SSH-2.0-OpenSSH_9.6\r\n')), { done: true, value: undefined });
    assert.deepEqual(sniffHost(Buffer.from([0x01, 0x01, 0x00, 0x00])), { done: true, value: undefined });
  });

  test('malformed HTTP or TLS throws ProtocolError', () => {
    assert.throws(() => sniffHost(Buffer.from('GET /\r\n\r\n')), ProtocolError);
    assert.throws(() => sniffHost(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00])), ProtocolError);
  });
});

describe('sniffProtocol', () => {
  test('HTTP is decided on the method prefix, before the head is complete', () => {
    assert.deepEqual(sniffProtocol(Buffer.from('GET / HT')), { done: true, value: { kind: 'http' } });
  });
  test('too few bytes wait; at eof they are other', () => {
    assert.deepEqual(sniffProtocol(Buffer.from('G')), { done: false });
    assert.deepEqual(sniffProtocol(Buffer.from('G'), true), { done: true, value: { kind: 'other' } });
  });
  test('anything else is other at once', () => {
    assert.deepEqual(sniffProtocol(Buffer.from('*1\r\n$4\r\nPING\r\n')), { done: true, value: { kind: 'other' } });
    assert.deepEqual(sniffProtocol(Buffer.from('SX')), { done: true, value: { kind: 'other' } });
  });
  test("an SSH client's identification string is ssh (filter.protocol: ssh), with no target", () => {
    assert.deepEqual(sniffProtocol(Buffer.from('SSH-2.0-OpenSSH_9.2\r\n')), { done: true, value: { kind: 'ssh' } });
    assert.deepEqual(sniffProtocol(Buffer.from('SS')), { done: false });
    assert.deepEqual(sniffProtocol(Buffer.from('SS'), true), { done: true, value: { kind: 'other' } });
    assert.deepEqual(sniffHost(Buffer.from('SSH-2.0-x\r\n')), { done: true, value: undefined });
  });
  test('an incomplete ClientHello waits, and is tls without target at eof', () => {
    const start = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]);
    assert.deepEqual(sniffProtocol(start), { done: false });
    assert.deepEqual(sniffProtocol(start, true), { done: true, value: { kind: 'tls' } });
  });
});
