import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ProtocolError, type ProtocolErrorKind } from '../../../../src/core/errors';
import {
  DEFAULT_MAX_HEAD_BYTES,
  getHeader,
  isHttpRequestStart,
  parseHttpRequestHead,
  splitHttpHost,
  type HttpRequestHead,
} from '../../../../src/protocol/sniff/http';

function isProtocolError(kind: ProtocolErrorKind) {
  return (err: unknown): boolean => err instanceof ProtocolError && err.kind === kind;
}

function parseComplete(text: string | Buffer): HttpRequestHead {
  const r = parseHttpRequestHead(typeof text === 'string' ? Buffer.from(text, 'latin1') : text);
  assert.equal(r.complete, true);
  return r as HttpRequestHead;
}

// The request the gost entry point forwarded in the http-entrypoint capture.
const CURL = 'GET / HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n';

describe('isHttpRequestStart', () => {
  const yes = ['GET / HTTP/1.1', 'POST /x', 'PUT /', 'DELETE /', 'OPTIONS *', 'PATCH /', 'HEAD /', 'CONNECT a:1', 'TRACE /', 'PRI * HTTP/2.0', 'DELET', 'GETX'];
  for (const s of yes) test(`"${s}" → true`, () => assert.equal(isHttpRequestStart(Buffer.from(s)), true));

  const no = ['\x01\x01\x00\x37', '\x16\x03\x01', 'get / HTTP/1.1', 'SSH-2.0-OpenSSH', 'HELLO', 'PRI /', ' GET', 'POS '];
  for (const s of no) test(`${JSON.stringify(s)} → false`, () => assert.equal(isHttpRequestStart(Buffer.from(s, 'latin1')), false));

  const undecided = ['', 'G', 'GE', 'P', 'PO', 'PU', 'PA', 'PR', 'PRI', 'PRI ', 'D', 'DELE', 'O', 'C', 'CONN', 'T', 'H', 'HEA'];
  for (const s of undecided) test(`"${s}" → undefined (need more)`, () => assert.equal(isHttpRequestStart(Buffer.from(s)), undefined));
});

describe('parseHttpRequestHead', () => {
  test('the curl request from the capture', () => {
    const r = parseComplete(`${CURL}body`);
    assert.equal(r.method, 'GET');
    assert.equal(r.path, '/');
    assert.equal(r.version, 'HTTP/1.1');
    assert.deepEqual(r.headers, [
      ['Host', 'www.example.com'],
      ['User-Agent', 'curl/7.88.1'],
      ['Accept', '*/*'],
    ]);
    assert.equal(r.host, 'www.example.com');
    assert.equal(r.hostname, 'www.example.com');
    assert.equal(r.port, undefined);
    assert.equal(r.headEnd, CURL.length);
  });

  test('is incomplete at every prefix, complete only with the empty line', () => {
    const buf = Buffer.from(CURL);
    for (let n = 0; n < buf.length; n++) {
      assert.deepEqual(parseHttpRequestHead(buf.subarray(0, n)), { complete: false }, `prefix ${n}`);
    }
    assert.equal(parseHttpRequestHead(buf).complete, true);
  });

  const hosts: Array<[string, string, string | undefined, string | undefined, number | undefined]> = [
    ['lowercase header name', 'host: a.example\r\n', 'a.example', 'a.example', undefined],
    ['uppercase header name', 'HOST: a.example\r\n', 'a.example', 'a.example', undefined],
    ['with a port', 'Host: a.example:8080\r\n', 'a.example:8080', 'a.example', 8080],
    ['port 0', 'Host: a.example:0\r\n', 'a.example:0', 'a.example', 0],
    ['empty port', 'Host: a.example:\r\n', 'a.example:', 'a.example', undefined],
    ['IPv4', 'Host: 192.0.2.1:81\r\n', '192.0.2.1:81', '192.0.2.1', 81],
    ['IPv6 with port', 'Host: [2001:db8::1]:8443\r\n', '[2001:db8::1]:8443', '2001:db8::1', 8443],
    ['IPv6 without port', 'Host: [::1]\r\n', '[::1]', '::1', undefined],
    ['surrounding whitespace trimmed', 'Host: \t a.example \t\r\n', 'a.example', 'a.example', undefined],
    ['no space after the colon', 'Host:a.example\r\n', 'a.example', 'a.example', undefined],
    ['missing Host', 'Accept: */*\r\n', undefined, undefined, undefined],
    ['empty Host', 'Host:\r\n', undefined, undefined, undefined],
  ];
  for (const [name, line, host, hostname, port] of hosts) {
    test(`Host: ${name}`, () => {
      const r = parseComplete(`GET / HTTP/1.1\r\n${line}\r\n`);
      assert.equal(r.host, host);
      assert.equal(r.hostname, hostname);
      assert.equal(r.port, port);
    });
  }

  test('absolute-form target wins over the Host header (as Go sets Request.Host)', () => {
    const r = parseComplete('GET http://user@b.example:81/x?y HTTP/1.1\r\nHost: a.example\r\n\r\n');
    assert.equal(r.host, 'b.example:81');
    assert.equal(r.port, 81);
  });

  test('CONNECT authority-form target is the host', () => {
    const r = parseComplete('CONNECT c.example:443 HTTP/1.1\r\n\r\n');
    assert.equal(r.host, 'c.example:443');
    assert.equal(r.port, 443);
  });

  test('HTTP/1.0 without headers', () => {
    const r = parseComplete('GET /index.html HTTP/1.0\r\n\r\n');
    assert.equal(r.version, 'HTTP/1.0');
    assert.deepEqual(r.headers, []);
    assert.equal(r.host, undefined);
  });

  test('bare LF line endings are accepted, as Go does', () => {
    const r = parseComplete('GET / HTTP/1.1\nHost: lf.example\n\nrest');
    assert.equal(r.host, 'lf.example');
    assert.equal(r.headEnd, 'GET / HTTP/1.1\nHost: lf.example\n\n'.length);
  });

  test('header values may carry obs-text bytes and tabs', () => {
    const r = parseComplete(Buffer.concat([Buffer.from('GET / HTTP/1.1\r\nX-A: caf'), Buffer.from([0xe9]), Buffer.from('\tb\r\n\r\n')]));
    assert.equal(getHeader(r.headers, 'x-a'), 'caf\u00e9\tb');
  });

  test('getHeader is case-insensitive and returns the first value', () => {
    const r = parseComplete('GET / HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1\r\nx-forwarded-for: 2.2.2.2\r\n\r\n');
    assert.equal(getHeader(r.headers, 'X-FORWARDED-FOR'), '1.1.1.1');
    assert.equal(getHeader(r.headers, 'Missing'), undefined);
  });

  const malformed: Array<[string, string]> = [
    ['empty request line', '\r\n\r\n'],
    ['two-part request line', 'GET /\r\n\r\n'],
    ['four-part request line', 'GET / x HTTP/1.1\r\n\r\n'],
    ['double space', 'GET  / HTTP/1.1\r\n\r\n'],
    ['bad version', 'GET / HTTP/1\r\n\r\n'],
    ['lowercase http version', 'GET / http/1.1\r\n\r\n'],
    ['method with a bad character', 'GE(T / HTTP/1.1\r\n\r\n'],
    ['control character in the target', 'GET /\x01 HTTP/1.1\r\n\r\n'],
    ['header without colon', 'GET / HTTP/1.1\r\nHost a\r\n\r\n'],
    ['space before the colon', 'GET / HTTP/1.1\r\nHost : a\r\n\r\n'],
    ['empty header name', 'GET / HTTP/1.1\r\n: a\r\n\r\n'],
    ['obsolete line folding', 'GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n'],
    ['NUL in a value', 'GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n'],
    ['bare CR in a value', 'GET / HTTP/1.1\r\nX: a\rb\r\n\r\n'],
    ['two Host headers', 'GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n'],
    ['space inside Host', 'GET / HTTP/1.1\r\nHost: a b\r\n\r\n'],
    ['bad Host port', 'GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n'],
    ['non-numeric Host port', 'GET / HTTP/1.1\r\nHost: a:http\r\n\r\n'],
    ['bare IPv6 Host', 'GET / HTTP/1.1\r\nHost: ::1\r\n\r\n'],
    ['unbalanced bracket', 'GET / HTTP/1.1\r\nHost: [::1\r\n\r\n'],
  ];
  for (const [name, text] of malformed) {
    test(`rejects ${name} with bad_header`, () => {
      assert.throws(() => parseHttpRequestHead(Buffer.from(text, 'latin1')), isProtocolError('bad_header'));
    });
  }

  test('rejects a bad request line as soon as it is complete, without waiting for the head', () => {
    assert.throws(() => parseHttpRequestHead(Buffer.from('\x01\x01\x00\x37 garbage\r\n')), isProtocolError('bad_header'));
    assert.throws(() => parseHttpRequestHead(Buffer.from('GET / HTTP/1.1\r\nbad line\r\n')), isProtocolError('bad_header'));
  });

  test('a 64 KiB head without an end is too_large', () => {
    const big = Buffer.from(`GET / HTTP/1.1\r\nX-Big: ${'a'.repeat(DEFAULT_MAX_HEAD_BYTES)}`);
    assert.throws(() => parseHttpRequestHead(big), isProtocolError('too_large'));
    assert.deepEqual(parseHttpRequestHead(big.subarray(0, DEFAULT_MAX_HEAD_BYTES - 1)), { complete: false });
  });

  test('a complete head larger than the limit is too_large; one just under it is fine', () => {
    const prefix = 'GET / HTTP/1.1\r\nX-Big: ';
    const fits = prefix + 'a'.repeat(DEFAULT_MAX_HEAD_BYTES - prefix.length - 4) + '\r\n\r\n';
    assert.equal(fits.length, DEFAULT_MAX_HEAD_BYTES);
    assert.equal(parseComplete(fits).headEnd, DEFAULT_MAX_HEAD_BYTES);
    const over = prefix + 'a'.repeat(DEFAULT_MAX_HEAD_BYTES - prefix.length - 3) + '\r\n\r\n';
    assert.throws(() => parseHttpRequestHead(Buffer.from(over)), isProtocolError('too_large'));
  });

  test('maxHeadBytes is configurable', () => {
    assert.throws(() => parseHttpRequestHead(Buffer.from(CURL), { maxHeadBytes: 20 }), isProtocolError('too_large'));
    assert.equal(parseHttpRequestHead(Buffer.from(CURL), { maxHeadBytes: CURL.length }).complete, true);
  });
});

describe('splitHttpHost', () => {
  test('forms', () => {
    assert.deepEqual(splitHttpHost('a'), { hostname: 'a', port: undefined });
    assert.deepEqual(splitHttpHost('a:1'), { hostname: 'a', port: 1 });
    assert.deepEqual(splitHttpHost('[::1]:65535'), { hostname: '::1', port: 65535 });
    assert.throws(() => splitHttpHost('[::1]x'), isProtocolError('bad_header'));
    assert.throws(() => splitHttpHost('a:65536'), isProtocolError('bad_header'));
  });
});
