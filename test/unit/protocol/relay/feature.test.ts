import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ProtocolError, type ProtocolErrorKind } from '../../../../src/core/errors';
import {
  addrFeature,
  decodeAddrFeature,
  decodeFeatures,
  encodeAddr,
  encodeAddrFeature,
  encodeFeatures,
  formatAddr,
  type Feature,
} from '../../../../src/protocol/relay/feature';
import { formatIP, parseIPv4, parseIPv6 } from '../../../../src/protocol/relay/ip';
import { parseTunnelId } from '../../../../src/protocol/relay/tunnel-id';

function h(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}

function isProtocolError(kind: ProtocolErrorKind) {
  return (err: unknown): boolean => err instanceof ProtocolError && err.kind === kind;
}

describe('encodeAddr (gost AddrFeature.ParseFrom + Encode)', () => {
  const table: Array<[string, string]> = [
    ['192.168.1.10:54321', '01 c0a8010a d431'],
    ['127.0.0.1:50000', '01 7f000001 c350'],
    ['0.0.0.0:0', '01 00000000 0000'],
    [':0', '03 00 0000'],
    [':8080', '03 00 1f90'],
    ['hello', '03 05 68656c6c6f 0000'],
    ['dash:8081', '03 04 64617368 1f91'],
    ['ssh.srv-2.local:0', '03 0f 7373682e7372762d322e6c6f63616c 0000'],
    ['Example.COM:443', '03 0b 4578616d706c652e434f4d 01bb'],
    ['[::1]:53', '04 00000000000000000000000000000001 0035'],
    ['[2001:db8::1]:8443', '04 20010db8000000000000000000000001 20fb'],
    // Go: IPv4-mapped IPv6 parses with To4() != nil → sent as IPv4.
    ['[::ffff:10.0.0.1]:80', '01 0a000001 0050'],
    // Bare IPv6 without brackets does not split: whole string is the host, port 0.
    ['::1', '04 00000000000000000000000000000001 0000'],
    ['host:', '03 04 686f7374 0000'],
    ['host:http', '03 04 686f7374 0000'],
    ['host:+80', '03 04 686f7374 0050'],
    // Not IP literals in Go ≥ 1.17: leading zeros, zones → domains.
    ['010.0.0.1:1', '03 09 3031302e302e302e31 0001'],
    ['[fe80::1%eth0]:22', '03 0c 666538303a3a3125657468 30 0016'],
    ['bücher.de:1', '03 0a 62c3bc636865722e6465 0001'],
  ];
  for (const [addr, want] of table) {
    test(`"${addr}"`, () => {
      assert.equal(encodeAddr(addr).toString('hex'), h(want).toString('hex'));
    });
  }

  test('a 255-byte domain is the longest accepted', () => {
    const name = 'a'.repeat(255);
    const b = encodeAddr(`${name}:1`);
    assert.equal(b.length, 1 + 1 + 255 + 2);
    assert.equal(b[1], 255);
  });

  const errors: Array<[string, string]> = [
    ['256-byte domain', `${'a'.repeat(256)}:1`],
    ['domain of 128 two-byte characters', `${'ü'.repeat(128)}:1`],
    ['port 65536', 'host:65536'],
    ['port -1', 'host:-1'],
    ['empty address', ''],
  ];
  for (const [name, addr] of errors) {
    test(`rejects ${name} with bad_address`, () => {
      assert.throws(() => encodeAddr(addr), isProtocolError('bad_address'));
    });
  }

  test('an explicit atyp must match the host', () => {
    assert.throws(() => encodeAddrFeature({ kind: 'addr', atyp: 1, host: 'example.com', port: 1 }), isProtocolError('bad_address'));
    assert.throws(() => encodeAddrFeature({ kind: 'addr', atyp: 4, host: 'example.com', port: 1 }), isProtocolError('bad_address'));
    assert.throws(() => encodeAddrFeature({ kind: 'addr', atyp: 1, host: '::1', port: 1 }), isProtocolError('bad_address'));
    assert.throws(() => encodeAddrFeature({ kind: 'addr', host: 'x', port: 70000 }), isProtocolError('bad_address'));
  });

  test('an explicit atyp can force a domain that looks like an IP, and IPv4 into IPv6 form', () => {
    assert.equal(encodeAddrFeature({ kind: 'addr', atyp: 3, host: '1.2.3.4', port: 0 }).toString('hex'), '0307312e322e332e340000');
    assert.equal(
      encodeAddrFeature({ kind: 'addr', atyp: 4, host: '1.2.3.4', port: 0 }).toString('hex'),
      '0400000000000000000000ffff010203040000',
    );
  });
});

describe('decodeAddrFeature', () => {
  const table: Array<[string, number, string, number, string]> = [
    ['01 c0a8010a d431', 1, '192.168.1.10', 54321, '192.168.1.10:54321'],
    ['03 00 0000', 3, '', 0, ':0'],
    ['03 10 61363236356336643938343761346265 0000', 3, 'a6265c6d9847a4be', 0, 'a6265c6d9847a4be:0'],
    ['04 00000000000000000000000000000001 0035', 4, '::1', 53, '[::1]:53'],
    ['04 00000000000000000000000000000000 0000', 4, '::', 0, '[::]:0'],
    ['04 20010db8000000000000000000000001 20fb', 4, '2001:db8::1', 8443, '[2001:db8::1]:8443'],
    ['04 00000000000000000000ffff0a000001 0050', 4, '10.0.0.1', 80, '10.0.0.1:80'],
    ['04 20010db8000100000000000000000001 0001', 4, '2001:db8:1::1', 1, '[2001:db8:1::1]:1'],
    // Extra bytes after the port are ignored, as in gost.
    ['01 7f000001 0016 ffff', 1, '127.0.0.1', 22, '127.0.0.1:22'],
    ['03 01 61 0001 00', 3, 'a', 1, 'a:1'],
  ];
  for (const [bytes, atyp, host, port, text] of table) {
    test(`${bytes} → ${text}`, () => {
      const f = decodeAddrFeature(h(bytes));
      assert.deepEqual(f, { kind: 'addr', atyp, host, port });
      assert.equal(formatAddr(f), text);
    });
  }

  const errors: Array<[string, string]> = [
    ['empty', ''],
    ['3 bytes', '01 7f00'],
    ['short IPv4', '01 7f0000 01'],
    ['short IPv6', '04 00000000000000000000000000000001 00'],
    ['domain longer than the data', '03 05 6162 0000'],
    ['domain missing its port', '03 01 61 00'],
    ['atyp 0', '00 00000000 0000'],
    ['atyp 2', '02 00000000 0000'],
    ['atyp 5', '05 00000000 0000'],
  ];
  for (const [name, bytes] of errors) {
    test(`rejects ${name} with bad_address`, () => {
      assert.throws(() => decodeAddrFeature(h(bytes)), isProtocolError('bad_address'));
    });
  }
});

describe('IP text (Go net.IP rules)', () => {
  const v6: Array<[string, string]> = [
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['2001:DB8::1', '2001:db8::1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['1:0:0:1:0:0:0:1', '1:0:0:1::1'],
    ['1:0:0:0:1:0:0:1', '1::1:0:0:1'],
    ['1:0:2:3:4:5:6:7', '1:0:2:3:4:5:6:7'],
    ['0:0:0:0:0:ffff:1.2.3.4', '1.2.3.4'],
    ['::1.2.3.4', '::102:304'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
  ];
  for (const [input, want] of v6) {
    test(`IPv6 ${input} → ${want}`, () => {
      const b = parseIPv6(input);
      assert.ok(b, 'parses');
      assert.equal(formatIP(b), want);
    });
  }

  for (const bad of ['', ':', ':::', '1:::2', '1::2::3', '12345::', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', 'g::', '::1%lo', '1.2.3.4::', '::1.2.3', '1:2:3:4:5:6:7:8::']) {
    test(`"${bad}" is not IPv6`, () => assert.equal(parseIPv6(bad), undefined));
  }
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1..2.3', ' 1.2.3.4', '1.2.3.4 ', '0x1.2.3.4']) {
    test(`"${bad}" is not IPv4`, () => assert.equal(parseIPv4(bad), undefined));
  }
});

describe('features block', () => {
  const tid = parseTunnelId('4d21094e-b74c-4916-86c1-d9fa36ea677b');
  const all: Feature[] = [
    { kind: 'network', network: 1 },
    { kind: 'userAuth', username: 'user', password: 'pass' },
    { kind: 'addr', atyp: 1, host: '192.168.1.10', port: 54322 },
    { kind: 'addr', atyp: 3, host: '', port: 0 },
    { kind: 'tunnel', id: { uuid: tid.uuid, flag: 0, weight: 255 } },
  ];
  const wire =
    '04 0002 0001' +
    '01 000a 04 75736572 04 70617373' +
    '02 0007 01 c0a8010a d432' +
    '02 0004 03 00 0000' +
    '03 0014 4d21094eb74c491686c1d9fa36ea677b 00 0000 ff';

  test('encodes every known feature type', () => {
    assert.equal(encodeFeatures(all).toString('hex'), h(wire).toString('hex'));
  });

  test('decodes them back', () => {
    assert.deepEqual(decodeFeatures(h(wire)), all);
  });

  test('empty and maximal user auth', () => {
    const empty: Feature = { kind: 'userAuth', username: '', password: '' };
    assert.equal(encodeFeatures([empty]).toString('hex'), '0100020000');
    assert.deepEqual(decodeFeatures(h('0100020000')), [empty]);
    const max: Feature = { kind: 'userAuth', username: 'u'.repeat(255), password: 'p'.repeat(255) };
    assert.deepEqual(decodeFeatures(encodeFeatures([max])), [max]);
  });

  test('unknown types are kept as opaque features and never encoded', () => {
    const block = h('05 0003 aabbcc  04 0002 0001  ff 0000');
    assert.deepEqual(decodeFeatures(block), [
      { kind: 'unknown', code: 5, data: h('aabbcc') },
      { kind: 'network', network: 1 },
      { kind: 'unknown', code: 0xff, data: Buffer.alloc(0) },
    ]);
    assert.throws(() => encodeFeatures([{ kind: 'unknown', code: 5, data: Buffer.alloc(0) }]), isProtocolError('bad_feature'));
  });

  test('unknown network values decode as numbers (parseRequest maps them to tcp)', () => {
    assert.deepEqual(decodeFeatures(h('04 0002 1234')), [{ kind: 'network', network: 0x1234 }]);
  });

  const errors: Array<[string, string, ProtocolErrorKind]> = [
    ['1 stray byte', '04 0002 0001 04', 'bad_feature'],
    ['2 stray bytes', '04 0002 0001 0400', 'bad_feature'],
    ['TLV longer than the block', '04 0003 0001', 'bad_feature'],
    ['network of 1 byte', '04 0001 00', 'bad_feature'],
    ['user auth of 1 byte', '01 0001 00', 'bad_feature'],
    ['user auth username past the end', '01 0003 05 6162', 'bad_feature'],
    ['user auth password past the end', '01 0004 01 61 05 62', 'bad_feature'],
    ['tunnel of 15 bytes', `03 000f ${'00'.repeat(15)}`, 'bad_tunnel_id'],
    ['addr with bad atyp', '02 0007 09 00000000 0000', 'bad_address'],
    ['addr too short', '02 0003 01 0000', 'bad_address'],
  ];
  for (const [name, bytes, kind] of errors) {
    test(`rejects ${name} (${kind})`, () => {
      assert.throws(() => decodeFeatures(h(bytes)), isProtocolError(kind));
    });
  }

  test('refuses a user name over 255 bytes', () => {
    assert.throws(
      () => encodeFeatures([{ kind: 'userAuth', username: 'x'.repeat(256), password: '' }]),
      isProtocolError('bad_feature'),
    );
  });

  test('refuses a block over 65535 bytes', () => {
    const big: Feature = { kind: 'userAuth', username: 'u'.repeat(255), password: 'p'.repeat(255) };
    const n = Math.ceil(65536 / (3 + 2 + 510));
    assert.throws(() => encodeFeatures(Array.from({ length: n }, () => big)), isProtocolError('too_large'));
    assert.equal(encodeFeatures(Array.from({ length: n - 1 }, () => big)).length, (n - 1) * 515);
  });

  test('addrFeature derives atyp like gost', () => {
    assert.deepEqual(addrFeature('1.2.3.4:5'), { kind: 'addr', atyp: 1, host: '1.2.3.4', port: 5 });
    assert.deepEqual(addrFeature('[::2]:5'), { kind: 'addr', atyp: 4, host: '::2', port: 5 });
    assert.deepEqual(addrFeature(':0'), { kind: 'addr', atyp: 3, host: '', port: 0 });
  });
});
