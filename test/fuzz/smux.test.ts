/**
 * Arbitrary bytes into the smux decoder and into a live Session: the only outcomes allowed are
 * frames, a ProtocolError, or a clean close. Time-boxed by FUZZ_SECONDS (default 5, split
 * between the properties).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ProtocolError } from '../../src/core/errors';
import { FrameDecoder } from '../../src/protocol/smux/decoder';
import { CMD_PSH, CMD_SYN, CMD_UPD, HEADER_SIZE, writeHeader } from '../../src/protocol/smux/frame';
import { Session } from '../../src/protocol/smux/session';
import type { Stream } from '../../src/protocol/smux/stream';
import { rawPeer, ticks } from '../unit/protocol/smux/duplex-pair';
import { cutAt } from '../helpers/vectors';

const SECONDS = Number(process.env.FUZZ_SECONDS ?? 5);
const noop = (): void => {};

/** Splits `bytes` at the given cut points (taken modulo the length). */
function chunked(bytes: Uint8Array, cuts: number[]): Buffer[] {
  const buf = Buffer.from(bytes);
  if (buf.length === 0) return [buf];
  return cutAt(buf, cuts.map((c) => c % buf.length));
}

/** Frames that are mostly well formed, so the fuzzer gets past the header checks. */
const frameArb = fc
  .record({
    version: fc.oneof({ weight: 10, arbitrary: fc.constant(2) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) }),
    cmd: fc.oneof({ weight: 10, arbitrary: fc.integer({ min: 0, max: 4 }) }, { weight: 1, arbitrary: fc.integer({ min: 5, max: 255 }) }),
    sid: fc.oneof(fc.constantFrom(0, 1, 2, 3, 5, 7), fc.integer({ min: 0, max: 0xffffffff })),
    data: fc.oneof(
      { weight: 4, arbitrary: fc.uint8Array({ maxLength: 64 }) },
      { weight: 1, arbitrary: fc.uint8Array({ minLength: 8, maxLength: 8 }) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 70_000 }).map((n) => new Uint8Array(n)) },
    ),
    honestLength: fc.boolean(),
  })
  .map(({ version, cmd, sid, data, honestLength }) => {
    // SYN/FIN/NOP carry nothing and UPD 8 bytes when honest; otherwise anything goes.
    let payload = Buffer.from(data.subarray(0, 65535));
    if (honestLength && cmd !== CMD_PSH) payload = cmd === CMD_UPD ? Buffer.concat([payload, Buffer.alloc(8)]).subarray(0, 8) : Buffer.alloc(0);
    const h = Buffer.allocUnsafe(HEADER_SIZE);
    writeHeader(h, 0, version, cmd, payload.length, sid);
    return Buffer.concat([h, payload]);
  });

const streamArb = fc.tuple(
  fc.array(frameArb, { maxLength: 30 }),
  fc.uint8Array({ maxLength: 32 }),
  fc.array(fc.nat(), { maxLength: 8 }),
);

describe('smux fuzzing', () => {
  test('FrameDecoder: any bytes, any chunking → frames or ProtocolError', () => {
    const budget = Math.max(200, SECONDS * 400);
    fc.assert(
      fc.property(fc.constantFrom(1, 2), fc.oneof(fc.uint8Array({ maxLength: 2048 }), streamArb.map(([f, junk]) => Buffer.concat([...f, Buffer.from(junk)]))), fc.array(fc.nat(), { maxLength: 16 }), (version, bytes, cuts) => {
          let frames = 0;
          const dec = new FrameDecoder(version, (cmd, _sid, data) => {
            frames++;
            assert.ok(cmd >= 0 && cmd <= 4);
            assert.ok(data.length <= 65535);
          });
          try {
            for (const c of chunked(bytes, cuts)) dec.push(c);
          } catch (err) {
            assert.ok(err instanceof ProtocolError, String(err));
            assert.ok(['bad_version', 'bad_command', 'bad_length'].includes(err.kind));
            assert.equal(dec.halted, true);
          }
          assert.equal(frames, dec.frames);
        }),
      { numRuns: 1_000_000, interruptAfterTimeLimit: budget, markInterruptAsFailure: false },
    );
  });

  test('Session: arbitrary frames from the peer never throw out of the session', async () => {
    const budget = Math.max(500, SECONDS * 600);
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown): void => {
      uncaught.push(e);
    };
    process.on('uncaughtException', onUncaught);
    try {
      await fc.assert(
        fc.asyncProperty(streamArb, fc.boolean(), fc.boolean(), async ([frames, junk, cuts], client, echo) => {
          const p = rawPeer(2);
          const s = new Session(p.conn, {
            client,
            config: { keepAliveDisabled: true, maxReceiveBuffer: 131_072, maxStreamBuffer: 65_536, acceptBacklog: 4, maxStreams: 8 },
          });
          const seen: { closeErr: Error | undefined | null } = { closeErr: null };
          s.on('close', (e?: Error) => (seen.closeErr = e));
          const streams: Stream[] = [];
          s.on('stream', (st) => {
            streams.push(st);
            st.on('error', noop);
            if (echo) st.pipe(st);
            else st.resume();
          });
          // Some streams of our own, so UPD/FIN/PSH for known ids hit real state.
          for (let i = 0; i < 2; i++) {
            const st = s.openStream();
            st.on('error', noop);
            st.resume();
            st.write(Buffer.alloc(300_000));
            if (i === 1) st.end();
          }
          const bytes = Buffer.concat([...frames, Buffer.from(junk)]);
          for (const c of chunked(bytes, cuts)) p.sendRaw(c);
          p.sendRaw(Buffer.from([CMD_SYN])); // a dangling partial header at the end
          await ticks(4);
          if (s.isClosed) {
            const e = seen.closeErr;
            assert.ok(e === null || e === undefined || e instanceof ProtocolError, String(e));
            assert.equal(s.numStreams, 0);
          }
          s.destroy();
          await ticks(2);
          assert.equal(s.isClosed, true);
          assert.equal(s.numStreams, 0);
          assert.ok(streams.every((st) => st.destroyed || st.readableEnded));
          assert.deepEqual(uncaught, []);
        }),
        { numRuns: 1_000_000, interruptAfterTimeLimit: budget, markInterruptAsFailure: false },
      );
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });
});
