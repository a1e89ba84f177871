import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ProtocolError, type ProtocolErrorKind } from '../../../../src/core/errors';
import {
  CMD_ASSOCIATE,
  CMD_BIND,
  CMD_CONNECT,
  FLAG_UDP,
  STATUS_BAD_REQUEST,
  STATUS_FORBIDDEN,
  STATUS_HOST_UNREACHABLE,
  STATUS_INTERNAL_SERVER_ERROR,
  STATUS_NETWORK_UNREACHABLE,
  STATUS_OK,
  STATUS_SERVICE_UNAVAILABLE,
  STATUS_TIMEOUT,
  STATUS_UNAUTHORIZED,
} from '../../../../src/protocol/relay/constants';
import {
  buildBindRequest,
  buildBindResponse,
  buildConnectRequest,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  messageLength,
  networkName,
  parseBindResponse,
  parseRequest,
  statusResponse,
  type RelayRequest,
  type RelayResponse,
} from '../../../../src/protocol/relay/message';
import { makeTunnelId, parseTunnelId, tunnelIdToString } from '../../../../src/protocol/relay/tunnel-id';

function h(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}

function isProtocolError(kind: ProtocolErrorKind) {
  return (err: unknown): boolean => err instanceof ProtocolError && err.kind === kind;
}

const TID = parseTunnelId('4d21094e-b74c-4916-86c1-d9fa36ea677b');
const TID_VISITOR = parseTunnelId('aede1f6a-762b-45da-b937-b6632356555a');
const CONNECTOR = parseTunnelId('3464af8b-49c5-424c-89ea-b4e9af075a7d');

// protocol.md §9 worked examples. 9.1–9.3 use the newest gost IPv4 form of the bind address.
const EX_9_1 = h(`
  01 02 00 2b
  02 00 07  01 c0 a8 01 0a d4 31
  02 00 07  01 00 00 00 00 00 00
  03 00 14  4d 21 09 4e b7 4c 49 16 86 c1 d9 fa 36 ea 67 7b 00 00 00 01`);
const EX_9_1_EMPTY_DOMAIN = h(`
  01 02 00 28
  02 00 07  01 c0 a8 01 0a d4 31
  02 00 04  03 00 00 00
  03 00 14  4d 21 09 4e b7 4c 49 16 86 c1 d9 fa 36 ea 67 7b 00 00 00 01`);
const EX_9_2 = h(`
  01 82 00 3d
  04 00 02 00 01
  01 00 0a 04 75 73 65 72 04 70 61 73 73
  02 00 07 01 c0 a8 01 0a d4 32
  02 00 07 01 00 00 00 00 00 00
  03 00 14 4d 21 09 4e b7 4c 49 16 86 c1 d9 fa 36 ea 67 7b 00 00 00 ff`);
const EX_9_3 = h(`
  01 00 00 2e
  02 00 14  03 10 61 36 32 36 35 63 36 64 39 38 34 37 61 34 62 65  00 00
  03 00 14  34 64 af 8b 49 c5 42 4c 89 ea b4 e9 af 07 5a 7d  00  00 00  01`);
const EX_9_4 = h(`
  01 01 00 37
  02 00 07 01 7f 00 00 01 c3 50
  02 00 13 03 0f 73 73 68 2e 73 72 76 2d 32 2e 6c 6f 63 61 6c 00 00
  03 00 14 ae de 1f 6a 76 2b 45 da b9 37 b6 63 23 56 55 5a 00 00 00 00`);
const EX_9_4_UDP = h(`
  01 81 00 3c  04 00 02 00 01  02 00 07 01 7f 00 00 01 c3 51
  02 00 13 03 0f 64 6e 73 2e 73 72 76 2d 32 2e 6c 6f 63 61 6c 00 00
  03 00 14 ae de 1f 6a 76 2b 45 da b9 37 b6 63 23 56 55 5a 00 00 00 00`);

describe('protocol.md §9 worked examples', () => {
  test('9.1 BIND (newest-gost IPv4 bind address) decodes', () => {
    const req = decodeRequest(EX_9_1);
    assert.deepEqual(parseRequest(req), {
      cmd: CMD_BIND,
      udpFlag: false,
      network: 'tcp',
      srcAddr: '192.168.1.10:54321',
      dstAddr: '0.0.0.0:0',
      tunnelId: makeTunnelId(TID.uuid, 0, 1),
    });
    assert.deepEqual(encodeRequest(req), EX_9_1, 'decoded form re-encodes to the same bytes');
  });

  test('9.1 our builder sends the empty-domain bind address instead (what 3.2.6 sends)', () => {
    const built = buildBindRequest({ srcAddr: '192.168.1.10:54321', bindAddr: ':0', tunnelId: TID, weight: 1, udp: false });
    assert.equal(built.toString('hex'), EX_9_1_EMPTY_DOMAIN.toString('hex'));
    assert.equal(parseRequest(decodeRequest(built)).dstAddr, ':0');
  });

  test('9.1 builder also maps 0.0.0.0 and :: bind hosts to the empty domain', () => {
    for (const bindAddr of ['0.0.0.0:0', '[::]:0']) {
      const built = buildBindRequest({ srcAddr: '192.168.1.10:54321', bindAddr, tunnelId: TID, weight: 1, udp: false });
      assert.equal(built.toString('hex'), EX_9_1_EMPTY_DOMAIN.toString('hex'), bindAddr);
    }
  });

  test('9.2 BIND rudp with auth and weight 255 decodes', () => {
    const req = decodeRequest(EX_9_2);
    assert.equal(req.cmd, CMD_BIND);
    assert.equal(req.flags, FLAG_UDP);
    assert.deepEqual(parseRequest(req), {
      cmd: CMD_BIND,
      udpFlag: true,
      network: 'udp',
      username: 'user',
      password: 'pass',
      srcAddr: '192.168.1.10:54322',
      dstAddr: '0.0.0.0:0',
      tunnelId: makeTunnelId(TID.uuid, 0, 255),
    });
  });

  test('9.2 builder: same bytes except the empty-domain bind address', () => {
    const built = buildBindRequest({
      srcAddr: '192.168.1.10:54322',
      bindAddr: ':0',
      tunnelId: TID,
      weight: 255,
      udp: true,
      auth: { username: 'user', password: 'pass' },
    });
    const want = Buffer.concat([
      h('01 82 00 3a'),
      EX_9_2.subarray(4, 4 + 5 + 13 + 10),
      h('02 00 04 03 00 00 00'),
      EX_9_2.subarray(EX_9_2.length - 23),
    ]);
    assert.equal(built.toString('hex'), want.toString('hex'));
  });

  test('9.3 BIND response round-trips through the builder', () => {
    const resp = decodeResponse(EX_9_3);
    assert.deepEqual(parseBindResponse(resp), {
      status: STATUS_OK,
      bindAddr: 'a6265c6d9847a4be:0',
      endpoint: 'a6265c6d9847a4be',
      connectorId: makeTunnelId(CONNECTOR.uuid, 0, 1),
      udp: false,
    });
    const built = buildBindResponse({ host: 'a6265c6d9847a4be', port: 0, connectorId: makeTunnelId(CONNECTOR.uuid, 0, 1) });
    assert.deepEqual(built, EX_9_3);
  });

  test('9.3 variant for 9.2: UDP connector flag and weight 255', () => {
    const built = buildBindResponse({ host: 'a6265c6d9847a4be', port: 0, connectorId: makeTunnelId(CONNECTOR.uuid, 0x01, 255) });
    assert.equal(built.subarray(built.length - 4).toString('hex'), '010000ff');
    const parsed = parseBindResponse(decodeResponse(built));
    assert.equal(parsed.udp, true);
    assert.equal(parsed.connectorId?.weight, 255);
  });

  test('the HTTPS connector flag (burrow): parsed beside UDP, absent in gost\'s answer', () => {
    const built = buildBindResponse({ host: 'a6265c6d9847a4be.example.net', port: 0, connectorId: makeTunnelId(CONNECTOR.uuid, 0x02, 1) });
    assert.equal(built.subarray(built.length - 4).toString('hex'), '02000001');
    const parsed = parseBindResponse(decodeResponse(built));
    assert.equal(parsed.https, true);
    assert.equal(parsed.udp, false);
    assert.equal(parseBindResponse(decodeResponse(EX_9_3)).https, undefined);
  });

  test('9.4 CONNECT decodes and the builder reproduces it', () => {
    assert.deepEqual(parseRequest(decodeRequest(EX_9_4)), {
      cmd: CMD_CONNECT,
      udpFlag: false,
      network: 'tcp',
      srcAddr: '127.0.0.1:50000',
      dstAddr: 'ssh.srv-2.local:0',
      tunnelId: TID_VISITOR,
    });
    const built = buildConnectRequest({ srcAddr: '127.0.0.1:50000', dstAddr: 'ssh.srv-2.local:0', tunnelId: TID_VISITOR, udp: false });
    assert.deepEqual(built, EX_9_4);
  });

  test('9.4 UDP variant', () => {
    const built = buildConnectRequest({ srcAddr: '127.0.0.1:50001', dstAddr: 'dns.srv-2.local:0', tunnelId: TID_VISITOR, udp: true });
    assert.deepEqual(built, EX_9_4_UDP);
    assert.equal(parseRequest(decodeRequest(EX_9_4_UDP)).network, 'udp');
  });

  test('CONNECT builder drops flag and weight of the configured id', () => {
    const built = buildConnectRequest({
      srcAddr: '127.0.0.1:50000',
      dstAddr: 'ssh.srv-2.local:0',
      tunnelId: makeTunnelId(TID_VISITOR.uuid, 0x80, 9),
      udp: false,
    });
    assert.deepEqual(built, EX_9_4);
  });

  test('9.5 status responses', () => {
    const table: Array<[number, string]> = [
      [STATUS_OK, '01000000'],
      [STATUS_HOST_UNREACHABLE, '01060000'],
      [STATUS_NETWORK_UNREACHABLE, '01070000'],
      [STATUS_SERVICE_UNAVAILABLE, '01050000'],
      [STATUS_UNAUTHORIZED, '01020000'],
      [STATUS_BAD_REQUEST, '01010000'],
    ];
    for (const [status, want] of table) {
      assert.equal(statusResponse(status).toString('hex'), want);
      assert.deepEqual(decodeResponse(h(want)), { status, features: [] });
    }
  });
});

describe('status constants', () => {
  test("have gost's values (spec/protocol.md §1.2)", () => {
    assert.equal(STATUS_OK, 0);
    assert.deepEqual(
      [STATUS_BAD_REQUEST, STATUS_UNAUTHORIZED, STATUS_FORBIDDEN, STATUS_TIMEOUT, STATUS_SERVICE_UNAVAILABLE],
      [1, 2, 3, 4, 5],
    );
    assert.deepEqual([STATUS_HOST_UNREACHABLE, STATUS_NETWORK_UNREACHABLE, STATUS_INTERNAL_SERVER_ERROR], [6, 7, 8]);
  });
});

describe('round trips', () => {
  const requests: Array<[string, RelayRequest]> = [
    ['no features', { cmd: CMD_CONNECT, flags: 0, features: [] }],
    ['associate with udp flag', { cmd: CMD_ASSOCIATE, flags: FLAG_UDP, features: [] }],
    ['command 15 with flags 0x70', { cmd: 15, flags: 0x70, features: [] }],
    [
      'every feature',
      {
        cmd: CMD_BIND,
        flags: FLAG_UDP,
        features: [
          { kind: 'network', network: 1 },
          { kind: 'userAuth', username: 'ü', password: '' },
          { kind: 'addr', atyp: 4, host: 'fe80::1', port: 65535 },
          { kind: 'addr', atyp: 3, host: 'x'.repeat(255), port: 1 },
          { kind: 'tunnel', id: makeTunnelId(TID.uuid, 0x80, 3) },
        ],
      },
    ],
    ['repeated features', { cmd: 1, flags: 0, features: [{ kind: 'network', network: 0 }, { kind: 'network', network: 0x11 }] }],
  ];
  for (const [name, req] of requests) {
    test(`request: ${name}`, () => {
      const bytes = encodeRequest(req);
      assert.equal(messageLength(bytes), bytes.length);
      assert.deepEqual(decodeRequest(bytes), req);
    });
  }

  const responses: Array<[string, RelayResponse]> = [
    ['status only', { status: STATUS_INTERNAL_SERVER_ERROR, features: [] }],
    ['status 255', { status: 255, features: [] }],
    [
      'stream header shape',
      {
        status: 0,
        features: [
          { kind: 'addr', atyp: 1, host: '203.0.113.7', port: 0 },
          { kind: 'addr', atyp: 3, host: 'example.com', port: 80 },
        ],
      },
    ],
  ];
  for (const [name, resp] of responses) {
    test(`response: ${name}`, () => {
      assert.deepEqual(decodeResponse(encodeResponse(resp)), resp);
    });
  }

  test('encoders refuse bad command, flags and status values', () => {
    assert.throws(() => encodeRequest({ cmd: 16 }), RangeError);
    assert.throws(() => encodeRequest({ cmd: 1, flags: 0x01 }), RangeError);
    assert.throws(() => encodeResponse({ status: 256 }), RangeError);
    assert.throws(() => encodeRequest({ cmd: 1, features: [{ kind: 'unknown', code: 5, data: Buffer.alloc(1) }] }), isProtocolError('bad_feature'));
  });
});

describe('decode errors', () => {
  for (const [name, msg, decode] of [
    ['9.4 request', EX_9_4, decodeRequest],
    ['9.3 response', EX_9_3, decodeResponse],
  ] as const) {
    test(`${name} truncated at every length is 'truncated'`, () => {
      for (let n = 0; n < msg.length; n++) {
        assert.throws(() => decode(msg.subarray(0, n)), isProtocolError('truncated'), `length ${n}`);
      }
    });
  }

  test('trailing bytes after a complete message are refused', () => {
    assert.throws(() => decodeRequest(Buffer.concat([EX_9_4, h('00')])), isProtocolError('bad_length'));
  });

  for (const v of [0x00, 0x02, 0x05, 0x16, 0x47, 0xff]) {
    test(`version 0x${v.toString(16)} is 'bad_version', even with one byte`, () => {
      assert.throws(() => decodeRequest(Buffer.from([v])), isProtocolError('bad_version'));
      assert.throws(() => messageLength(Buffer.from([v])), isProtocolError('bad_version'));
      const full = Buffer.from(EX_9_4);
      full[0] = v;
      assert.throws(() => decodeRequest(full), isProtocolError('bad_version'));
    });
  }

  test('bad atyp fails the whole message', () => {
    assert.throws(() => decodeRequest(h('01 01 0009 02 0006 07 00000000 00')), isProtocolError('bad_address'));
  });

  test('a feature running past FEALEN fails', () => {
    assert.throws(() => decodeRequest(h('01 01 0005 04 0003 0001')), isProtocolError('bad_feature'));
  });

  test('FEALEN past the end of the buffer is truncated', () => {
    assert.throws(() => decodeResponse(h('01 00 ffff 04 0002 0001')), isProtocolError('truncated'));
  });

  test('an unknown feature is skipped, the rest still decodes', () => {
    const req = decodeRequest(h('01 01 000e 05 0003 616263 04 0002 0001 09 0000'));
    assert.deepEqual(parseRequest(req), { cmd: 1, udpFlag: false, network: 'udp' });
    assert.deepEqual(
      req.features.map((f) => f.kind),
      ['unknown', 'network', 'unknown'],
    );
  });
});

describe('parseRequest (protocol.md §1.5)', () => {
  test('first Addr is src, every later Addr overwrites dst, last tunnel/auth/network win', () => {
    const req: RelayRequest = {
      cmd: CMD_CONNECT,
      flags: 0,
      features: [
        { kind: 'addr', host: '10.0.0.1', port: 1 },
        { kind: 'userAuth', username: 'a', password: 'b' },
        { kind: 'addr', host: 'first.example', port: 2 },
        { kind: 'network', network: 1 },
        { kind: 'addr', host: '::1', port: 3 },
        { kind: 'tunnel', id: TID },
        { kind: 'userAuth', username: 'c', password: 'd' },
        { kind: 'tunnel', id: TID_VISITOR },
        { kind: 'network', network: 0x99 },
      ],
    };
    const p = parseRequest(decodeRequest(encodeRequest(req)));
    assert.equal(p.srcAddr, '10.0.0.1:1');
    assert.equal(p.dstAddr, '[::1]:3');
    assert.equal(p.username, 'c');
    assert.equal(p.password, 'd');
    assert.equal(tunnelIdToString(p.tunnelId!), tunnelIdToString(TID_VISITOR));
    assert.equal(p.network, 'tcp', 'unknown network value reads as tcp');
  });

  test('network names', () => {
    assert.deepEqual([0, 1, 2, 0x10, 0x11, 3, 0xffff].map(networkName), ['tcp', 'udp', 'ip', 'unix', 'serial', 'tcp', 'tcp']);
  });

  test('udp flag without a network feature is still tcp (the server ignores the flag)', () => {
    const p = parseRequest(decodeRequest(h('01 81 0000')));
    assert.equal(p.udpFlag, true);
    assert.equal(p.network, 'tcp');
  });

  test('bind builder weight: ≤ 0 sends 0, 256 truncates to 0 like gost', () => {
    for (const [weight, want] of [
      [0, 0],
      [-5, 0],
      [1, 1],
      [255, 255],
      [256, 0],
      [257, 1],
    ] as const) {
      const p = parseRequest(decodeRequest(buildBindRequest({ srcAddr: '1.2.3.4:5', bindAddr: ':0', tunnelId: TID, weight, udp: false })));
      assert.equal(p.tunnelId?.weight, want, `weight ${weight}`);
    }
  });

  test('bind builder keeps custom names and ports', () => {
    const p = parseRequest(
      decodeRequest(buildBindRequest({ srcAddr: '1.2.3.4:5', bindAddr: 'dash:8081', tunnelId: TID, udp: false })),
    );
    assert.equal(p.dstAddr, 'dash:8081');
    const q = parseRequest(decodeRequest(buildBindRequest({ srcAddr: '1.2.3.4:5', bindAddr: ':8080', tunnelId: TID, udp: false })));
    assert.equal(q.dstAddr, ':8080');
  });

  test('connect builder direct mode target ":0"', () => {
    const b = buildConnectRequest({ srcAddr: '127.0.0.1:1', dstAddr: ':0', tunnelId: TID, udp: false });
    assert.ok(b.includes(h('02 0004 03 00 0000')));
  });
});
