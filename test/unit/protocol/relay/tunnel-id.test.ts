import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ProtocolError } from '../../../../src/core/errors';
import {
  FLAG_CONNECTOR_UDP,
  FLAG_PRIVATE,
  ZERO_TUNNEL_ID,
  decodeTunnelId,
  encodeTunnelId,
  equalsUuid,
  isPrivate,
  isZero,
  makeTunnelId,
  parseTunnelId,
  randomUuidBytes,
  tunnelEndpoint,
  tunnelIdToString,
  withFlags,
} from '../../../../src/protocol/relay/tunnel-id';

const ID = '4d21094e-b74c-4916-86c1-d9fa36ea677b';
const ID_HEX = '4d21094eb74c491686c1d9fa36ea677b';

describe('parseTunnelId', () => {
  const accepted: Array<[string, string, number]> = [
    ['36-char lowercase', ID, 0],
    ['36-char uppercase', ID.toUpperCase(), 0],
    ['36-char mixed case', '4D21094e-B74c-4916-86C1-d9fa36ea677B', 0],
    ['32 hex digits', ID_HEX, 0],
    ['32 hex digits uppercase', ID_HEX.toUpperCase(), 0],
    ['urn:uuid: prefix', `urn:uuid:${ID}`, 0],
    ['URN:UUID: prefix in upper case', `URN:UUID:${ID}`, 0],
    ['braces', `{${ID}}`, 0],
    ['$ private, 36-char', `$${ID}`, FLAG_PRIVATE],
    ['$ private, braces', `\${${ID}}`, FLAG_PRIVATE],
    ['$ private, 32 hex', `$${ID_HEX}`, FLAG_PRIVATE],
    ['$ private, urn', `$urn:uuid:${ID}`, FLAG_PRIVATE],
  ];
  for (const [name, text, flag] of accepted) {
    test(`accepts ${name}`, () => {
      const id = parseTunnelId(text);
      assert.equal(id.uuid.toString('hex'), ID_HEX);
      assert.equal(id.flag, flag);
      assert.equal(id.weight, 0);
      assert.equal(tunnelIdToString(id), ID);
      assert.equal(isPrivate(id), flag !== 0);
    });
  }

  const rejected: Array<[string, string]> = [
    ['empty', ''],
    ['only $', '$'],
    ['35 chars', ID.slice(1)],
    ['37 chars', `${ID}0`],
    ['non-hex digit', ID.replace('4d', 'zz')],
    ['dash in the wrong place', '4d21094eb-74c-4916-86c1-d9fa36ea677b'],
    ['33 hex digits', `${ID_HEX}0`],
    ['31 hex digits', ID_HEX.slice(1)],
    ['unbalanced brace', `{${ID}`],
    ['urn without uuid', 'urn:uuid:'],
    ['double $', `$$${ID}`],
    ['surrounding spaces', ` ${ID} `],
    ['uuid with spaces in it', ID.replace(/-/g, ' ')],
  ];
  for (const [name, text] of rejected) {
    test(`rejects ${name} with bad_tunnel_id`, () => {
      assert.throws(
        () => parseTunnelId(text),
        (err: unknown) => err instanceof ProtocolError && err.kind === 'bad_tunnel_id',
      );
    });
  }
});

describe('tunnelEndpoint', () => {
  // protocol.md §2.2 (verified against gost).
  const examples: Array<[string, string]> = [
    ['893787fd-fcd2-46a0-8dd4-f9103ae84df4', '134c714b65d54a4f'],
    ['f8baa731-4057-4300-ab75-c4e603834f1b', 'f1bbbb4aa9d9868a'],
    ['381433e1-7980-11ee-bbdb-60f262c1e32d', 'b7de88a94729b931'],
    ['4d21094e-b74c-4916-86c1-d9fa36ea677b', 'a6265c6d9847a4be'],
  ];
  for (const [id, endpoint] of examples) {
    test(`${id} → ${endpoint}`, () => {
      assert.equal(tunnelEndpoint(parseTunnelId(id)), endpoint);
    });
  }

  test('does not depend on letter case, flag or weight', () => {
    const a = parseTunnelId('$893787FD-FCD2-46A0-8DD4-F9103AE84DF4');
    assert.equal(tunnelEndpoint(withFlags(a, { weight: 7 })), '134c714b65d54a4f');
  });
});

describe('20-byte encoding', () => {
  test('layout is uuid, flag, two zero reserved bytes, weight', () => {
    const id = makeTunnelId(Buffer.from(ID_HEX, 'hex'), FLAG_CONNECTOR_UDP, 255);
    assert.equal(encodeTunnelId(id).toString('hex'), `${ID_HEX}010000ff`);
  });

  test('decode of 20 bytes round-trips and ignores the reserved bytes', () => {
    const id = decodeTunnelId(Buffer.from(`${ID_HEX}80abcd05`, 'hex'));
    assert.equal(tunnelIdToString(id), ID);
    assert.equal(id.flag, 0x80);
    assert.equal(id.weight, 5);
    assert.equal(encodeTunnelId(id).toString('hex'), `${ID_HEX}80000005`);
  });

  test('decode accepts the 16-byte form of old gost (tail reads as zero)', () => {
    const id = decodeTunnelId(Buffer.from(ID_HEX, 'hex'));
    assert.deepEqual(id, { uuid: Buffer.from(ID_HEX, 'hex'), flag: 0, weight: 0 });
    assert.equal(encodeTunnelId(id).length, 20);
  });

  test('decode of 17 and 18 bytes keeps the flag, weight stays 0', () => {
    assert.deepEqual(decodeTunnelId(Buffer.from(`${ID_HEX}01`, 'hex')).flag, 1);
    assert.deepEqual(decodeTunnelId(Buffer.from(`${ID_HEX}0100`, 'hex')).weight, 0);
  });

  test('decode ignores bytes past 20', () => {
    const id = decodeTunnelId(Buffer.from(`${ID_HEX}00000009ffff`, 'hex'));
    assert.equal(id.weight, 9);
  });

  for (const n of [0, 1, 15]) {
    test(`decode of ${n} bytes throws bad_tunnel_id`, () => {
      assert.throws(
        () => decodeTunnelId(Buffer.alloc(n)),
        (err: unknown) => err instanceof ProtocolError && err.kind === 'bad_tunnel_id',
      );
    });
  }

  test('decode copies: later changes to the input do not leak in', () => {
    const buf = Buffer.from(`${ID_HEX}00000001`, 'hex');
    const id = decodeTunnelId(buf);
    buf.fill(0);
    assert.equal(tunnelIdToString(id), ID);
  });
});

describe('identity helpers', () => {
  test('isZero looks only at the uuid', () => {
    assert.equal(isZero(ZERO_TUNNEL_ID), true);
    assert.equal(isZero(makeTunnelId(Buffer.alloc(16), FLAG_PRIVATE, 3)), true);
    assert.equal(isZero(parseTunnelId(ID)), false);
    const almost = Buffer.alloc(16);
    almost[15] = 1;
    assert.equal(isZero(makeTunnelId(almost)), false);
  });

  test('equalsUuid ignores flag and weight', () => {
    const a = parseTunnelId(ID);
    assert.equal(equalsUuid(a, parseTunnelId(`$${ID.toUpperCase()}`)), true);
    assert.equal(equalsUuid(a, withFlags(a, { flag: 1, weight: 200 })), true);
    assert.equal(equalsUuid(a, parseTunnelId('893787fd-fcd2-46a0-8dd4-f9103ae84df4')), false);
  });

  test('makeTunnelId rejects bad sizes and non-byte values', () => {
    assert.throws(() => makeTunnelId(Buffer.alloc(15)), RangeError);
    assert.throws(() => makeTunnelId(Buffer.alloc(16), 256), RangeError);
    assert.throws(() => makeTunnelId(Buffer.alloc(16), 0, -1), RangeError);
  });

  test('randomUuidBytes gives distinct v4 UUIDs', () => {
    const a = randomUuidBytes();
    const b = randomUuidBytes();
    assert.equal(a.length, 16);
    assert.notDeepEqual(a, b);
    for (const u of [a, b]) {
      assert.equal(u[6]! >> 4, 4, 'version nibble');
      assert.equal(u[8]! >> 6, 0b10, 'RFC 4122 variant');
      assert.match(tunnelIdToString(makeTunnelId(u)), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    }
  });
});
