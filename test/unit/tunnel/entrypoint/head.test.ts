/**
 * The entry point's request heads: reading one off a visitor's buffer (complete, partial,
 * too large, not HTTP), the client address gost reports, and the heads written out.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  MAX_HEADER_BYTES,
  canonicalHeaderKey,
  checkRequestStart,
  clientAddr,
  errorResponse,
  readRequestHead,
  upgradeRequestHead,
  upstreamRequestHead,
} from '../../../../src/handler/tunnel/entrypoint/http/head';
import type { HttpRequestHead } from '../../../../src/protocol/sniff/http';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

function headOf(text: string): HttpRequestHead {
  const r = readRequestHead(b(text), false);
  assert.equal(r.kind, 'head');
  return (r as { head: HttpRequestHead }).head;
}

describe('readRequestHead', () => {
  test('a whole head: its end is where the body starts', () => {
    const text = 'POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi';
    const r = readRequestHead(b(text), false);
    assert.equal(r.kind, 'head');
    const head = (r as { head: HttpRequestHead }).head;
    assert.equal(head.method, 'POST');
    assert.equal(head.host, 'x');
    assert.equal(text.slice(head.headEnd), 'hi');
  });

  test('a partial head: the request line is checked once it is whole', () => {
    assert.deepEqual(readRequestHead(b('GET / HT'), false), { kind: 'partial', lineChecked: false });
    assert.deepEqual(readRequestHead(b('GET / HTTP/1.1\r\nHost: x'), false), { kind: 'partial', lineChecked: true });
    // Once checked, a later read does not check again (and says it was).
    assert.deepEqual(readRequestHead(b('GET / HTTP/1.1\r\nHost: x\r\n'), true), { kind: 'partial', lineChecked: true });
  });

  test('garbage is refused before a whole head: a bad method, a bad request line', () => {
    assert.throws(() => readRequestHead(b('\x16\x03\x01\x02'), false), /malformed HTTP method/);
    assert.throws(() => readRequestHead(b(' GET / HTTP/1.1\r\n'), false), /malformed HTTP method/);
    assert.throws(() => readRequestHead(b('A'.repeat(40)), false), /malformed HTTP method/);
    assert.throws(() => readRequestHead(b('GET / SPDY/3\r\nHost'), false));
  });

  test('a head over the limit is too large, whether complete or not', () => {
    const big = `GET / HTTP/1.1\r\nX: ${'a'.repeat(MAX_HEADER_BYTES)}\r\n`;
    assert.deepEqual(readRequestHead(b(big), false), { kind: 'too-large' });
    assert.deepEqual(readRequestHead(b(`${big}\r\n`), false), { kind: 'too-large' });
  });

  test('any bytes: a head, a partial head, too large, or an Error — never anything else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, checked) => {
        try {
          const r = readRequestHead(Buffer.from(bytes), checked);
          assert.ok(['head', 'partial', 'too-large'].includes(r.kind));
        } catch (err) {
          assert.ok(err instanceof Error);
        }
      }),
      { numRuns: 2000 },
    );
  });

  test('checkRequestStart accepts what readRequestHead accepts as a start', () => {
    assert.equal(checkRequestStart(b('GET')), false);
    assert.equal(checkRequestStart(b('GET /x HTTP/1.1\r\n')), true);
  });
});

describe('clientAddr (the stream header source)', () => {
  const peer = '10.0.0.9:5000';
  test('CF-Connecting-IP, then the first X-Forwarded-For, then X-Real-Ip, with port 0; else the peer', () => {
    assert.equal(clientAddr([['CF-Connecting-IP', '1.2.3.4']], peer), '1.2.3.4:0');
    assert.equal(clientAddr([['x-forwarded-for', ' 5.6.7.8 , 9.9.9.9']], peer), '5.6.7.8:0');
    assert.equal(clientAddr([['X-Real-Ip', '2001:db8::1']], peer), '[2001:db8::1]:0');
    assert.equal(clientAddr([['X-Forwarded-For', 'not-an-ip'], ['X-Real-Ip', '7.7.7.7']], peer), '7.7.7.7:0');
    assert.equal(clientAddr([['X-Forwarded-For', 'evil.example']], peer), peer);
    assert.equal(clientAddr([], peer), peer);
  });
});

describe('heads written out', () => {
  test("the proxied head in Go's order: Host, User-Agent, framing, the rest sorted, Connection", () => {
    const head = headOf(
      'POST http://app.local/p?q=1 HTTP/1.1\r\nzeta: 1\r\nhost: app.local\r\nAccept: */*\r\ncontent-length: 3\r\n' +
        'Connection: keep-alive\r\nKeep-Alive: 5\r\nGost-Record: x\r\nalpha: a\r\nalpha: b\r\n\r\n',
    );
    const out = upstreamRequestHead(head, { sid: 'SID', nodeId: 'NODE', keepalive: false });
    assert.equal(
      out,
      'POST /p?q=1 HTTP/1.1\r\nHost: app.local\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 3\r\n' +
        'Accept: */*\r\nAlpha: a\r\nAlpha: b\r\nGost-Forwarded-Node: NODE\r\nGost-Sid: SID\r\nZeta: 1\r\nConnection: close\r\n\r\n',
    );
    // A Gost-Sid that came is kept; Gost-Forwarded-Node is replaced.
    const again = upstreamRequestHead(headOf('GET / HTTP/1.1\r\nHost: h\r\nGost-Sid: s0\r\nGost-Forwarded-Node: other\r\n\r\n'), {
      sid: 'SID',
      nodeId: 'NODE',
      keepalive: true,
    });
    assert.match(again, /Gost-Forwarded-Node: NODE\r\nGost-Sid: s0\r\nConnection: keep-alive\r\n\r\n$/);
  });

  test('canonical header keys as Go makes them; other names unchanged', () => {
    assert.equal(canonicalHeaderKey('x-forwarded-FOR'), 'X-Forwarded-For');
    assert.equal(canonicalHeaderKey('content-length'), 'Content-Length');
    assert.equal(canonicalHeaderKey('x_under'), 'x_under');
  });

  test("error responses as Go's Response.Write: the request's version, Connection: close when closing", () => {
    assert.equal(errorResponse(502, 'HTTP/1.1', false), 'HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n');
    assert.equal(errorResponse(503, 'HTTP/1.0', true), 'HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  });

  test('an Upgrade head goes as it came, with this node in Gost-Forwarded-Node', () => {
    const head = headOf('GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\ngost-forwarded-node: x\r\n\r\n');
    assert.equal(
      upgradeRequestHead(head, 'NODE'),
      'GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nGost-Forwarded-Node: NODE\r\n\r\n',
    );
  });
});
