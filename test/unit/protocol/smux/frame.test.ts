import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ProtocolError } from '../../../../src/core/errors';
import {
  CMD_FIN,
  CMD_NOP,
  CMD_PSH,
  CMD_SYN,
  CMD_UPD,
  HEADER_SIZE,
  cmdName,
  decodeHeader,
  decodeWindowUpdate,
  encodeFrame,
  encodeHeader,
  encodeUpdFrame,
  encodeWindowUpdate,
  type FrameHeader,
} from '../../../../src/protocol/smux/frame';

describe('smux frame constants', () => {
  test('match spec/protocol.md §5.2', () => {
    assert.deepEqual([CMD_SYN, CMD_FIN, CMD_PSH, CMD_NOP, CMD_UPD], [0, 1, 2, 3, 4]);
    assert.equal(HEADER_SIZE, 8);
    assert.deepEqual([0, 1, 2, 3, 4, 9].map(cmdName), ['SYN', 'FIN', 'PSH', 'NOP', 'UPD', 'CMD(0x09)']);
  });
});

describe('smux header encoding', () => {
  const headers: FrameHeader[] = [];
  for (const version of [1, 2]) {
    for (const cmd of [CMD_SYN, CMD_FIN, CMD_PSH, CMD_NOP, CMD_UPD]) {
      for (const sid of [0, 1, 3, 0x100, 0x7fffffff, 0xffffffff]) {
        for (const length of cmd === CMD_PSH ? [0, 1, 255, 256, 32768, 65535] : cmd === CMD_UPD ? [8] : [0]) {
          headers.push({ version, cmd, length, sid });
        }
      }
    }
  }
  for (const h of headers) {
    test(`round trips v${h.version} ${cmdName(h.cmd)} sid=${h.sid} len=${h.length}`, () => {
      const buf = encodeHeader(h);
      assert.equal(buf.length, HEADER_SIZE);
      assert.deepEqual(decodeHeader(buf), h);
      assert.deepEqual(decodeHeader(buf, 0, h.version), h);
    });
  }

  test('lays out fields little-endian as the capture shows', () => {
    // "smux v2 PSH sid=3 len=36  [0202240003000000]" (tcp-visitor capture)
    assert.equal(encodeHeader({ version: 2, cmd: CMD_PSH, length: 36, sid: 3 }).toString('hex'), '0202240003000000');
    assert.equal(encodeHeader({ version: 2, cmd: CMD_PSH, length: 0x1234, sid: 0x01020304 }).toString('hex'), '0202341204030201');
    assert.equal(encodeFrame(2, CMD_SYN, 3).toString('hex'), '0200000003000000');
    assert.equal(encodeFrame(1, CMD_NOP, 0).toString('hex'), '0103000000000000');
  });

  test('decodes at an offset', () => {
    const buf = Buffer.concat([Buffer.from('ffff', 'hex'), encodeFrame(2, CMD_FIN, 5)]);
    assert.deepEqual(decodeHeader(buf, 2), { version: 2, cmd: CMD_FIN, length: 0, sid: 5 });
  });

  test('encodes a whole PSH frame', () => {
    const f = encodeFrame(2, CMD_PSH, 7, Buffer.from('hello'));
    assert.equal(f.toString('hex'), '02020500070000006865' + '6c6c6f');
  });

  test('refuses lengths that do not fit the u16 field', () => {
    assert.throws(() => encodeHeader({ version: 2, cmd: CMD_PSH, length: 65536, sid: 1 }), RangeError);
    assert.throws(() => encodeFrame(2, CMD_PSH, 1, Buffer.alloc(65536)), RangeError);
  });
});

describe('smux header validation', () => {
  test('rejects a short buffer as truncated', () => {
    assert.throws(() => decodeHeader(Buffer.alloc(7)), (e: unknown) => e instanceof ProtocolError && e.kind === 'truncated');
  });

  test('rejects versions other than 1 and 2, and a version other than the expected one', () => {
    for (const v of [0, 3, 0xff]) {
      const buf = encodeHeader({ version: v, cmd: CMD_NOP, length: 0, sid: 0 });
      assert.throws(() => decodeHeader(buf), (e: unknown) => e instanceof ProtocolError && e.kind === 'bad_version');
    }
    const v1 = encodeFrame(1, CMD_NOP, 0);
    assert.throws(() => decodeHeader(v1, 0, 2), (e: unknown) => e instanceof ProtocolError && e.kind === 'bad_version');
  });

  test('rejects unknown commands', () => {
    for (const cmd of [5, 6, 0x80, 0xff]) {
      const buf = encodeHeader({ version: 2, cmd, length: 0, sid: 1 });
      assert.throws(() => decodeHeader(buf), (e: unknown) => e instanceof ProtocolError && e.kind === 'bad_command');
    }
  });

  test('checks the version before the command', () => {
    const buf = encodeHeader({ version: 9, cmd: 9, length: 0, sid: 1 });
    assert.throws(() => decodeHeader(buf), (e: unknown) => e instanceof ProtocolError && e.kind === 'bad_version');
  });
});

describe('smux UPD data', () => {
  test('round trips, wrapping u32 values', () => {
    for (const u of [
      { consumed: 0, window: 0 },
      { consumed: 4, window: 1048576 },
      { consumed: 0xffffffff, window: 0x7fffffff },
    ]) {
      assert.deepEqual(decodeWindowUpdate(encodeWindowUpdate(u)), u);
    }
  });

  test('encodes the UPD frame of the capture', () => {
    // "smux v2 UPD sid=3 len=8  [0204080003000000] consumed=4 window=1048576"
    assert.equal(encodeUpdFrame(2, 3, 4, 1048576).toString('hex'), '0204080003000000' + '04000000' + '00001000');
  });

  test('rejects data that is not 8 bytes', () => {
    for (const n of [0, 7, 9]) {
      assert.throws(() => decodeWindowUpdate(Buffer.alloc(n)), (e: unknown) => e instanceof ProtocolError && e.kind === 'bad_length');
    }
  });
});
