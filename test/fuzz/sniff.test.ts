/**
 * Property tests for the HTTP and TLS sniffers: generated requests and ClientHellos parse back
 * to what was generated in any fragmentation, and arbitrary or mutated bytes either parse or
 * throw ProtocolError — nothing else, and in bounded time.
 *
 * Time-boxed: by default a short run (≈ 4 s for the whole file); with FUZZ_SECONDS=n the
 * properties share n seconds and run until it is spent.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { getHeader, isHttpRequestStart, parseHttpRequestHead } from '../../src/protocol/sniff/http';
import { isTlsHandshakeStart, parseClientHelloSni } from '../../src/protocol/sniff/tls';
import { sniffHost } from '../../src/protocol/sniff/host';
import { fuzzParams, mutatedArb, onlyProtocolErrors } from '../helpers/fuzz';

const PROPERTIES = 8;
const params = fuzzParams(PROPERTIES);

// ---------------------------------------------------------------------------------------------
// HTTP

const tokenArb = fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,12}$/);
const valueArb = fc.stringMatching(/^[\x21-\x7e]([\x20-\x7e\t]{0,30}[\x21-\x7e])?$/);
const hostArb = fc.oneof(
  fc.domain(),
  fc.tuple(fc.domain(), fc.nat(65535)).map(([d, p]) => `${d}:${p}`),
  fc.ipV4(),
  fc.ipV6().map((v) => `[${v}]`),
);

interface GeneratedRequest {
  method: string;
  path: string;
  headers: Array<[string, string]>;
  host: string | undefined;
  eol: '\r\n' | '\n';
}

const requestArb: fc.Arbitrary<GeneratedRequest> = fc
  .tuple(
    fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'HEAD', 'TRACE'),
    fc.stringMatching(/^\/[\x21-\x7e]{0,40}$/),
    fc.array(fc.tuple(tokenArb.filter((t) => t.toLowerCase() !== 'host'), valueArb), { maxLength: 8 }),
    fc.option(hostArb),
    fc.nat(8),
    fc.constantFrom('\r\n' as const, '\n' as const),
  )
  .map(([method, path, headers, host, at, eol]) => {
    const all: Array<[string, string]> = [...headers];
    if (host !== null) all.splice(at % (all.length + 1), 0, ['Host', host]);
    return { method, path, headers: all, host: host ?? undefined, eol };
  });

function render(r: GeneratedRequest): Buffer {
  const lines = [`${r.method} ${r.path} HTTP/1.1`, ...r.headers.map(([k, v]) => `${k}: ${v}`), '', ''];
  return Buffer.from(lines.join(r.eol), 'latin1');
}

// ---------------------------------------------------------------------------------------------
// TLS

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function clientHello(sni: string | undefined, otherExts: Array<[number, Uint8Array]>, sessionId: Uint8Array, fragmentSize: number): Buffer {
  const exts: Buffer[] = otherExts.map(([t, d]) => Buffer.concat([u16(t), u16(d.length), d]));
  if (sni !== undefined) {
    const name = Buffer.from(sni, 'latin1');
    const list = Buffer.concat([Buffer.from([0]), u16(name.length), name]);
    const data = Buffer.concat([u16(list.length), list]);
    exts.splice(exts.length >> 1, 0, Buffer.concat([u16(0), u16(data.length), data]));
  }
  const extBlock = Buffer.concat(exts);
  const body = Buffer.concat([
    Buffer.from([3, 3]),
    Buffer.alloc(32, 7),
    Buffer.from([sessionId.length]),
    sessionId,
    Buffer.from([0, 4, 0x13, 0x01, 0x13, 0x02, 1, 0]),
    u16(extBlock.length),
    extBlock,
  ]);
  const hs = Buffer.concat([Buffer.from([1]), Buffer.from([body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
  const records: Buffer[] = [];
  for (let i = 0; i < hs.length; i += fragmentSize) {
    const part = hs.subarray(i, i + fragmentSize);
    records.push(Buffer.from([0x16, 3, 1]), u16(part.length), part);
  }
  return Buffer.concat(records);
}

const helloArb = fc
  .tuple(
    fc.option(fc.stringMatching(/^[a-z0-9.-]{1,60}$/)),
    fc.uniqueArray(fc.tuple(fc.integer({ min: 1, max: 65535 }), fc.uint8Array({ maxLength: 40 })), {
      maxLength: 8,
      selector: ([t]) => t,
    }),
    fc.uint8Array({ maxLength: 32 }),
    fc.integer({ min: 1, max: 16384 }),
  )
  .map(([sni, exts, sid, frag]) => ({ sni: sni ?? undefined, bytes: clientHello(sni ?? undefined, exts, sid, frag) }));

// ---------------------------------------------------------------------------------------------

describe('HTTP sniffer properties', () => {
  test('generated requests parse back, and every shorter prefix is incomplete', () => {
    fc.assert(
      fc.property(requestArb, fc.uint8Array({ maxLength: 20 }), (req, body) => {
        const head = render(req);
        const r = parseHttpRequestHead(Buffer.concat([head, body]));
        assert.ok(r.complete);
        assert.equal(r.method, req.method);
        assert.equal(r.path, req.path);
        assert.deepEqual(r.headers, req.headers);
        assert.equal(r.host, req.host);
        assert.equal(r.headEnd, head.length);
        assert.equal(getHeader(r.headers, 'host'), req.host);
        assert.equal(isHttpRequestStart(head), true);
        for (let n = 0; n < head.length; n += 1 + (n % 7)) {
          assert.equal(parseHttpRequestHead(head.subarray(0, n)).complete, false);
        }
      }),
      params(),
    );
  });

  test('arbitrary and mutated bytes throw only ProtocolError', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b)),
          mutatedArb(requestArb.map(render), 5),
        ),
        fc.integer({ min: 1, max: 500 }),
        (buf, max) => {
          onlyProtocolErrors(() => parseHttpRequestHead(buf));
          onlyProtocolErrors(() => parseHttpRequestHead(buf, { maxHeadBytes: max }));
          isHttpRequestStart(buf);
        },
      ),
      params(1000),
    );
  });

  test('a parse result never changes when more bytes arrive', () => {
    fc.assert(
      fc.property(requestArb, fc.uint8Array({ maxLength: 50 }), (req, more) => {
        const head = render(req);
        const a = parseHttpRequestHead(head);
        const b = parseHttpRequestHead(Buffer.concat([head, more]));
        assert.deepEqual(a, b);
      }),
      params(),
    );
  });
});

describe('TLS sniffer properties', () => {
  test('generated ClientHellos, fragmented or not, yield their SNI', () => {
    fc.assert(
      fc.property(helloArb, fc.uint8Array({ maxLength: 20 }), ({ sni, bytes }, tail) => {
        const r = parseClientHelloSni(Buffer.concat([bytes, tail]));
        assert.ok(r.complete);
        assert.equal(r.sni, sni);
        assert.equal(r.recordEnd, bytes.length);
        assert.equal(isTlsHandshakeStart(bytes), true);
      }),
      params(),
    );
  });

  test('every prefix of a ClientHello is incomplete with a truthful `needed`', () => {
    fc.assert(
      fc.property(helloArb, fc.nat(), ({ bytes }, cut) => {
        const n = cut % bytes.length;
        const r = parseClientHelloSni(bytes.subarray(0, n));
        assert.equal(r.complete, false);
        if (!r.complete) assert.ok(r.needed >= 1 && n + r.needed <= bytes.length);
      }),
      params(),
    );
  });

  test('arbitrary and mutated bytes throw only ProtocolError', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b)),
          fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), b])),
          mutatedArb(helloArb.map((h) => h.bytes), 5),
        ),
        (buf) => {
          onlyProtocolErrors(() => parseClientHelloSni(buf));
          onlyProtocolErrors(() => parseClientHelloSni(buf, { maxClientHelloBytes: 64 }));
          isTlsHandshakeStart(buf);
        },
      ),
      params(1000),
    );
  });
});

describe('sniffHost properties', () => {
  test('arbitrary bytes, with or without eof, give a decision or a ProtocolError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, eof) => {
        onlyProtocolErrors(() => {
          const d = sniffHost(Buffer.from(bytes), eof);
          if (eof) assert.equal(d.done, true);
        });
      }),
      params(1000),
    );
  });

  test('an HTTP request is routed to its Host with port 80 by default', () => {
    fc.assert(
      fc.property(requestArb, (req) => {
        const d = sniffHost(render(req));
        assert.equal(d.done, true);
        if (!d.done) return;
        if (req.host === undefined) assert.equal(d.value, undefined);
        else assert.equal(d.value, /:\d+$/.test(req.host) ? req.host : `${req.host}:80`);
      }),
      params(),
    );
  });
});
