import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Metadata } from '../../../src/core/metadata';
import { dialHost, dialTimeoutMs, formatAddress, keepaliveOptions } from '../../../src/transport/tcp/socket';
import { forwardedClientIp, wsPath } from '../../../src/transport/ws/listener';
import { wsClientOptions } from '../../../src/transport/ws/dialer';

describe('formatAddress', () => {
  it('renders Go style', () => {
    assert.equal(formatAddress('127.0.0.1', 80), '127.0.0.1:80');
    assert.equal(formatAddress('::1', 443), '[::1]:443');
    assert.equal(formatAddress('::ffff:10.1.2.3', 5), '10.1.2.3:5');
    assert.equal(formatAddress('::', 8443), '[::]:8443');
    assert.equal(formatAddress(undefined, undefined), ':0');
  });
});

describe('tcp metadata', () => {
  it('keepalive and keepalive.idle, with a prefix for the ws dialer', () => {
    assert.deepEqual(keepaliveOptions(new Metadata({})), { enabled: false, idleMs: 15_000 });
    assert.deepEqual(keepaliveOptions(new Metadata({ keepalive: 'true', 'keepalive.idle': '30s' })), { enabled: true, idleMs: 30_000 });
    assert.deepEqual(keepaliveOptions(new Metadata({ 'tcp.keepalive': true, 'tcp.keepalive.idle': 5 }), 'tcp.'), { enabled: true, idleMs: 5_000 });
  });

  it('dialTimeout defaults to 15 s', () => {
    assert.equal(dialTimeoutMs(new Metadata({})), 15_000);
    assert.equal(dialTimeoutMs(new Metadata({ dialTimeout: '2s' })), 2_000);
  });

  it('an empty host dials 127.0.0.1', () => {
    assert.equal(dialHost(''), '127.0.0.1');
    assert.equal(dialHost('example.com'), 'example.com');
  });
});

describe('ws metadata', () => {
  it('listener path defaults to /ws and gets a leading slash', () => {
    assert.equal(wsPath(new Metadata({})), '/ws');
    assert.equal(wsPath(new Metadata({ 'ws.path': 'tunnel' })), '/tunnel');
  });

  it('dialer options and their aliases', () => {
    const d = wsClientOptions(new Metadata({}), 'h.test:443');
    assert.deepEqual(d, { path: '/ws', host: 'h.test:443', headers: {}, compression: false, handshakeTimeoutMs: 10_000, keepaliveMs: 0 });
    const o = wsClientOptions(
      new Metadata({ 'ws.host': 'cdn.test', 'ws.path': '/x', 'ws.header': { A: 1 }, 'ws.keepalive': 'true', 'keepalive.interval': '5s', enableCompression: 'true', 'ws.handshakeTimeout': '3s' }),
      ':8443',
    );
    assert.deepEqual(o, { path: '/x', host: 'cdn.test', headers: { A: '1' }, compression: true, handshakeTimeoutMs: 3_000, keepaliveMs: 5_000 });
    assert.equal(wsClientOptions(new Metadata({ keepalive: true }), 'h:1').keepaliveMs, 15_000);
    assert.equal(wsClientOptions(new Metadata({ keepalive: true, ttl: '1m' }), 'h:1').keepaliveMs, 60_000);
  });
});

describe('forwardedClientIp', () => {
  const cases: Array<[Record<string, string>, string | undefined]> = [
    [{}, undefined],
    [{ 'cf-connecting-ip': '1.2.3.4', 'x-forwarded-for': '5.6.7.8' }, '1.2.3.4'],
    [{ 'x-forwarded-for': ' 5.6.7.8 , 9.9.9.9' }, '5.6.7.8'],
    [{ 'x-real-ip': '2001:db8::2' }, '2001:db8::2'],
    [{ 'x-forwarded-for': 'unknown' }, undefined],
    [{ 'cf-connecting-ip': 'garbage', 'x-real-ip': '1.1.1.1' }, undefined],
  ];
  for (const [headers, want] of cases) {
    it(`${JSON.stringify(headers)} → ${String(want)}`, () => assert.equal(forwardedClientIp(headers), want));
  }
});
