/**
 * The PROXY protocol codec: the spec's examples byte for byte, the strictness rules (v1 length,
 * v2 length bounds, unknown versions and commands), incremental parsing, and properties: every
 * encoded header parses back to its addresses and length at any split point; random bytes never
 * throw and never claim more bytes than were given.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  V1_MAX_BYTES,
  V2_SIGNATURE,
  encodeProxyHeader,
  encodeProxyV1,
  encodeProxyV2,
  parseProxyHeader,
  type ProxyParse,
} from '../../../src/protocol/proxy/codec';
import { ipBytes16 } from '../../../src/protocol/relay/ip';

function header(p: ProxyParse) {
  assert.equal(p.kind, 'header', JSON.stringify(p));
  return (p as Extract<ProxyParse, { kind: 'header' }>).header;
}

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('PROXY protocol v1', () => {
  it('encodes TCP4 and TCP6 lines as the spec writes them', () => {
    assert.equal(
      encodeProxyV1({ source: { host: '192.168.0.1', port: 56324 }, destination: { host: '192.168.0.11', port: 443 } }).toString(),
      'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n',
    );
    assert.equal(
      encodeProxyV1({ source: { host: '2001:db8::1', port: 1 }, destination: { host: '::1', port: 2 } }).toString(),
      'PROXY TCP6 2001:db8::1 ::1 1 2\r\n',
    );
    // Mixed families: IPv4 written as an IPv4-mapped IPv6 address.
    assert.equal(
      encodeProxyV1({ source: { host: '10.0.0.1', port: 1 }, destination: { host: '::1', port: 2 } }).toString(),
      'PROXY TCP6 ::ffff:10.0.0.1 ::1 1 2\r\n',
    );
    assert.equal(encodeProxyV1({ source: { host: 'example.com', port: 1 }, destination: { host: '::1', port: 2 } }).toString(), 'PROXY UNKNOWN\r\n');
    assert.equal(encodeProxyV1({}).toString(), 'PROXY UNKNOWN\r\n');
  });

  it('refuses what v1 cannot say: UDP, LOCAL, a port out of range', () => {
    assert.throws(() => encodeProxyV1({ protocol: 'udp', source: { host: '1.2.3.4', port: 1 }, destination: { host: '1.2.3.4', port: 2 } }), /TCP only/);
    assert.throws(() => encodeProxyV1({ command: 'local' }), /LOCAL/);
    assert.throws(() => encodeProxyV1({ source: { host: '1.2.3.4', port: 65536 }, destination: { host: '1.2.3.4', port: 2 } }), /port/);
  });

  it('parses a header and says how long it is, leaving the payload', () => {
    const buf = Buffer.from('PROXY TCP4 203.0.113.7 10.0.0.1 40000 8080\r\nGET / HTTP/1.1\r\n');
    const h = header(parseProxyHeader(buf));
    assert.deepEqual(h, {
      version: 1,
      command: 'proxy',
      transport: 'tcp4',
      source: { host: '203.0.113.7', port: 40000 },
      destination: { host: '10.0.0.1', port: 8080 },
      length: 44,
    });
    assert.equal(buf.subarray(h.length).toString(), 'GET / HTTP/1.1\r\n');
    const u = header(parseProxyHeader(Buffer.from('PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nX')));
    assert.equal(u.transport, 'unknown');
    assert.equal(u.source, undefined);
    assert.equal(u.length, 35);
  });

  it('answers "more" for every proper prefix and "none" for other first bytes', () => {
    const line = Buffer.from('PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n');
    for (let i = 0; i < line.length; i++) assert.equal(parseProxyHeader(line.subarray(0, i)).kind, 'more', `prefix ${i}`);
    assert.equal(parseProxyHeader(line).kind, 'header');
    for (const s of ['GET / HTTP/1.1\r\n', '\x01\x00', 'PROXX', 'proxy TCP4', '\x16\x03\x01']) {
      assert.equal(parseProxyHeader(Buffer.from(s, 'latin1')).kind, 'none', s);
    }
  });

  it('is strict: length bound, CRLF, protocol, addresses, ports, field count', () => {
    const bad = [
      `PROXY TCP4 ${'1'.repeat(120)}`, // no CRLF within 107 bytes
      'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n', // LF alone
      'PROXY TCP4 1.2.3.4 5.6.7.8 1\r2\r\n', // CR inside
      'PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n',
      'PROXY TCP4 1.2.3.4 ::1 1 2\r\n',
      'PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n',
      'PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n',
      'PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n',
      'PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n',
      'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n',
      'PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n',
      'PROXY \r\n',
      'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\x00\r\n',
    ];
    for (const s of bad) assert.equal(parseProxyHeader(Buffer.from(s, 'latin1')).kind, 'invalid', JSON.stringify(s));
    // The longest legal line (107 bytes) parses; the bound is on the line, not on what follows.
    const longest = 'PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n';
    assert.equal(longest.length, V1_MAX_BYTES);
    assert.equal(header(parseProxyHeader(Buffer.from(longest + 'x'.repeat(50)))).length, V1_MAX_BYTES);
  });
});

describe('PROXY protocol v2', () => {
  it('encodes TCP over IPv4 as the spec lays it out', () => {
    const b = encodeProxyV2({ source: { host: '192.168.0.1', port: 56324 }, destination: { host: '192.168.0.11', port: 443 } });
    assert.deepEqual(b, hex(`0d0a0d0a000d0a515549540a 21 11 000c c0a80001 c0a8000b dc04 01bb`));
    const u = encodeProxyV2({ protocol: 'udp', source: { host: '::1', port: 53 }, destination: { host: '2001:db8::2', port: 5353 } });
    assert.equal(u[13], 0x22);
    assert.equal(u.readUInt16BE(14), 36);
    assert.deepEqual(encodeProxyV2({ command: 'local' }), Buffer.concat([V2_SIGNATURE, hex('20 00 0000')]));
    assert.deepEqual(encodeProxyV2({}), Buffer.concat([V2_SIGNATURE, hex('21 00 0000')]));
  });

  it('parses LOCAL, UNSPEC and skips TLVs', () => {
    const local = header(parseProxyHeader(Buffer.concat([V2_SIGNATURE, hex('20 11 000c'), Buffer.alloc(12), Buffer.from('payload')])));
    assert.equal(local.command, 'local');
    assert.equal(local.source, undefined);
    assert.equal(local.length, 28);
    const tlv = hex('04 0003 616263'); // a NOOP TLV of 3 bytes
    const base = encodeProxyV2({ source: { host: '10.1.2.3', port: 7 }, destination: { host: '10.3.2.1', port: 9 } });
    const withTlv = Buffer.concat([base, tlv]);
    withTlv.writeUInt16BE(12 + tlv.length, 14);
    const h = header(parseProxyHeader(Buffer.concat([withTlv, Buffer.from('rest')])));
    assert.equal(h.length, base.length + tlv.length);
    assert.deepEqual(h.source, { host: '10.1.2.3', port: 7 });
    assert.equal(parseProxyHeader(withTlv.subarray(0, withTlv.length - 1)).kind, 'more');
  });

  it('rejects unknown versions, commands, families, protocols and short lengths', () => {
    const v = (verCmd: number, fam: number, len: number): ProxyParse =>
      parseProxyHeader(Buffer.concat([V2_SIGNATURE, Buffer.from([verCmd, fam, len >> 8, len & 0xff]), Buffer.alloc(len)]));
    assert.equal(v(0x11, 0x11, 12).kind, 'invalid'); // version 1 in binary form
    assert.equal(v(0x31, 0x11, 12).kind, 'invalid'); // version 3
    assert.equal(v(0x22, 0x11, 12).kind, 'invalid'); // command 2
    assert.equal(v(0x21, 0x41, 12).kind, 'invalid'); // family 4
    assert.equal(v(0x21, 0x13, 12).kind, 'invalid'); // protocol 3
    assert.equal(v(0x21, 0x11, 11).kind, 'invalid'); // INET needs 12
    assert.equal(v(0x21, 0x21, 35).kind, 'invalid'); // INET6 needs 36
    assert.equal(v(0x21, 0x31, 215).kind, 'invalid'); // UNIX needs 216
    assert.equal(header(v(0x21, 0x31, 216)).transport, 'unix-stream');
    // A length that is not there yet is "more", not a guess.
    assert.equal(parseProxyHeader(Buffer.concat([V2_SIGNATURE, hex('21 11 ffff')])).kind, 'more');
    assert.equal(parseProxyHeader(V2_SIGNATURE.subarray(0, 5)).kind, 'more');
  });
});

describe('PROXY protocol properties', () => {
  const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((a) => a.join('.'));
  const v6 = fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 }).map((g) => g.map((x) => x.toString(16)).join(':'));
  const port = fc.nat(65535);
  const sameBytes = (a: string, b: string): boolean => ipBytes16(a)!.equals(ipBytes16(b)!);

  it('encode → parse gives back the addresses and the length, at any split', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.tuple(v4, v4), fc.tuple(v6, v6), fc.tuple(v4, v6)),
        port,
        port,
        fc.constantFrom<1 | 2>(1, 2),
        fc.constantFrom<'tcp' | 'udp'>('tcp', 'udp'),
        fc.uint8Array({ maxLength: 64 }),
        ([src, dst], sport, dport, version, protocol, payload) => {
          const proto = version === 1 ? 'tcp' : protocol;
          const enc = encodeProxyHeader(version, { protocol: proto, source: { host: src, port: sport }, destination: { host: dst, port: dport } });
          const buf = Buffer.concat([enc, payload]);
          const h = header(parseProxyHeader(buf));
          assert.equal(h.length, enc.length);
          assert.equal(h.version, version);
          assert.ok(sameBytes(h.source!.host, src) && sameBytes(h.destination!.host, dst));
          assert.equal(h.source!.port, sport);
          assert.equal(h.destination!.port, dport);
          assert.equal(h.transport.startsWith(proto), true);
          for (let i = 0; i < enc.length; i++) assert.equal(parseProxyHeader(enc.subarray(0, i)).kind, 'more');
        },
      ),
      { numRuns: 300 },
    );
  });

  it('random bytes never throw and never claim more than was given', () => {
    const starts = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.concat([Buffer.from('PROXY '), b])),
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.concat([V2_SIGNATURE, b])),
      fc.uint8Array({ maxLength: 120 }).map((b) => Buffer.concat([Buffer.from('PROXY TCP4 '), b])),
    );
    fc.assert(
      fc.property(starts, (buf) => {
        const p = parseProxyHeader(buf);
        if (p.kind === 'header') assert.ok(p.header.length <= buf.length);
        if (p.kind === 'more') assert.ok(buf.length < 16 + 0xffff);
        // A parse of the bytes it claimed gives the same header (nothing read beyond it).
        if (p.kind === 'header') assert.deepEqual(parseProxyHeader(buf.subarray(0, p.header.length)), p);
      }),
      { numRuns: 2000 },
    );
  });
});
