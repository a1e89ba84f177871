/**
 * Property tests for the relay codec, the stream header and the UDP framing: round trips of
 * generated messages, and arbitrary or mutated bytes into every decoder, which must either
 * decode or throw ProtocolError — never anything else, never hang.
 *
 * Time-boxed: by default a short run (≈ 4 s for the whole file); with FUZZ_SECONDS=n the
 * properties share n seconds and run until it is spent.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { addrFeature, formatAddr, type AddrFeature, type Feature } from '../../src/protocol/relay/feature';
import { formatIP, parseIPv4, parseIPv6 } from '../../src/protocol/relay/ip';
import {
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  parseRequest,
  type RelayRequest,
  type RelayResponse,
} from '../../src/protocol/relay/message';
import { RelayReader } from '../../src/protocol/relay/reader';
import { makeTunnelId, parseTunnelId, tunnelIdToString } from '../../src/protocol/relay/tunnel-id';
import { StreamHeaderReader, decodeStreamHeader, encodeStreamHeader } from '../../src/protocol/stream-header';
import { UdpFrameDecoder, encodeDatagram } from '../../src/protocol/udp-frame';
import { fuzzParams, mutatedArb, onlyProtocolErrors } from '../helpers/fuzz';
import { cutAt } from '../helpers/vectors';

const PROPERTIES = 13;
const params = fuzzParams(PROPERTIES);

// ---------------------------------------------------------------------------------------------
// Arbitraries

/** fc.record with ordinary objects (deepStrictEqual compares prototypes). */
function rec<T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> {
  return fc.record(model, { noNullPrototype: true }) as fc.Arbitrary<T>;
}

const byteString = (maxBytes: number) =>
  fc.string({ unit: 'grapheme', maxLength: maxBytes }).filter((s) => Buffer.byteLength(s) <= maxBytes);

const ipv6Bytes = fc.uint8Array({ minLength: 16, maxLength: 16 });

const addrArb: fc.Arbitrary<AddrFeature> = fc.oneof(
  rec({ kind: fc.constant('addr' as const), atyp: fc.constant(1 as const), host: fc.ipV4(), port: fc.nat(65535) }),
  rec({
    kind: fc.constant('addr' as const),
    atyp: fc.constant(4 as const),
    host: ipv6Bytes.map((b) => formatIP(b)),
    port: fc.nat(65535),
  }),
  rec({
    kind: fc.constant('addr' as const),
    atyp: fc.constant(3 as const),
    host: fc.oneof(byteString(255), fc.domain()),
    port: fc.nat(65535),
  }),
);

const tunnelIdArb = fc
  .tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.nat(255), fc.nat(255))
  .map(([u, flag, weight]) => makeTunnelId(u, flag, weight));

const featureArb: fc.Arbitrary<Feature> = fc.oneof(
  rec({ kind: fc.constant('userAuth' as const), username: byteString(255), password: byteString(255) }),
  addrArb,
  rec({ kind: fc.constant('tunnel' as const), id: tunnelIdArb }),
  rec({ kind: fc.constant('network' as const), network: fc.nat(65535) }),
);

const requestArb: fc.Arbitrary<RelayRequest> = rec({
  cmd: fc.nat(15),
  flags: fc.nat(15).map((n) => n << 4),
  features: fc.array(featureArb, { maxLength: 12 }),
});

const responseArb: fc.Arbitrary<RelayResponse> = rec({
  status: fc.nat(255),
  features: fc.array(featureArb, { maxLength: 12 }),
});

/** Cut points for re-chunking a buffer. */
const cutsArb = fc.array(fc.nat(70000), { maxLength: 12 });

function chunk(buf: Buffer, cuts: number[]): Buffer[] {
  return cutAt(buf, cuts.map((c) => c % (buf.length + 1)));
}

/** A valid message with some bytes overwritten. */
const mutatedMessageArb = mutatedArb(fc.oneof(requestArb.map((r) => encodeRequest(r)), responseArb.map((r) => encodeResponse(r))), 6);

// ---------------------------------------------------------------------------------------------

describe('relay codec properties', () => {
  test('decodeRequest(encodeRequest(x)) == x', () => {
    fc.assert(
      fc.property(requestArb, (req) => {
        assert.deepEqual(decodeRequest(encodeRequest(req)), req);
      }),
      params(),
    );
  });

  test('decodeResponse(encodeResponse(x)) == x', () => {
    fc.assert(
      fc.property(responseArb, (resp) => {
        assert.deepEqual(decodeResponse(encodeResponse(resp)), resp);
      }),
      params(),
    );
  });

  test('RelayReader gives the same message and rest for any chunking', () => {
    fc.assert(
      fc.property(requestArb, fc.uint8Array({ maxLength: 64 }), cutsArb, (req, tail, cuts) => {
        const msg = encodeRequest(req);
        const stream = Buffer.concat([msg, tail]);
        const reader = RelayReader.forRequest();
        const chunks = chunk(stream, cuts);
        for (let i = 0; i < chunks.length; i++) {
          const r = reader.push(chunks[i]!);
          if (r) {
            assert.deepEqual(r.message, req);
            assert.deepEqual(r.raw, msg);
            assert.deepEqual(Buffer.concat([r.rest, ...chunks.slice(i + 1)]), Buffer.from(tail));
            return;
          }
        }
        assert.fail('reader did not complete');
      }),
      params(),
    );
  });

  test('parseRequest: the first Addr is src and the last later Addr is dst', () => {
    fc.assert(
      fc.property(requestArb, (req) => {
        const p = parseRequest(decodeRequest(encodeRequest(req)));
        const addrs = req.features.filter((f): f is AddrFeature => f.kind === 'addr').map(formatAddr);
        assert.equal(p.srcAddr, addrs[0]);
        assert.equal(p.dstAddr, addrs.length > 1 ? addrs[addrs.length - 1] : undefined);
      }),
      params(),
    );
  });

  test('arbitrary bytes into decodeRequest / decodeResponse throw only ProtocolError', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.concat([Buffer.from([1]), b]))), (bytes) => {
        const buf = Buffer.from(bytes);
        onlyProtocolErrors(() => decodeRequest(buf));
        onlyProtocolErrors(() => decodeResponse(buf));
      }),
      params(1000),
    );
  });

  test('mutated messages into every relay decoder throw only ProtocolError', () => {
    fc.assert(
      fc.property(mutatedMessageArb, cutsArb, (buf, cuts) => {
        onlyProtocolErrors(() => decodeRequest(buf));
        onlyProtocolErrors(() => decodeResponse(buf));
        onlyProtocolErrors(() => decodeStreamHeader(buf));
        for (const reader of [RelayReader.forRequest(), RelayReader.forResponse({ maxFeaturesBytes: 64 })]) {
          onlyProtocolErrors(() => {
            for (const c of chunk(buf, cuts)) if ((reader as RelayReader<unknown>).push(c)) break;
          });
        }
        onlyProtocolErrors(() => {
          const shr = new StreamHeaderReader();
          for (const c of chunk(buf, cuts)) if (shr.push(c)) break;
        });
      }),
      params(1000),
    );
  });

  test('arbitrary chunks into RelayReader throw only ProtocolError and never hold more than one message', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 20 }), (chunks) => {
        const reader = RelayReader.forRequest();
        onlyProtocolErrors(() => {
          for (const c of chunks) {
            if (reader.push(Buffer.from(c))) break;
            assert.ok(reader.bufferedBytes <= 4 + 65535);
          }
        });
      }),
      params(1000),
    );
  });
});

describe('address and tunnel id properties', () => {
  test('addrFeature(formatAddr(f)) == f for IPs and plain domains', () => {
    const plainAddr = fc.oneof(
      addrArb.filter((a) => a.atyp !== 3),
      rec({ kind: fc.constant('addr' as const), atyp: fc.constant(3 as const), host: fc.domain(), port: fc.nat(65535) }),
    );
    fc.assert(
      fc.property(plainAddr, (f) => {
        const want = f.atyp === 4 && parseIPv4(f.host) ? { ...f, atyp: 1 } : f; // mapped IPv6 renders dotted
        assert.deepEqual(addrFeature(formatAddr(f)), want);
      }),
      params(),
    );
  });

  test('IPv6 text: parse(format(b)) == b, and the text is what WHATWG URL serialises', () => {
    fc.assert(
      fc.property(
        fc.oneof(ipv6Bytes, fc.tuple(fc.nat(7), fc.nat(8), ipv6Bytes).map(([at, n, b]) => Buffer.from(b).fill(0, at * 2, Math.min(16, (at + n) * 2)))),
        (b) => {
          const text = formatIP(b);
          const mapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
          if (mapped) {
            assert.deepEqual(parseIPv4(text), Buffer.from(b.subarray(12)));
            return;
          }
          assert.deepEqual(parseIPv6(text), Buffer.from(b));
          assert.equal(new URL(`http://[${text}]/`).hostname, `[${text}]`);
        },
      ),
      params(),
    );
  });

  test('parseTunnelId(tunnelIdToString(id)) keeps the uuid; arbitrary text throws only ProtocolError', () => {
    fc.assert(
      fc.property(tunnelIdArb, fc.string({ maxLength: 50 }), (id, junk) => {
        assert.deepEqual(parseTunnelId(tunnelIdToString(id)).uuid, id.uuid);
        onlyProtocolErrors(() => parseTunnelId(junk));
        onlyProtocolErrors(() => parseTunnelId(`$${junk}`));
      }),
      params(),
    );
  });
});

describe('stream header properties', () => {
  test('decode(encode(src, dst)) gives back the formatted addresses', () => {
    fc.assert(
      fc.property(addrArb.filter((a) => a.atyp !== 3), fc.option(addrArb.filter((a) => a.atyp !== 3 || !a.host.includes(':'))), (src, dst) => {
        const s = formatAddr(src);
        const d = dst === null ? undefined : formatAddr(dst);
        const got = decodeStreamHeader(encodeStreamHeader(s, d));
        assert.deepEqual(got, { src: formatAddr(addrFeature(s)), dst: d === undefined ? undefined : formatAddr(addrFeature(d)) });
      }),
      params(),
    );
  });
});

describe('UDP framing properties', () => {
  test('any datagrams survive any chunking', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 12 }), cutsArb, (dgs, cuts) => {
        const stream = Buffer.concat(dgs.map((d) => encodeDatagram(d)));
        const dec = new UdpFrameDecoder();
        const out = chunk(stream, cuts).flatMap((c) => dec.push(c));
        assert.deepEqual(out, dgs.map((d) => Buffer.from(d)));
        assert.equal(dec.partial, false);
      }),
      params(),
    );
  });

  test('arbitrary bytes throw only ProtocolError, in both oversize modes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 500 }), cutsArb, fc.integer({ min: 1, max: 65535 }), (bytes, cuts, max) => {
        for (const oversize of ['error', 'truncate'] as const) {
          const dec = new UdpFrameDecoder({ maxDatagramBytes: max, oversize });
          onlyProtocolErrors(() => {
            for (const c of chunk(Buffer.from(bytes), cuts)) for (const d of dec.push(c)) assert.ok(d.length <= max);
            dec.finish();
          });
        }
      }),
      params(1000),
    );
  });
});
