import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ProtocolError } from '../../../../src/core/errors';
import { CRLF, ChunkedScanner, LAST_CHUNK, chunkSizeLine } from '../../../../src/protocol/http/chunked';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

interface ScanResult {
  /** Offset just past the message in the whole input, or -1 when it did not end. */
  end: number;
  /** The chunk data, concatenated from the ranges onData reported. */
  data: Buffer;
}

/**
 * Feeds `input` to one scanner in pieces cut at `cuts` (each piece a separate buffer, as
 * socket reads are), translating the offsets it reports back to offsets in `input`.
 */
function scanPieces(input: Buffer, cuts: readonly number[] = []): ScanResult {
  const bounds = [...new Set(cuts.filter((c) => c > 0 && c < input.length))].sort((x, y) => x - y);
  const scanner = new ChunkedScanner();
  const data: Buffer[] = [];
  let from = 0;
  for (const to of [...bounds, input.length]) {
    const piece = Buffer.from(input.subarray(from, to));
    const end = scanner.scan(piece, 0, piece.length, (a, z) => {
      assert.ok(a >= 0 && a <= z && z <= piece.length, `data range [${a}, ${z}) inside the piece of ${piece.length}`);
      data.push(piece.subarray(a, z));
    });
    if (end >= 0) {
      assert.ok(scanner.done, 'done once the end was found');
      return { end: from + end, data: Buffer.concat(data) };
    }
    assert.equal(scanner.done, false);
    from = to;
  }
  return { end: -1, data: Buffer.concat(data) };
}

function rejects(input: Buffer | string, message: RegExp): void {
  const buf = typeof input === 'string' ? b(input) : input;
  assert.throws(
    () => new ChunkedScanner().scan(buf, 0, buf.length),
    (err: unknown) => err instanceof ProtocolError && err.kind === 'bad_header' && message.test(err.message),
    JSON.stringify(buf.toString('latin1').slice(0, 60)),
  );
  // Byte by byte, the same verdict.
  const s = new ChunkedScanner();
  assert.throws(() => {
    for (let i = 0; i < buf.length; i++) s.scan(buf, i, i + 1);
  }, ProtocolError);
}

/** A chunked encoding of `chunks` (with an extension per chunk, trailer lines), built by hand. */
function encode(chunks: readonly Buffer[], opts: { exts?: readonly string[]; trailers?: readonly string[]; upper?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  chunks.forEach((c, i) => {
    const size = opts.upper ? c.length.toString(16).toUpperCase() : c.length.toString(16);
    parts.push(b(`${size}${opts.exts?.[i] ?? ''}\r\n`), c, CRLF);
  });
  parts.push(b(`0\r\n${(opts.trailers ?? []).map((t) => `${t}\r\n`).join('')}\r\n`));
  return Buffer.concat(parts);
}

const extArb = fc.constantFrom('', ';a', ';name=value', ';q="x;y z"', ' ;bws=1', '\t;t', ';a=1;b=2');
const trailerArb = fc.constantFrom('X-Sum: 1234', 'Expires: Wed, 21 Oct 2015 07:28:00 GMT', 'X-Empty:', 'X-Tab:\tv');
const messageArb = fc
  .array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { maxLength: 6 })
  .chain((chunks) =>
    fc.record({
      chunks: fc.constant(chunks.map((c) => Buffer.from(c))),
      exts: fc.array(extArb, { minLength: chunks.length, maxLength: chunks.length }),
      trailers: fc.array(trailerArb, { maxLength: 3 }),
      upper: fc.boolean(),
      next: fc.uint8Array({ maxLength: 40 }),
    }),
  );

describe('ChunkedScanner: where a chunked body ends', () => {
  test('any split of a valid encoding gives the same end and the same data (property)', () => {
    fc.assert(
      fc.property(messageArb, fc.array(fc.nat(4000), { maxLength: 12 }), (m, cuts) => {
        const enc = encode(m.chunks, m);
        const input = Buffer.concat([enc, Buffer.from(m.next)]);
        const whole = scanPieces(input);
        assert.equal(whole.end, enc.length);
        assert.deepEqual(whole.data, Buffer.concat(m.chunks));
        const split = scanPieces(input, cuts);
        assert.equal(split.end, enc.length);
        assert.deepEqual(split.data, Buffer.concat(m.chunks));
      }),
      { numRuns: 400 },
    );
  });

  test('a body split in two at every byte boundary, and byte by byte', () => {
    const data = [b('hello'), b(' '), Buffer.alloc(0x1a, 0x41), b('\r\n0\r\n\r\n')];
    const enc = encode(data, { exts: [';a=1', '', ' ;x="y"', ''], trailers: ['X-Sum: 9', 'X-B: c'] });
    const next = b('GET /next HTTP/1.1\r\n\r\n');
    const input = Buffer.concat([enc, next]);
    for (let cut = 0; cut <= input.length; cut++) {
      const r = scanPieces(input, [cut]);
      assert.equal(r.end, enc.length, `cut at ${cut}`);
      assert.deepEqual(r.data, Buffer.concat(data), `cut at ${cut}`);
    }
    const bytes = scanPieces(input, Array.from({ length: input.length }, (_, i) => i));
    assert.equal(bytes.end, enc.length);
    assert.deepEqual(bytes.data, Buffer.concat(data));
  });

  test('the last chunk followed by the next message: the end offset is exact, the next bytes are not data', () => {
    const next = 'POST /b HTTP/1.1\r\nContent-Length: 0\r\n\r\n';
    for (const [body, data] of [
      ['0\r\n\r\n', ''],
      ['000\r\n\r\n', ''],
      ['3\r\nabc\r\n0\r\n\r\n', 'abc'],
      ['3\r\nabc\r\n0;last\r\nX-T: 1\r\n\r\n', 'abc'],
    ] as const) {
      const input = b(body + next);
      const s = new ChunkedScanner();
      const got: Buffer[] = [];
      assert.equal(s.scan(input, 0, input.length, (x, y) => got.push(input.subarray(x, y))), body.length, body);
      assert.equal(Buffer.concat(got).toString('latin1'), data);
      assert.equal(s.done, true);
      // A done scanner claims nothing more.
      assert.equal(s.scan(input, body.length, input.length), body.length);
    }
  });

  test('scanning from an offset inside a larger buffer reports offsets in that buffer', () => {
    const input = b('HTTP/1.1 200 OK\r\n\r\n4\r\nwxyz\r\n0\r\n\r\nrest');
    const start = input.indexOf('4\r\n');
    const ranges: Array<[number, number]> = [];
    const end = new ChunkedScanner().scan(input, start, input.length, (x, y) => ranges.push([x, y]));
    assert.equal(end, input.length - 'rest'.length);
    assert.deepEqual(ranges, [[start + 3, start + 7]]);
  });

  test('a body that has not ended yet: -1, and every byte seen so far is the message', () => {
    const s = new ChunkedScanner();
    for (const part of ['1', '0\r\n', 'x'.repeat(16), '\r\n0\r\n', 'X-A: 1\r\n', '\r']) {
      assert.equal(s.scan(b(part), 0, part.length), -1, part);
      assert.equal(s.done, false);
    }
    assert.equal(s.scan(b('\n'), 0, 1), 1);
    assert.equal(s.done, true);
  });

  test('sizes: hex digits in either case, leading zeros, 12 digits at most', () => {
    assert.equal(scanPieces(b('A\r\n0123456789\r\n0\r\n\r\n')).end, 20);
    assert.equal(scanPieces(b('a\r\n0123456789\r\n0\r\n\r\n')).end, 20);
    assert.equal(scanPieces(b('0000000000a\r\n0123456789\r\n0\r\n\r\n')).data.toString(), '0123456789');
    // 12 digits: accepted as a size (the data is not there yet).
    assert.equal(new ChunkedScanner().scan(b('ffffffffffff\r\nab'), 0, 16), -1);
    assert.equal(new ChunkedScanner().scan(b('000000000001\r\na\r\n0\r\n\r\n'), 0, 22), 22);
  });

  test('extensions: names, values, quoted strings, whitespace before them', () => {
    for (const ext of [';a', ';a=b', ';a="b;c d"', ';a=1;b;c=3', ' ;bws', '\t;tab', ';a=\tb']) {
      const input = b(`2${ext}\r\nhi\r\n0${ext}\r\n\r\n`);
      const r = scanPieces(input);
      assert.equal(r.end, input.length, ext);
      assert.equal(r.data.toString(), 'hi', ext);
    }
  });

  test('trailers: one or several fields after the last chunk, none of them data', () => {
    const input = b('2\r\nok\r\n0\r\nX-Checksum: abc\r\nX-Other: 1, 2\r\nExpires: never\r\n\r\nNEXT');
    const r = scanPieces(input);
    assert.equal(r.end, input.length - 4);
    assert.equal(r.data.toString(), 'ok');
  });
});

describe('ChunkedScanner: malformed framing is refused', () => {
  test('bad hex and missing sizes', () => {
    rejects('g\r\n', /missing chunk size/);
    rejects('3g\r\n', /malformed chunk size/);
    rejects('1x\r\nx\r\n0\r\n\r\n', /malformed chunk size/);
    rejects('0x10\r\n', /malformed chunk size/);
    rejects('-1\r\n', /missing chunk size/);
    rejects('\r\n', /missing chunk size/);
    rejects(';ext\r\n', /missing chunk size/);
    rejects('3\r\nabc\r\n\r\n', /missing chunk size/);
    rejects('+3\r\nabc\r\n', /missing chunk size/);
  });

  test('chunk data not followed by CRLF', () => {
    rejects('3\r\nabcd\r\n0\r\n\r\n', /not followed by CRLF/);
    rejects('3\r\nabc\r0\r\n\r\n', /not followed by CRLF/);
    rejects('3\r\nabc0\r\n\r\n', /not followed by CRLF/);
  });

  test('bare LF: after a size, an extension, chunk data, a trailer, or as the final line', () => {
    rejects('3\nabc\r\n0\r\n\r\n', /malformed chunk size/);
    rejects('3;a\nabc\r\n', /control character in chunk extension/);
    rejects('3\r\nabc\n0\r\n\r\n', /not followed by CRLF/);
    rejects('0\r\nX-A: 1\n\r\n', /malformed trailer line/);
    rejects('0\r\n\n', /malformed trailer line/);
    // A CR not followed by LF.
    rejects('3\rabc', /not ended by CRLF/);
    rejects('0\r\nX-A: 1\rX', /trailer line not ended by CRLF/);
    rejects('0\r\n\rX', /chunked body not ended by CRLF/);
  });

  test('more than 12 size digits', () => {
    rejects('1000000000000\r\n', /chunk size too large/);
    rejects('0000000000001\r\nx\r\n0\r\n\r\n', /chunk size too large/);
    rejects(`${'0'.repeat(13)}\r\n\r\n`, /chunk size too large/);
  });

  test('control characters in an extension or a trailer', () => {
    rejects('1;a=\x01\r\nx\r\n', /control character in chunk extension/);
    rejects('1;a=\x7f\r\nx\r\n', /control character in chunk extension/);
    rejects('1;a=\x00\r\nx\r\n', /control character in chunk extension/);
    rejects('0\r\nX-A: \x00\r\n\r\n', /malformed trailer line/);
  });

  test('a chunk-size line of 4 KiB (CRLF included) passes, one with more than 4 KiB before its CRLF is refused', () => {
    const line = (n: number): string => `1;${'e'.repeat(n - 2)}`;
    assert.equal(line(4094).length, 4094);
    const ok = b(`${line(4094)}\r\nx\r\n0\r\n\r\n`);
    assert.equal(scanPieces(ok).end, ok.length);
    const lastOk = b(`0;${'e'.repeat(4092)}\r\n\r\n`);
    assert.equal(scanPieces(lastOk).end, lastOk.length, 'the last chunk has the same bound');
    rejects(`${line(4097)}\r\nx\r\n0\r\n\r\n`, /chunk extension too long/);
    rejects(`0;${'e'.repeat(4095)}\r\n\r\n`, /chunk extension too long/);
    // The bound holds for a line that never ends, too.
    rejects(`1;${'e'.repeat(100_000)}`, /chunk extension too long/);
  });

  test('a trailer section of 16 KiB (line ends included) passes, a larger one is refused', () => {
    const field = (total: number): string => `X-Big: ${'v'.repeat(total - 'X-Big: \r\n'.length)}\r\n`;
    assert.equal(field(16 * 1024).length, 16 * 1024);
    const ok = b(`0\r\n${field(16 * 1024)}\r\n`);
    assert.equal(scanPieces(ok).end, ok.length);
    const several = b(`0\r\n${field(4096).repeat(3)}${field(4096 - 2)}\r\n`);
    assert.equal(scanPieces(several).end, several.length);
    rejects(`0\r\n${field(16 * 1024 + 2)}\r\n`, /trailer section too large/);
    rejects(`0\r\n${field(6000).repeat(3)}\r\n`, /trailer section too large/);
    rejects(`0\r\nX: ${'v'.repeat(100_000)}`, /trailer section too large/);
  });
});

describe('chunkSizeLine and the framing constants', () => {
  test('hex size and CRLF', () => {
    assert.equal(chunkSizeLine(0), '0\r\n');
    assert.equal(chunkSizeLine(1), '1\r\n');
    assert.equal(chunkSizeLine(15), 'f\r\n');
    assert.equal(chunkSizeLine(255), 'ff\r\n');
    assert.equal(chunkSizeLine(4096), '1000\r\n');
    assert.equal(chunkSizeLine(65536 * 16 + 10), '10000a\r\n');
    assert.equal(LAST_CHUNK.toString('latin1'), '0\r\n\r\n');
    assert.equal(CRLF.toString('latin1'), '\r\n');
  });

  test('chunks framed with chunkSizeLine, CRLF and LAST_CHUNK scan back to their data (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 5000 }), { maxLength: 5 }), fc.array(fc.nat(30_000), { maxLength: 6 }), (chunks, cuts) => {
        const framed = Buffer.concat([...chunks.flatMap((c) => [b(chunkSizeLine(c.length)), Buffer.from(c), CRLF]), LAST_CHUNK]);
        const r = scanPieces(framed, cuts);
        assert.equal(r.end, framed.length);
        assert.deepEqual(r.data, Buffer.concat(chunks.map((c) => Buffer.from(c))));
      }),
      { numRuns: 150 },
    );
  });
});
