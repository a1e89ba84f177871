import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ProtocolError } from '../../../../src/core/errors';
import { FrameDecoder, decodeFrames, type DecodedFrame } from '../../../../src/protocol/smux/decoder';
import {
  CMD_FIN,
  CMD_NOP,
  CMD_PSH,
  CMD_SYN,
  CMD_UPD,
  cmdName,
  encodeFrame,
  encodeHeader,
  encodeUpdFrame,
} from '../../../../src/protocol/smux/frame';

interface Case {
  cmd: number;
  sid: number;
  data: Buffer;
}

/** Every command, empty and non-empty PSH, and a maximum-size PSH. */
function sampleFrames(version: number): { cases: Case[]; bytes: Buffer } {
  const cases: Case[] = [
    { cmd: CMD_SYN, sid: 3, data: Buffer.alloc(0) },
    { cmd: CMD_PSH, sid: 3, data: Buffer.from('hello') },
    { cmd: CMD_UPD, sid: 3, data: encodeUpdFrame(version, 3, 5, 1048576).subarray(8) },
    { cmd: CMD_NOP, sid: 0, data: Buffer.alloc(0) },
    { cmd: CMD_PSH, sid: 0xfffffffe, data: Buffer.alloc(0) },
    { cmd: CMD_PSH, sid: 5, data: randomBytes(65535) },
    { cmd: CMD_PSH, sid: 5, data: randomBytes(1) },
    { cmd: CMD_FIN, sid: 3, data: Buffer.alloc(0) },
  ];
  const bytes = Buffer.concat(cases.map((c) => encodeFrame(version, c.cmd, c.sid, c.data.length ? c.data : undefined)));
  return { cases, bytes };
}

function simplify(frames: DecodedFrame[]): Case[] {
  return frames.map((f) => ({ cmd: f.cmd, sid: f.sid, data: Buffer.from(f.data) }));
}

function decodeChunks(version: number, chunks: Buffer[]): Case[] {
  const { frames, rest } = decodeFrames(version, chunks);
  assert.equal(rest, 0);
  return simplify(frames);
}

function randomSplit(buf: Buffer, maxPiece: number): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  while (off < buf.length) {
    const n = 1 + Math.floor(Math.random() * maxPiece);
    out.push(buf.subarray(off, off + n));
    off += n;
  }
  return out;
}

describe('smux FrameDecoder', () => {
  for (const version of [1, 2]) {
    const { cases, bytes } = sampleFrames(version);

    test(`v${version}: decodes a whole buffer`, () => {
      assert.deepEqual(decodeChunks(version, [bytes]), cases);
    });

    test(`v${version}: decodes frame by frame`, () => {
      const chunks = cases.map((c) => encodeFrame(version, c.cmd, c.sid, c.data.length ? c.data : undefined));
      assert.deepEqual(decodeChunks(version, chunks), cases);
    });

    test(`v${version}: decodes with the input split at every byte position`, () => {
      // The 64 KiB frame makes every split point costly; check the small frames exhaustively
      // and the big one at its boundaries.
      const small = bytes.subarray(0, 8 + 8 + 5 + 8 + 8 + 8 + 8);
      const smallCases = cases.slice(0, 5);
      for (let i = 0; i <= small.length; i++) {
        assert.deepEqual(decodeChunks(version, [small.subarray(0, i), small.subarray(i)]), smallCases, `split at ${i}`);
      }
      const bigStart = small.length;
      for (const i of [bigStart, bigStart + 1, bigStart + 7, bigStart + 8, bigStart + 9, bigStart + 8 + 65534, bigStart + 8 + 65535]) {
        assert.deepEqual(decodeChunks(version, [bytes.subarray(0, i), bytes.subarray(i)]), cases, `split at ${i}`);
      }
    });

    test(`v${version}: decodes one byte at a time`, () => {
      const chunks: Buffer[] = [];
      for (let i = 0; i < bytes.length; i++) chunks.push(bytes.subarray(i, i + 1));
      assert.deepEqual(decodeChunks(version, chunks), cases);
    });

    test(`v${version}: decodes random splits`, () => {
      for (let round = 0; round < 50; round++) {
        assert.deepEqual(decodeChunks(version, randomSplit(bytes, round % 2 ? 17 : 70_000)), cases);
      }
    });
  }

  test('hands out payloads inside one chunk without copying', () => {
    const chunk = Buffer.concat([encodeFrame(2, CMD_PSH, 1, Buffer.from('abc')), encodeFrame(2, CMD_PSH, 1, Buffer.from('de'))]);
    const seen: Buffer[] = [];
    new FrameDecoder(2, (_c, _s, d) => seen.push(d)).push(chunk);
    assert.equal(seen.length, 2);
    for (const d of seen) assert.equal(d.buffer, chunk.buffer);
    assert.equal(seen[0]!.byteOffset, chunk.byteOffset + 8);
  });

  test('with splitPayloads, hands out PSH data piece by piece as it arrives, without copying', () => {
    const payload = randomBytes(1000);
    const bytes = Buffer.concat([encodeFrame(2, CMD_PSH, 9, payload), encodeFrame(2, CMD_UPD, 9, Buffer.alloc(8, 1))]);
    for (const cut of [3, 8, 9, 500, 1007, 1008, 1010]) {
      const pieces: Buffer[] = [];
      const chunks = [bytes.subarray(0, cut), bytes.subarray(cut, cut + 300), bytes.subarray(cut + 300)];
      const seen: number[] = [];
      const dec = new FrameDecoder(
        2,
        (cmd, sid, data) => {
          seen.push(cmd);
          if (cmd === CMD_PSH) {
            assert.equal(sid, 9);
            assert.ok(chunks.some((c) => c.buffer === data.buffer), 'a view of an input chunk');
            pieces.push(data);
          }
        },
        { splitPayloads: true },
      );
      for (const c of chunks) dec.push(c);
      assert.ok(Buffer.concat(pieces).equals(payload), `cut at ${cut}`);
      assert.equal(seen.at(-1), CMD_UPD);
      assert.equal(dec.frames, 2);
    }
  });

  test('splitPayloads still joins UPD data split across chunks', () => {
    const upd = encodeUpdFrame(2, 3, 7, 1048576);
    const got: Buffer[] = [];
    const dec = new FrameDecoder(2, (_c, _s, d) => got.push(d), { splitPayloads: true });
    dec.push(upd.subarray(0, 11));
    dec.push(upd.subarray(11));
    assert.equal(got.length, 1);
    assert.equal(got[0]!.toString('hex'), upd.subarray(8).toString('hex'));
  });

  test('joins a payload split across chunks', () => {
    const frame = encodeFrame(2, CMD_PSH, 1, Buffer.from('abcdef'));
    const { frames } = decodeFrames(2, [frame.subarray(0, 10), frame.subarray(10, 12), frame.subarray(12)]);
    assert.equal(frames.length, 1);
    assert.equal(frames[0]!.data.toString(), 'abcdef');
  });

  test('reports the bytes of an incomplete frame', () => {
    const frame = encodeFrame(2, CMD_PSH, 1, Buffer.from('abcdef'));
    const dec = new FrameDecoder(2, () => {});
    dec.push(frame.subarray(0, 5));
    assert.equal(dec.pendingBytes, 5);
    assert.equal(dec.idle, false);
    dec.push(frame.subarray(5, 10));
    assert.equal(dec.pendingBytes, 10);
    dec.push(frame.subarray(10));
    assert.equal(dec.pendingBytes, 0);
    assert.equal(dec.idle, true);
    assert.equal(dec.frames, 1);
  });

  test('stops when halted by its handler', () => {
    const bytes = Buffer.concat([encodeFrame(2, CMD_NOP, 0), encodeFrame(2, CMD_SYN, 3), encodeFrame(2, CMD_SYN, 5)]);
    const seen: number[] = [];
    const dec: FrameDecoder = new FrameDecoder(2, (cmd) => {
      seen.push(cmd);
      if (cmd === CMD_SYN) dec.halt();
    });
    dec.push(bytes);
    dec.push(bytes);
    assert.deepEqual(seen, [CMD_NOP, CMD_SYN]);
    assert.equal(dec.halted, true);
  });

  const isKind = (kind: string) => (e: unknown) => e instanceof ProtocolError && e.kind === kind;

  test('rejects a frame of the other version', () => {
    assert.throws(() => decodeFrames(2, encodeFrame(1, CMD_NOP, 0)), isKind('bad_version'));
    assert.throws(() => decodeFrames(1, encodeFrame(2, CMD_NOP, 0)), isKind('bad_version'));
    assert.throws(() => decodeFrames(2, Buffer.from([0x00, 0, 0, 0, 0, 0, 0, 0])), isKind('bad_version'));
  });

  test('rejects unknown commands, whatever the length says', () => {
    for (const cmd of [5, 0x7f, 0xff]) {
      assert.throws(() => decodeFrames(2, encodeHeader({ version: 2, cmd, length: 0xffff, sid: 1 })), isKind('bad_command'));
    }
  });

  test('checks version, then command, before the length, even split byte by byte', () => {
    const bad = encodeHeader({ version: 3, cmd: 9, length: 0xffff, sid: 1 });
    const dec = new FrameDecoder(2, () => assert.fail('no frame expected'));
    for (let i = 0; i < 7; i++) dec.push(bad.subarray(i, i + 1));
    assert.throws(() => dec.push(bad.subarray(7)), isKind('bad_version'));
  });

  for (const [cmd, length] of [
    [CMD_SYN, 1],
    [CMD_FIN, 8],
    [CMD_NOP, 0xffff],
    [CMD_UPD, 0],
    [CMD_UPD, 7],
    [CMD_UPD, 9],
  ] as const) {
    test(`rejects ${cmdName(cmd)} with length ${length}`, () => {
      const bytes = Buffer.concat([encodeHeader({ version: 2, cmd, length, sid: 1 }), Buffer.alloc(length)]);
      assert.throws(() => decodeFrames(2, bytes), isKind('bad_length'));
    });
  }

  test('halts after an error, keeps it as `failure` and ignores later input', () => {
    const seen: number[] = [];
    const dec = new FrameDecoder(2, (cmd) => seen.push(cmd));
    assert.equal(dec.failure, undefined);
    assert.throws(
      () => dec.push(Buffer.concat([encodeFrame(2, CMD_NOP, 0), encodeFrame(1, CMD_NOP, 0)])),
      (e: unknown) => e === dec.failure,
    );
    dec.push(encodeFrame(2, CMD_NOP, 0));
    assert.deepEqual(seen, [CMD_NOP]);
    assert.equal(dec.halted, true);
  });
});
