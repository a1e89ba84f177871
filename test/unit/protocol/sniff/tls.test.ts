import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { ProtocolError, type ProtocolErrorKind } from '../../../../src/core/errors';
import { isTlsHandshakeStart, parseClientHelloSni, type ClientHelloResult } from '../../../../src/protocol/sniff/tls';

function isProtocolError(kind: ProtocolErrorKind) {
  return (err: unknown): boolean => err instanceof ProtocolError && err.kind === kind;
}

/**
 * Starts a TLS handshake from Node's own client against a plain TCP server on 127.0.0.1 and
 * returns the first TLS record the client sent (its ClientHello), exactly as on the wire.
 */
async function captureClientHello(servername: string | undefined): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as net.AddressInfo;
    const got = new Promise<Buffer>((resolve, reject) => {
      server.once('connection', (sock) => {
        let buf = Buffer.alloc(0);
        sock.on('data', (d: Buffer) => {
          buf = Buffer.concat([buf, d]);
          if (buf.length >= 5 && buf.length >= 5 + buf.readUInt16BE(3)) {
            resolve(buf.subarray(0, 5 + buf.readUInt16BE(3)));
            sock.destroy();
          }
        });
        sock.on('error', reject);
      });
    });
    const client = tls.connect({ host: '127.0.0.1', port, ...(servername ? { servername } : {}), rejectUnauthorized: false });
    client.on('error', () => {
      /* the server hangs up mid-handshake */
    });
    try {
      return await got;
    } finally {
      client.destroy();
    }
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** Re-frames the handshake bytes of a one-record ClientHello into records of `size` bytes. */
function fragment(record: Buffer, size: number): Buffer {
  const hs = record.subarray(5);
  const out: Buffer[] = [];
  for (let i = 0; i < hs.length; i += size) {
    const part = hs.subarray(i, i + size);
    const hdr = Buffer.from([0x16, record[1]!, record[2]!, 0, 0]);
    hdr.writeUInt16BE(part.length, 3);
    out.push(hdr, part);
  }
  return Buffer.concat(out);
}

/** Builds a ClientHello record around the given extensions block (undefined = none at all). */
function syntheticHello(extensions: Buffer | undefined, opts: { sessionId?: number; suites?: Buffer; comp?: Buffer } = {}): Buffer {
  const sid = Buffer.alloc(opts.sessionId ?? 32, 0x11);
  const body = Buffer.concat([
    Buffer.from([0x03, 0x03]),
    Buffer.alloc(32, 0x22),
    Buffer.from([sid.length]),
    sid,
    opts.suites ?? Buffer.from([0x00, 0x02, 0x13, 0x01]),
    opts.comp ?? Buffer.from([0x01, 0x00]),
    ...(extensions ? [u16(extensions.length), extensions] : []),
  ]);
  const hs = Buffer.concat([Buffer.from([0x01, 0, 0, 0]), body]);
  hs.writeUIntBE(body.length, 1, 3);
  return Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), u16(hs.length), hs]);
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function ext(type: number, data: Buffer): Buffer {
  return Buffer.concat([u16(type), u16(data.length), data]);
}

function sniExt(...names: Array<[number, string]>): Buffer {
  const list = Buffer.concat(names.map(([t, n]) => Buffer.concat([Buffer.from([t]), u16(Buffer.byteLength(n)), Buffer.from(n)])));
  return ext(0, Buffer.concat([u16(list.length), list]));
}

function complete(r: ClientHelloResult): Extract<ClientHelloResult, { complete: true }> {
  assert.equal(r.complete, true);
  return r as Extract<ClientHelloResult, { complete: true }>;
}

describe('parseClientHelloSni on a real Node ClientHello', () => {
  let hello: Buffer;
  let helloNoSni: Buffer;
  before(async () => {
    hello = await captureClientHello('www.example.com');
    helloNoSni = await captureClientHello(undefined);
  });

  test('extracts www.example.com and the record end', () => {
    assert.equal(isTlsHandshakeStart(hello), true);
    const r = complete(parseClientHelloSni(hello));
    assert.equal(r.sni, 'www.example.com');
    assert.equal(r.recordEnd, hello.length);
  });

  test('no SNI when connecting to an IP literal without servername', () => {
    assert.equal(complete(parseClientHelloSni(helloNoSni)).sni, undefined);
  });

  test('bytes after the record are not consumed', () => {
    const r = complete(parseClientHelloSni(Buffer.concat([hello, Buffer.from('trailing application bytes')])));
    assert.equal(r.recordEnd, hello.length);
  });

  test('every prefix is incomplete, and `needed` never overshoots', () => {
    for (let n = 0; n < hello.length; n++) {
      const r = parseClientHelloSni(hello.subarray(0, n));
      assert.equal(r.complete, false, `prefix ${n}`);
      if (!r.complete) {
        assert.ok(r.needed >= 1 && n + r.needed <= hello.length, `prefix ${n}: needed ${r.needed}`);
      }
    }
  });

  test('split at every byte: the two halves put together parse the same', () => {
    for (let i = 1; i < hello.length; i++) {
      const first = parseClientHelloSni(hello.subarray(0, i));
      assert.equal(first.complete, false);
      const joined = Buffer.concat([hello.subarray(0, i), hello.subarray(i)]);
      assert.equal(complete(parseClientHelloSni(joined)).sni, 'www.example.com');
    }
  });

  for (const size of [1, 7, 100, 512]) {
    test(`a ClientHello fragmented into ${size}-byte handshake records still yields the SNI`, () => {
      const frag = fragment(hello, size);
      const r = complete(parseClientHelloSni(frag));
      assert.equal(r.sni, 'www.example.com');
      assert.equal(r.recordEnd, frag.length);
      for (let n = 0; n < frag.length; n += Math.max(1, Math.floor(frag.length / 97))) {
        assert.equal(parseClientHelloSni(frag.subarray(0, n)).complete, false, `prefix ${n}`);
      }
    });
  }

  test('a non-handshake record in the middle of a fragmented ClientHello is rejected', () => {
    const frag = fragment(hello, 100);
    const bad = Buffer.from(frag);
    bad[105] = 0x17; // second record's content type
    assert.throws(() => parseClientHelloSni(bad), isProtocolError('bad_header'));
  });

  test('a limit below the ClientHello size is too_large', () => {
    assert.throws(() => parseClientHelloSni(hello, { maxClientHelloBytes: 100 }), isProtocolError('too_large'));
  });
});

describe('isTlsHandshakeStart', () => {
  const table: Array<[number[], boolean | undefined]> = [
    [[], undefined],
    [[0x16], undefined],
    [[0x16, 0x03], undefined],
    [[0x16, 0x03, 0x01], true],
    [[0x16, 0x03, 0x03], true],
    [[0x16, 0x03, 0x04], true],
    [[0x16, 0x03, 0x00], false],
    [[0x16, 0x03, 0x05], false],
    [[0x16, 0x02], false],
    [[0x17, 0x03, 0x03], false],
    [[0x01, 0x01, 0x00], false],
    [[0x47, 0x45, 0x54], false],
  ];
  for (const [bytes, want] of table) {
    test(`${Buffer.from(bytes).toString('hex') || '(empty)'} → ${want}`, () => {
      assert.equal(isTlsHandshakeStart(Buffer.from(bytes)), want);
    });
  }
});

describe('parseClientHelloSni on synthetic ClientHellos', () => {
  test('SNI among other extensions', () => {
    const exts = Buffer.concat([ext(0x0017, Buffer.alloc(0)), sniExt([0, 'api.example.org']), ext(0x002b, Buffer.from([2, 3, 4]))]);
    assert.equal(complete(parseClientHelloSni(syntheticHello(exts))).sni, 'api.example.org');
  });

  test('no extensions block at all', () => {
    assert.equal(complete(parseClientHelloSni(syntheticHello(undefined))).sni, undefined);
  });

  test('empty extensions block', () => {
    assert.equal(complete(parseClientHelloSni(syntheticHello(Buffer.alloc(0)))).sni, undefined);
  });

  test('non-host_name entries are skipped', () => {
    assert.equal(complete(parseClientHelloSni(syntheticHello(sniExt([7, 'zzz'], [0, 'b.example'])))).sni, 'b.example');
  });

  test('SNI is returned verbatim (no case folding, trailing dot kept)', () => {
    assert.equal(complete(parseClientHelloSni(syntheticHello(sniExt([0, 'WWW.Example.COM.'])))).sni, 'WWW.Example.COM.');
  });

  test('empty server_name extension reads as no SNI', () => {
    assert.equal(complete(parseClientHelloSni(syntheticHello(ext(0, Buffer.alloc(0))))).sni, undefined);
  });

  const malformed: Array<[string, () => Buffer, ProtocolErrorKind]> = [
    ['an alert record', () => Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]), 'bad_header'],
    ['record version 2.x', () => Buffer.from([0x16, 0x02, 0x00, 0x00, 0x04, 1, 0, 0, 0]), 'bad_header'],
    ['a ServerHello instead', () => Buffer.from([0x16, 0x03, 0x03, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00]), 'bad_header'],
    ['an empty record', () => Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00]), 'bad_length'],
    ['a record over 16384 bytes', () => Buffer.from([0x16, 0x03, 0x01, 0x40, 0x01]), 'too_large'],
    ['a zero-length ClientHello', () => Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00]), 'bad_length'],
    ['session id over 32 bytes', () => syntheticHello(undefined, { sessionId: 33 }), 'bad_length'],
    ['odd cipher suites length', () => syntheticHello(undefined, { suites: Buffer.from([0x00, 0x03, 1, 2, 3]) }), 'bad_length'],
    ['no cipher suites', () => syntheticHello(undefined, { suites: Buffer.from([0x00, 0x00]) }), 'bad_length'],
    ['no compression methods', () => syntheticHello(undefined, { comp: Buffer.from([0x00]) }), 'bad_length'],
    ['duplicate extensions', () => syntheticHello(Buffer.concat([ext(5, Buffer.alloc(0)), ext(5, Buffer.alloc(0))])), 'bad_header'],
    ['two server_name extensions', () => syntheticHello(Buffer.concat([sniExt([0, 'a']), sniExt([0, 'b'])])), 'bad_header'],
    ['two host_names', () => syntheticHello(sniExt([0, 'a'], [0, 'b'])), 'bad_header'],
    ['empty host_name', () => syntheticHello(sniExt([0, ''])), 'bad_length'],
    ['host_name with a space', () => syntheticHello(sniExt([0, 'a b'])), 'bad_header'],
    ['host_name with a NUL', () => syntheticHello(sniExt([0, 'a\u0000b'])), 'bad_header'],
    ['extension longer than the block', () => syntheticHello(Buffer.from([0x00, 0x00, 0x00, 0x05, 0x00])), 'bad_length'],
    ['server_name list length mismatch', () => syntheticHello(ext(0, Buffer.from([0x00, 0x09, 0x00, 0x00, 0x01, 0x61]))), 'bad_length'],
    [
      'extensions length not matching the rest of the ClientHello',
      () => {
        const h = syntheticHello(sniExt([0, 'a.example']));
        const extLenAt = 5 + 4 + 2 + 32 + 1 + 32 + 4 + 2;
        h.writeUInt16BE(h.readUInt16BE(extLenAt) - 1, extLenAt);
        return h;
      },
      'bad_length',
    ],
  ];
  for (const [name, make, kind] of malformed) {
    test(`rejects ${name} (${kind})`, () => {
      assert.throws(() => parseClientHelloSni(make()), isProtocolError(kind));
    });
  }

  test('the handshake type is checked as soon as the first body byte arrives', () => {
    assert.throws(() => parseClientHelloSni(Buffer.from([0x16, 0x03, 0x01, 0x01, 0x00, 0x02])), isProtocolError('bad_header'));
  });
});

describe('ALPN in the ClientHello', () => {
  test('the offered protocols, in order, beside the SNI', () => {
    const names = ['h2', 'http/1.1', 'acme-tls/1'];
    const list = Buffer.concat(names.map((n) => Buffer.concat([Buffer.from([n.length]), Buffer.from(n)])));
    const r = parseClientHelloSni(syntheticHello(Buffer.concat([sniExt([0, 'a.test']), ext(0x10, Buffer.concat([u16(list.length), list]))])));
    assert.equal(r.complete, true);
    assert.deepEqual(r.complete && { sni: r.sni, alpn: r.alpn }, { sni: 'a.test', alpn: names });
    const none = parseClientHelloSni(syntheticHello(sniExt([0, 'a.test'])));
    assert.deepEqual(none.complete && none.alpn, []);
  });

  test('a malformed ALPN list counts as none, and the SNI still routes', () => {
    // The SNI routes a passed-through connection whatever its ALPN (as before ALPN was read);
    // a terminating TLS server refuses a bad list itself.
    for (const bad of [Buffer.from([0x00, 0x05, 0x02, 0x68]), Buffer.from([0x00, 0x01, 0x00])]) {
      const r = complete(parseClientHelloSni(syntheticHello(Buffer.concat([ext(0x10, bad), sniExt([0, 'a.example'])]))));
      assert.equal(r.sni, 'a.example');
      assert.deepEqual(r.alpn, []);
    }
  });
});
