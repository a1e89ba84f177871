import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ProtocolError } from '../../../../src/core/errors';
import {
  MAX_RESPONSE_HEAD_BYTES,
  bodyFraming,
  findHeadEnd,
  headerTokens,
  parseHttpResponseHead,
} from '../../../../src/protocol/http/response';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

function refused(kind: 'bad_header' | 'too_large', f: () => unknown, message?: RegExp): void {
  assert.throws(f, (err: unknown) => err instanceof ProtocolError && err.kind === kind && (message === undefined || message.test(err.message)));
}

/** A response head of exactly `total` bytes (one filler header sized to fit). */
function headOfSize(total: number): Buffer {
  const start = 'HTTP/1.1 200 OK\r\nX-Fill: ';
  const end = '\r\n\r\n';
  return b(start + 'f'.repeat(total - start.length - end.length) + end);
}

describe('parseHttpResponseHead', () => {
  test('incomplete heads: undefined, whatever the cut', () => {
    const full = b('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\n');
    for (let n = 0; n < full.length; n++) assert.equal(parseHttpResponseHead(full.subarray(0, n)), undefined, `first ${n} bytes`);
    assert.ok(parseHttpResponseHead(full));
  });

  test('status, reason, headers in order (names as sent, values trimmed), headEnd before the body', () => {
    const raw = b('HTTP/1.1 404 Not Found Here\r\nContent-Type:  text/plain \r\nx-lower: a\tb\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Empty:\r\n\r\nbody');
    const h = parseHttpResponseHead(raw)!;
    assert.equal(h.version, 'HTTP/1.1');
    assert.equal(h.status, 404);
    assert.equal(h.reason, 'Not Found Here');
    assert.deepEqual(h.headers, [
      ['Content-Type', 'text/plain'],
      ['x-lower', 'a\tb'],
      ['Set-Cookie', 'a=1'],
      ['Set-Cookie', 'b=2'],
      ['X-Empty', ''],
    ]);
    assert.equal(h.headEnd, raw.length - 4);
    assert.equal(raw.subarray(h.headEnd).toString(), 'body');
  });

  test('HTTP/1.0, no reason, no headers', () => {
    assert.deepEqual(parseHttpResponseHead(b('HTTP/1.0 204\r\n\r\n')), { version: 'HTTP/1.0', status: 204, reason: '', headers: [], headEnd: 16 });
    assert.equal(parseHttpResponseHead(b('HTTP/1.1 200 \r\n\r\n'))!.reason, '');
    assert.equal(parseHttpResponseHead(b('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n'))!.headEnd, 25);
  });

  test('bare LF line ends are accepted (alone or mixed with CRLF)', () => {
    const h = parseHttpResponseHead(b('HTTP/1.1 200 OK\nA: 1\nB: 2\n\nxyz'))!;
    assert.equal(h.status, 200);
    assert.equal(h.reason, 'OK');
    assert.deepEqual(h.headers, [['A', '1'], ['B', '2']]);
    assert.equal(h.headEnd, 27);
    const mixed = parseHttpResponseHead(b('HTTP/1.1 200 OK\r\nA: 1\n\r\n'))!;
    assert.deepEqual(mixed.headers, [['A', '1']]);
    assert.equal(mixed.headEnd, 24);
  });

  test(`a head of ${MAX_RESPONSE_HEAD_BYTES} bytes passes; a larger one (complete or not) is too_large`, () => {
    assert.equal(MAX_RESPONSE_HEAD_BYTES, 64 * 1024);
    const max = headOfSize(MAX_RESPONSE_HEAD_BYTES);
    assert.equal(parseHttpResponseHead(max)!.headEnd, MAX_RESPONSE_HEAD_BYTES);
    refused('too_large', () => parseHttpResponseHead(headOfSize(MAX_RESPONSE_HEAD_BYTES + 1)));
    // Incomplete: still waiting at the limit, refused beyond it.
    const open = max.subarray(0, MAX_RESPONSE_HEAD_BYTES - 4);
    assert.equal(parseHttpResponseHead(Buffer.concat([open, b('ffff')])), undefined);
    refused('too_large', () => parseHttpResponseHead(Buffer.concat([open, b('fffff')])));
    // A complete head with a large body after it is fine.
    assert.equal(parseHttpResponseHead(Buffer.concat([b('HTTP/1.1 200 OK\r\n\r\n'), Buffer.alloc(200_000)]))!.headEnd, 19);
  });

  test('malformed status lines', () => {
    for (const line of [
      'HTTP/1.1 20 OK',
      'HTTP/1.1 2000 OK',
      'HTTP/1.1  200 OK',
      'HTTP/1.1 200OK',
      'HTTP/2 200 OK',
      'HTTP/1.1',
      'http/1.1 200 OK',
      'HTTP/1.1 abc OK',
      ' HTTP/1.1 200 OK',
      'ICY 200 OK',
      'SSH-2.0-OpenSSH_9.6',
      '',
    ]) {
      refused('bad_header', () => parseHttpResponseHead(b(`${line}\r\nA: b\r\n\r\n`)), /malformed HTTP status line/);
    }
  });

  test('malformed header lines and names', () => {
    refused('bad_header', () => parseHttpResponseHead(b('HTTP/1.1 200 OK\r\nNoColon\r\n\r\n')), /header line/);
    refused('bad_header', () => parseHttpResponseHead(b('HTTP/1.1 200 OK\r\n: empty name\r\n\r\n')), /header line/);
    for (const name of ['Bad Name', 'X-A ', ' Folded', '\tX', 'X@Y', 'X"Y', 'X(Y)', 'Ä']) {
      refused('bad_header', () => parseHttpResponseHead(b(`HTTP/1.1 200 OK\r\n${name}: v\r\n\r\n`)), /header name/);
    }
  });

  test('control characters in values (HT aside)', () => {
    for (const c of ['\x00', '\x01', '\x08', '\x0b', '\x0c', '\r', '\x1f', '\x7f']) {
      refused('bad_header', () => parseHttpResponseHead(b(`HTTP/1.1 200 OK\r\nX: a${c}b\r\n\r\n`)), /control character/);
    }
    assert.deepEqual(parseHttpResponseHead(b('HTTP/1.1 200 OK\r\nX: a\tb\x80\xff\r\n\r\n'))!.headers, [['X', 'a\tb\x80\xff']]);
  });
});

describe('findHeadEnd', () => {
  test('offset past the empty line, CRLF or bare LF; -1 when there is none', () => {
    assert.equal(findHeadEnd(b('HTTP/1.1 200 OK\r\n\r\nbody')), 19);
    assert.equal(findHeadEnd(b('a\n\nb')), 3);
    assert.equal(findHeadEnd(b('a\r\n\nb')), 4);
    assert.equal(findHeadEnd(b('a\n\r\nb')), 4);
    assert.equal(findHeadEnd(b('\n\n')), 2);
    for (const s of ['', 'a', '\n', '\r\n', 'a\r\n', 'a\r\n\r', 'a\r\nb\r\n', 'a\r\r\n', 'a\n\rb\n']) assert.equal(findHeadEnd(b(s)), -1, JSON.stringify(s));
  });

  test('from: the head starts later in the buffer (a pipelined message)', () => {
    const first = 'GET /1 HTTP/1.1\r\n\r\n';
    const second = 'GET /2 HTTP/1.1\r\nA: b\r\n\r\n';
    const buf = b(first + second + 'rest');
    assert.equal(findHeadEnd(buf), first.length);
    assert.equal(findHeadEnd(buf, first.length), first.length + second.length);
    assert.equal(findHeadEnd(buf, first.length + second.length), -1);
    // An empty line right at `from` is not the end of a head that starts there.
    assert.equal(findHeadEnd(b('xx\nGET / HTTP/1.1\n\n'), 2), 19);
  });

  test('scanFrom: resuming where an earlier scan stopped finds the same end, wherever it stopped', () => {
    for (const text of ['HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody', 'HTTP/1.1 200 OK\nA: b\n\nbody', 'X\r\n\nY']) {
      const buf = b(text);
      const end = findHeadEnd(buf);
      assert.ok(end > 0);
      for (let p = 0; p <= end; p++) {
        // What a caller that saw only p bytes got: nothing yet.
        if (p < end) assert.equal(findHeadEnd(buf.subarray(0, p)), -1);
        assert.equal(findHeadEnd(buf, 0, p), end, `${JSON.stringify(text)} resumed at ${p}`);
      }
    }
  });
});

describe('headerTokens', () => {
  test('every header of the name, split on commas, trimmed, lower-cased, empty ones dropped', () => {
    const headers: Array<[string, string]> = [
      ['Connection', 'Keep-Alive, Upgrade'],
      ['X-Other', 'close'],
      ['connection', ' ,TE ,, '],
      ['CONNECTION', 'close'],
      ['Connections', 'nope'],
    ];
    assert.deepEqual(headerTokens(headers, 'connection'), ['keep-alive', 'upgrade', 'te', 'close']);
    assert.deepEqual(headerTokens(headers, 'transfer-encoding'), []);
    assert.deepEqual(headerTokens([], 'connection'), []);
  });
});

describe('bodyFraming', () => {
  const CL = (v: string): [string, string] => ['Content-Length', v];
  const TE = (v: string): [string, string] => ['Transfer-Encoding', v];

  test('Content-Length, in either message', () => {
    for (const isRequest of [true, false]) {
      assert.deepEqual(bodyFraming([CL('10')], isRequest), { kind: 'length', length: 10 });
      assert.deepEqual(bodyFraming([['content-length', '123456789012345']], isRequest), { kind: 'length', length: 123456789012345 });
      assert.deepEqual(bodyFraming([CL('007')], isRequest), { kind: 'length', length: 7 });
    }
  });

  test('duplicate equal Content-Length values are one length; conflicting or malformed ones are refused', () => {
    for (const isRequest of [true, false]) {
      assert.deepEqual(bodyFraming([CL('5'), CL('5')], isRequest), { kind: 'length', length: 5 });
      assert.deepEqual(bodyFraming([CL('5, 5')], isRequest), { kind: 'length', length: 5 });
      assert.deepEqual(bodyFraming([CL('5'), ['X-A', '6'], ['CONTENT-LENGTH', ' 5 ']], isRequest), { kind: 'length', length: 5 });
      refused('bad_header', () => bodyFraming([CL('5'), CL('6')], isRequest), /conflicting Content-Length/);
      refused('bad_header', () => bodyFraming([CL('5, 6')], isRequest), /conflicting Content-Length/);
      for (const v of ['', '-1', '+1', 'abc', '1e3', '0x10', '1.0', '1 2', '5,', '1234567890123456']) {
        refused('bad_header', () => bodyFraming([CL(v)], isRequest), /malformed Content-Length/);
      }
    }
  });

  test('Content-Length 0: no body', () => {
    assert.deepEqual(bodyFraming([CL('0')], true), { kind: 'none' });
    assert.deepEqual(bodyFraming([CL('0')], false), { kind: 'none' });
    assert.deepEqual(bodyFraming([CL('000')], false), { kind: 'none' });
  });

  test('Transfer-Encoding ending in chunked: chunked (tokens over several lines, any case)', () => {
    for (const isRequest of [true, false]) {
      assert.deepEqual(bodyFraming([TE('chunked')], isRequest), { kind: 'chunked' });
      assert.deepEqual(bodyFraming([TE('Chunked')], isRequest), { kind: 'chunked' });
      assert.deepEqual(bodyFraming([TE('gzip, chunked')], isRequest), { kind: 'chunked' });
      assert.deepEqual(bodyFraming([TE('gzip'), ['transfer-encoding', 'chunked']], isRequest), { kind: 'chunked' });
    }
  });

  test('Transfer-Encoding and Content-Length: a request is refused, a response is chunked', () => {
    refused('bad_header', () => bodyFraming([TE('chunked'), CL('5')], true), /both Transfer-Encoding and Content-Length/);
    refused('bad_header', () => bodyFraming([CL('5'), TE('chunked')], true), /both Transfer-Encoding and Content-Length/);
    assert.deepEqual(bodyFraming([TE('chunked'), CL('5')], false), { kind: 'chunked' });
  });

  test('Transfer-Encoding not ending in chunked: a request is refused, a response is read until close', () => {
    for (const te of ['gzip', 'chunked, gzip', 'identity']) {
      refused('bad_header', () => bodyFraming([TE(te)], true), /unsupported Transfer-Encoding/);
      assert.deepEqual(bodyFraming([TE(te)], false), { kind: 'close' });
    }
    assert.deepEqual(bodyFraming([TE('chunked'), TE('gzip')], false), { kind: 'close' });
  });

  test('no framing headers: a request has no body, a response is read until close', () => {
    assert.deepEqual(bodyFraming([], true), { kind: 'none' });
    assert.deepEqual(bodyFraming([['Content-Type', 'text/plain']], true), { kind: 'none' });
    assert.deepEqual(bodyFraming([], false), { kind: 'close' });
    assert.deepEqual(bodyFraming([['Content-Lengths', '5'], ['X-Transfer-Encoding', 'chunked']], false), { kind: 'close' });
  });
});
