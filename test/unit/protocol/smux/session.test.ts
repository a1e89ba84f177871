/**
 * Session state machine against a hand-driven peer over an in-memory pair. Real sockets are
 * in test/integration/smux.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BurrowError, ProtocolError } from '../../../../src/core/errors';
import { Session } from '../../../../src/protocol/smux/session';
import type { Stream } from '../../../../src/protocol/smux/stream';
import { CMD_FIN, CMD_NOP, CMD_PSH, CMD_SYN, CMD_UPD, encodeFrame, encodeHeader } from '../../../../src/protocol/smux/frame';
import type { SmuxConfig } from '../../../../src/protocol/smux/config';
import { rawPeer, tick, ticks, type RawPeer } from './duplex-pair';

function setup(client: boolean, config?: Partial<SmuxConfig>, version = config?.version ?? 2): { s: Session; p: RawPeer } {
  const p = rawPeer(version);
  const s = new Session(p.conn, { client, config: { keepAliveDisabled: true, ...config } });
  return { s, p };
}

const noop = (): void => {};

/** Opens a stream with an 'error' listener: closing the session fails open streams. */
function open(s: Session): Stream {
  return s.openStream().on('error', noop);
}

function closeEvent(s: Session): Promise<Error | undefined> {
  return new Promise((r) => s.once('close', r));
}

function errorOf(stream: Stream): Promise<Error> {
  return new Promise((r) => stream.once('error', r));
}

const summary = (p: RawPeer) => p.frames.map((f) => [f.cmd, f.sid, f.data.length]);

describe('smux Session: stream ids', () => {
  test('the client role opens 3, 5, 7 and writes each SYN at once', async () => {
    const { s, p } = setup(true);
    const ids = [open(s).id, open(s).id, open(s).id];
    assert.deepEqual(ids, [3, 5, 7]);
    await tick();
    assert.deepEqual(summary(p), [
      [CMD_SYN, 3, 0],
      [CMD_SYN, 5, 0],
      [CMD_SYN, 7, 0],
    ]);
    assert.equal(s.numStreams, 3);
    s.close();
  });

  test('the server role opens 2, 4, 6', () => {
    const { s } = setup(false);
    assert.deepEqual([open(s).id, open(s).id, open(s).id], [2, 4, 6]);
    s.close();
  });

  test('skips an id the peer already opened', async () => {
    const { s, p } = setup(true);
    s.on('stream', (st) => st.on('error', noop));
    p.send(CMD_SYN, 3);
    await tick();
    assert.equal(open(s).id, 5);
    s.close();
  });
});

describe('smux Session: receiver rules (spec §5.2)', () => {
  test('a SYN for an existing id is ignored', async () => {
    const { s, p } = setup(false);
    const accepted: number[] = [];
    s.on('stream', (st) => accepted.push(st.on('error', noop).id));
    p.send(CMD_SYN, 3);
    p.send(CMD_SYN, 3);
    p.send(CMD_SYN, 5);
    await tick();
    assert.deepEqual(accepted, [3, 5]);
    assert.equal(s.numStreams, 2);
    s.close();
  });

  test('PSH, UPD and FIN for unknown ids are dropped and the session carries on', async () => {
    const { s, p } = setup(false);
    const got: Buffer[] = [];
    s.on('stream', (st) => st.on('error', noop).on('data', (d: Buffer) => got.push(d)));
    p.send(CMD_PSH, 9, Buffer.from('lost'));
    p.sendUpd(9, 0, 1000);
    p.send(CMD_FIN, 9);
    p.send(CMD_NOP, 0);
    p.send(CMD_SYN, 3);
    p.send(CMD_PSH, 3, Buffer.from('kept'));
    await ticks(3);
    assert.equal(s.isClosed, false);
    assert.equal(Buffer.concat(got).toString(), 'kept');
    s.close();
  });

  test('a 0-length PSH is ignored', async () => {
    const { s, p } = setup(false);
    let events = 0;
    s.on('stream', (st) => st.on('error', noop).on('data', () => events++));
    p.send(CMD_SYN, 3);
    p.send(CMD_PSH, 3);
    await ticks(3);
    assert.equal(events, 0);
    s.close();
  });

  for (const [name, bytes, kind] of [
    ['an unknown command', encodeHeader({ version: 2, cmd: 7, length: 0, sid: 1 }), 'bad_command'],
    ['a version 1 frame in a version 2 session', encodeFrame(1, CMD_NOP, 0), 'bad_version'],
    ['a SYN with data', Buffer.concat([encodeHeader({ version: 2, cmd: CMD_SYN, length: 2, sid: 3 }), Buffer.from('xx')]), 'bad_length'],
  ] as const) {
    test(`${name} kills the session with ProtocolError '${kind}', failing its streams`, async () => {
      const { s, p } = setup(false);
      const opened = open(s);
      const streamErr = errorOf(opened);
      const closed = closeEvent(s);
      p.sendRaw(bytes);
      const err = await closed;
      assert.ok(err instanceof ProtocolError);
      assert.equal(err.kind, kind);
      assert.equal(s.isClosed, true);
      const se = await streamErr;
      assert.ok(se instanceof BurrowError && se.code === 'BURROW_ERR_CLOSED');
      assert.equal(se.cause, err);
      await tick();
      assert.equal(p.conn.destroyed, true);
    });
  }
});

describe('smux Session: flow control (version 2, spec §5.4)', () => {
  test('the receiver sends UPD after the first read and then every half window', async () => {
    const { s, p } = setup(false, { maxStreamBuffer: 65536, maxReceiveBuffer: 65536 * 4 });
    let st: Stream | undefined;
    s.on('stream', (x) => {
      st = x.on('error', noop);
      x.on('data', noop);
    });
    p.send(CMD_SYN, 3);
    p.send(CMD_PSH, 3, Buffer.alloc(100));
    await ticks(3);
    assert.ok(st);
    const upds = () => p.frames.filter((f) => f.cmd === CMD_UPD).map((f) => [f.sid, f.data.readUInt32LE(0), f.data.readUInt32LE(4)]);
    assert.deepEqual(upds(), [[3, 100, 65536]]);
    // 32768 - 100 more: one byte short of half a window since the last UPD.
    p.send(CMD_PSH, 3, Buffer.alloc(32767));
    await ticks(3);
    assert.deepEqual(upds(), [[3, 100, 65536]]);
    p.send(CMD_PSH, 3, Buffer.alloc(1));
    await ticks(3);
    assert.deepEqual(upds(), [
      [3, 100, 65536],
      [3, 32868, 65536],
    ]);
    s.close();
  });

  const MiB = 1_048_576;
  const FRAME = 32768;
  const updsOf = (p: RawPeer, sid: number) =>
    p.frames.filter((f) => f.cmd === CMD_UPD && f.sid === sid).map((f) => [f.data.readUInt32LE(0), f.data.readUInt32LE(4)]);

  /**
   * Sends `bytes` on `sid` in 32 KiB frames, 256 KiB (a sender's starting window) per turn,
   * and lets the session read each batch.
   */
  async function feed(p: RawPeer, sid: number, bytes: number): Promise<void> {
    for (let off = 0; off < bytes; off += FRAME) {
      p.send(CMD_PSH, sid, Buffer.alloc(Math.min(FRAME, bytes - off)));
      if ((off / FRAME) % 8 === 7) await ticks(2);
    }
    await ticks(4);
  }

  test('a stream that keeps reading doubles its window from 1 MiB with each later UPD, up to maxStreamBuffer', async () => {
    const { s, p } = setup(false);
    let st: Stream | undefined;
    s.on('stream', (x) => (st = x.on('error', noop).on('data', noop)));
    p.send(CMD_SYN, 3);
    await feed(p, 3, 2 * MiB);
    // The first UPD is gost's own (1 MiB); then one per 512 KiB read, each window twice the last.
    assert.deepEqual(updsOf(p, 3), [
      [FRAME, MiB],
      [FRAME + MiB / 2, 2 * MiB],
      [FRAME + MiB, 4 * MiB],
      [FRAME + (3 * MiB) / 2, 4 * MiB],
    ]);
    assert.equal(st!.receiveWindow, 4 * MiB);
    s.close();
  });

  test("mux.maxStreamBuffer at gost's 1 MiB: every UPD advertises 1 MiB, as gost's", async () => {
    const { s, p } = setup(false, { maxStreamBuffer: MiB });
    s.on('stream', (x) => x.on('error', noop).on('data', noop));
    p.send(CMD_SYN, 3);
    await feed(p, 3, 2 * MiB);
    const upds = updsOf(p, 3);
    assert.equal(upds.length, 4);
    assert.ok(upds.every(([, w]) => w === MiB), JSON.stringify(upds));
    s.close();
  });

  test('what windows grow comes from maxReceiveBuffer less one base window, and returns when the stream goes', async () => {
    const { s, p } = setup(false);
    const streams = new Map<number, Stream>();
    s.on('stream', (x) => streams.set(x.id, x.on('error', noop).on('data', noop)));
    p.send(CMD_SYN, 3);
    p.send(CMD_SYN, 5);
    await feed(p, 3, 2 * MiB);
    assert.equal(streams.get(3)!.receiveWindow, 4 * MiB, 'the first stream took the 3 MiB');
    await feed(p, 5, 2 * MiB);
    assert.equal(streams.get(5)!.receiveWindow, MiB, 'nothing left for the second: it keeps the base window');
    assert.ok(updsOf(p, 5).every(([, w]) => w === MiB));
    // Stream 3 ends both ways: its 3 MiB go back, and stream 5 grows with its next UPDs.
    p.send(CMD_FIN, 3);
    streams.get(3)!.end();
    await ticks(4);
    assert.equal(s.numStreams, 1);
    await feed(p, 5, MiB);
    assert.equal(streams.get(5)!.receiveWindow, 4 * MiB);
    s.close();
  });

  test('a grown window: the peer may send up to the largest end advertised (+ one frame), past it the stream goes', async () => {
    const { s, p } = setup(false);
    let st: Stream | undefined;
    s.on('stream', (x) => (st = x.on('error', noop).on('data', noop)));
    p.send(CMD_SYN, 3);
    await feed(p, 3, 2 * MiB);
    st!.pause();
    const violations: Error[] = [];
    s.on('violation', (e) => violations.push(e));
    // Up to the largest end advertised and one frame of slack: all queued, nothing refused.
    // (The paused Readable still takes its buffer's worth, which may send one more UPD.)
    const end = (): number => Math.max(...updsOf(p, 3).map(([c, w]) => c! + w!));
    let received = 2 * MiB;
    for (let k = 1; received < end() + FRAME; k++) {
      const n = Math.min(FRAME, end() + FRAME - received);
      p.send(CMD_PSH, 3, Buffer.alloc(n));
      received += n;
      if (k % 8 === 0) await ticks(2);
    }
    await ticks(4);
    assert.equal(received, end() + FRAME);
    assert.ok(end() >= FRAME + (3 * MiB) / 2 + 4 * MiB, String(end()));
    assert.equal(violations.length, 0);
    assert.equal(st!.destroyed, false);
    assert.ok(st!.queuedBytes <= 4 * MiB + FRAME, String(st!.queuedBytes));
    const err = errorOf(st!);
    p.send(CMD_PSH, 3, Buffer.alloc(1));
    assert.ok((await err) instanceof ProtocolError);
    assert.equal(violations.length, 1);
    assert.equal(s.isClosed, false);
    assert.equal(s.receiveBufferedBytes, 0);
    s.close();
  });

  test('a reader that never reads sends no UPD, and its bytes stay queued', async () => {
    const { s, p } = setup(false);
    let st: Stream | undefined;
    s.on('stream', (x) => (st = x.on('error', noop)));
    p.send(CMD_SYN, 3);
    for (let i = 0; i < 8; i++) p.send(CMD_PSH, 3, Buffer.alloc(32768));
    await ticks(3);
    assert.equal(p.frames.filter((f) => f.cmd === CMD_UPD).length, 0);
    assert.equal(st!.queuedBytes, 8 * 32768);
    assert.equal(s.receiveBufferedBytes, 8 * 32768);
    st!.resume();
    await ticks(3);
    assert.equal(s.receiveBufferedBytes, 0);
    assert.equal(p.frames.filter((f) => f.cmd === CMD_UPD).length, 1);
    s.close();
  });

  test('version 1 sends no UPD', async () => {
    const { s, p } = setup(false, { version: 1 });
    s.on('stream', (x) => x.on('error', noop).resume());
    p.send(CMD_SYN, 3);
    p.send(CMD_PSH, 3, Buffer.alloc(1000));
    await ticks(3);
    assert.deepEqual(summary(p), []);
    s.close();
  });

  test('the sender stops at the initial 256 KiB window and goes on after UPD', async () => {
    const { s, p } = setup(true);
    const st = open(s);
    const data = Buffer.alloc(300_000, 7);
    let done = false;
    st.write(data, () => (done = true));
    await ticks(5);
    const psh = () => p.frames.filter((f) => f.cmd === CMD_PSH);
    const sent = () => psh().reduce((n, f) => n + f.data.length, 0);
    assert.equal(sent(), 262144);
    assert.ok(psh().every((f) => f.data.length <= 32768));
    assert.equal(done, false);
    p.sendUpd(3, 100_000, 262144);
    await ticks(5);
    assert.equal(sent(), 300_000);
    assert.equal(done, true);
    s.close();
  });

  test('a bigger window from UPD lets more bytes fly', async () => {
    const { s, p } = setup(true, { maxFrameSize: 16384 });
    const st = open(s);
    st.write(Buffer.alloc(2_000_000));
    await ticks(5);
    p.sendUpd(3, 0, 1_048_576);
    await ticks(10);
    const psh = p.frames.filter((f) => f.cmd === CMD_PSH);
    assert.equal(psh.reduce((n, f) => n + f.data.length, 0), 1_048_576);
    assert.ok(psh.every((f) => f.data.length <= 16384));
    s.destroy();
  });

  test('UPD claiming more consumed than sent fails that stream only (as smux ErrConsumed)', async () => {
    const { s, p } = setup(true);
    const bad = open(s);
    const good = open(s);
    const err = errorOf(bad);
    bad.write(Buffer.alloc(10));
    await ticks(3);
    p.sendUpd(3, 11, 1_048_576);
    const e = await err;
    assert.ok(e instanceof ProtocolError && e.kind === 'bad_frame');
    await tick();
    assert.equal(s.isClosed, false);
    assert.deepEqual(
      summary(p).filter(([cmd]) => cmd === CMD_FIN),
      [[CMD_FIN, 3, 0]],
    );
    good.write(Buffer.from('still fine'));
    await ticks(3);
    assert.deepEqual(summary(p).at(-1), [CMD_PSH, 5, 10]);
    s.close();
  });

  test('UPD with wrapped u32 counters is modular, not an overflow', async () => {
    const { s, p } = setup(true);
    const st = open(s);
    st.write(Buffer.alloc(10));
    await ticks(3);
    // consumed 10 - 2^32 ≡ 10 (mod 2^32)
    p.sendUpd(3, 10, 1_048_576);
    await ticks(3);
    assert.equal(st.destroyed, false);
    s.close();
    st.destroy();
  });
});

describe('smux Session: sending', () => {
  test('corked writes leave as one frame', async () => {
    const { s, p } = setup(true);
    const st = open(s);
    st.cork();
    st.write(Buffer.from('head'));
    st.write(Buffer.from('er'));
    st.write(Buffer.from('+body'));
    st.uncork();
    await ticks(3);
    assert.deepEqual(summary(p), [
      [CMD_SYN, 3, 0],
      [CMD_PSH, 3, 11],
    ]);
    assert.equal(p.frames[1]!.data.toString(), 'header+body');
    s.close();
  });

  test('big writes are cut at maxFrameSize', async () => {
    const { s, p } = setup(true, { maxFrameSize: 1000 });
    const st = open(s);
    st.write(Buffer.alloc(2500, 1));
    await ticks(3);
    assert.deepEqual(summary(p).slice(1), [
      [CMD_PSH, 3, 1000],
      [CMD_PSH, 3, 1000],
      [CMD_PSH, 3, 500],
    ]);
    s.close();
  });

  test('the frames of one event-loop turn leave in one write, control frames first', async () => {
    const { s, p } = setup(true);
    const batches: number[] = [];
    const conn = p.conn as unknown as {
      _write(c: Buffer, e: BufferEncoding, cb: () => void): void;
      _writev?: (chunks: { chunk: Buffer }[], cb: () => void) => void;
    };
    conn._writev = (chunks, cb) => {
      batches.push(chunks.length);
      for (const c of chunks) conn._write(c.chunk, 'latin1', () => {});
      cb();
    };
    const a = open(s);
    const b = open(s);
    a.write(Buffer.from('one'));
    b.write(Buffer.from('two'));
    assert.equal(p.frames.length, 0, 'nothing is written before the turn ends');
    await ticks(3);
    assert.deepEqual(summary(p), [
      [CMD_SYN, 3, 0],
      [CMD_SYN, 5, 0],
      [CMD_PSH, 3, 3],
      [CMD_PSH, 5, 3],
    ]);
    assert.equal(batches.length, 1, `writes: ${batches.join(', ')}`);
    s.close();
  });

  test('a FIN still queued when the session closes gracefully goes out before the end', async () => {
    const { s, p } = setup(true);
    const st = open(s);
    await ticks(3);
    st.end();
    await new Promise<void>((r) => process.nextTick(r));
    await new Promise<void>((r) => process.nextTick(r));
    s.close();
    await ticks(3);
    assert.deepEqual(summary(p), [
      [CMD_SYN, 3, 0],
      [CMD_FIN, 3, 0],
    ]);
  });

  test('streams take turns, one frame each', async () => {
    const { s, p } = setup(true, { maxFrameSize: 100 });
    const a = open(s);
    const b = open(s);
    a.write(Buffer.alloc(300, 1));
    b.write(Buffer.alloc(300, 2));
    await ticks(3);
    assert.deepEqual(
      summary(p).filter(([c]) => c === CMD_PSH).map(([, sid]) => sid),
      [3, 5, 3, 5, 3, 5],
    );
    s.close();
  });
});

describe('smux Session: close semantics (spec §5.3)', () => {
  test('end() sends FIN after the data; FIN from the peer ends reads; the stream is then gone', async () => {
    const { s, p } = setup(true);
    const st = open(s);
    const got: Buffer[] = [];
    st.on('data', (d: Buffer) => got.push(d));
    const ended = new Promise((r) => st.once('end', r));
    const closed = new Promise((r) => st.once('close', r));
    st.write(Buffer.from('abc'));
    st.end(Buffer.from('def'));
    await ticks(5);
    assert.deepEqual(summary(p), [
      [CMD_SYN, 3, 0],
      [CMD_PSH, 3, 3],
      [CMD_PSH, 3, 3],
      [CMD_FIN, 3, 0],
    ]);
    assert.equal(s.numStreams, 1, 'still open for reading until the peer FINs');
    p.send(CMD_PSH, 3, Buffer.from('reply'));
    p.send(CMD_FIN, 3);
    await ended;
    await closed;
    assert.equal(Buffer.concat(got).toString(), 'reply');
    assert.equal(s.numStreams, 0);
    s.close();
  });

  test('after the peer FIN, our writes still go out (half-close) until we end', async () => {
    const { s, p } = setup(false);
    let st: Stream | undefined;
    s.on('stream', (x) => (st = x.on('error', noop)));
    p.send(CMD_SYN, 3);
    p.send(CMD_PSH, 3, Buffer.from('last words'));
    p.send(CMD_FIN, 3);
    await ticks(3);
    assert.ok(st);
    assert.equal(st.remoteClosed, true);
    const data: Buffer[] = [];
    st.on('data', (d: Buffer) => data.push(d));
    await new Promise((r) => st!.once('end', r));
    assert.equal(Buffer.concat(data).toString(), 'last words');
    let cbErr: Error | null | undefined = new Error('not called');
    st.end(Buffer.from('the answer'), () => (cbErr = null));
    await ticks(3);
    assert.equal(cbErr, null);
    const frames = summary(p);
    assert.deepEqual(frames.slice(-2), [
      [CMD_PSH, 3, 10],
      [CMD_FIN, 3, 0],
    ]);
    await ticks(2);
    assert.equal(s.numStreams, 0, 'FIN went both ways: the stream is forgotten');
    s.close();
  });

  test('after the peer FIN, a write waiting for window still waits for the UPD', async () => {
    const { s, p } = setup(true);
    const st = open(s);
    st.resume();
    let done = false;
    st.write(Buffer.alloc(400_000), () => (done = true));
    await ticks(3);
    assert.equal(done, false);
    p.send(CMD_FIN, 3);
    await ticks(3);
    assert.equal(done, false, 'the window is still closed');
    const upd = Buffer.alloc(8);
    upd.writeUInt32LE(262_144, 0);
    upd.writeUInt32LE(1_048_576, 4);
    p.send(CMD_UPD, 3, upd);
    await ticks(5);
    assert.equal(done, true);
    s.close();
  });

  test('destroy() sends FIN once, forgets the stream and drops its later data', async () => {
    const { s, p } = setup(true);
    const st = open(s);
    st.destroy();
    await ticks(2);
    assert.deepEqual(summary(p), [
      [CMD_SYN, 3, 0],
      [CMD_FIN, 3, 0],
    ]);
    assert.equal(s.numStreams, 0);
    p.send(CMD_PSH, 3, Buffer.from('late'));
    p.send(CMD_FIN, 3);
    await ticks(2);
    assert.equal(s.isClosed, false);
    s.close();
  });

  test('a destroyed stream returns its queued bytes to the receive budget', async () => {
    const { s, p } = setup(false);
    let st: Stream | undefined;
    s.on('stream', (x) => (st = x.on('error', noop)));
    p.send(CMD_SYN, 3);
    p.send(CMD_PSH, 3, Buffer.alloc(5000));
    await ticks(3);
    assert.equal(s.receiveBufferedBytes, 5000);
    st!.destroy();
    assert.equal(s.receiveBufferedBytes, 0);
    s.close();
  });
});

describe('smux Session: limits', () => {
  test('accepted streams wait in a backlog for a listener; beyond acceptBacklog SYNs get FIN', async () => {
    const { s, p } = setup(false, { acceptBacklog: 2 });
    p.send(CMD_SYN, 3);
    p.send(CMD_SYN, 5);
    p.send(CMD_SYN, 7);
    await ticks(2);
    assert.deepEqual(summary(p), [[CMD_FIN, 7, 0]]);
    const ids: number[] = [];
    s.on('stream', (st) => ids.push(st.on('error', noop).id));
    await ticks(2);
    assert.deepEqual(ids, [3, 5]);
    s.close();
  });

  test('maxStreams bounds local opens (BURROW_ERR_LIMIT) and refuses remote SYNs with FIN', async () => {
    const { s, p } = setup(true, { maxStreams: 2 });
    s.on('stream', (st) => st.on('error', noop));
    open(s);
    open(s);
    assert.throws(() => s.openStream(), (e: unknown) => e instanceof BurrowError && e.code === 'BURROW_ERR_LIMIT');
    p.send(CMD_SYN, 2);
    await ticks(2);
    assert.deepEqual(summary(p).at(-1), [CMD_FIN, 2, 0]);
    assert.equal(s.numStreams, 2);
    s.close();
  });

  test('version 1: the receive budget pauses the conn and resumes it when readers drain', async () => {
    const { s, p } = setup(false, { version: 1, maxReceiveBuffer: 65536, maxStreamBuffer: 32768 });
    let st: Stream | undefined;
    s.on('stream', (x) => (st = x.on('error', noop)));
    p.send(CMD_SYN, 3);
    for (let i = 0; i < 6; i++) p.send(CMD_PSH, 3, Buffer.alloc(16384));
    await ticks(4);
    assert.equal(p.conn.isPaused(), true);
    // Stopped reading once 64 KiB were queued: the rest waits in the conn.
    assert.ok(s.receiveBufferedBytes >= 65536 && s.receiveBufferedBytes < 6 * 16384, String(s.receiveBufferedBytes));
    let got = 0;
    st!.on('data', (d: Buffer) => (got += d.length));
    await ticks(6);
    assert.equal(got, 6 * 16384);
    assert.equal(p.conn.isPaused(), false);
    s.close();
  });

  test('version 2: an unread stream never pauses the session; a peer ignoring the window loses only that stream', async () => {
    const { s, p } = setup(false, { maxReceiveBuffer: 65536, maxStreamBuffer: 32768 });
    const streams = new Map<number, Stream>();
    s.on('stream', (x) => streams.set(x.id, x.on('error', noop)));
    p.send(CMD_SYN, 3);
    p.send(CMD_SYN, 5);
    // Stream 3 is never read; its peer stays within the initial 256 KiB window.
    for (let i = 0; i < 8; i++) p.send(CMD_PSH, 3, Buffer.alloc(32768));
    await ticks(4);
    assert.equal(p.conn.isPaused(), false, 'no head-of-line blocking');
    let got5 = 0;
    streams.get(5)!.on('data', (d: Buffer) => (got5 += d.length));
    p.send(CMD_PSH, 5, Buffer.alloc(1000));
    await ticks(4);
    assert.equal(got5, 1000, 'the other stream still flows');
    // Past the window (+ one frame of slack): stream 3 is reset, the session lives on.
    const err = errorOf(streams.get(3)!);
    for (let i = 0; i < 2; i++) p.send(CMD_PSH, 3, Buffer.alloc(32768));
    const e = await err;
    assert.ok(e instanceof ProtocolError, String(e));
    assert.equal(s.isClosed, false);
    p.send(CMD_PSH, 5, Buffer.alloc(24));
    await ticks(4);
    assert.equal(got5, 1024);
    s.close();
  });
});

describe('smux Session: lifetime', () => {
  test('close() is idempotent, emits close once, fails streams with BURROW_ERR_CLOSED', async () => {
    const { s, p } = setup(true);
    const st = open(s);
    const err = errorOf(st);
    let closes = 0;
    s.on('close', () => closes++);
    s.close();
    s.close();
    s.destroy(new Error('later'));
    const e = await err;
    assert.ok(e instanceof BurrowError && e.code === 'BURROW_ERR_CLOSED');
    await ticks(3);
    assert.equal(closes, 1);
    assert.equal(s.isClosed, true);
    assert.equal(s.numStreams, 0);
    assert.equal(p.conn.destroyed, true);
    assert.throws(() => s.openStream(), (x: unknown) => x instanceof BurrowError && x.code === 'BURROW_ERR_CLOSED');
  });

  test('destroy(err) gives err to the close event and, as cause, to the streams', async () => {
    const { s } = setup(true);
    const st = open(s);
    const boom = new Error('boom');
    const err = errorOf(st);
    const closed = closeEvent(s);
    s.destroy(boom);
    const e = await err;
    assert.ok(e instanceof BurrowError && e.code === 'BURROW_ERR_CLOSED');
    assert.equal(e.cause, boom);
    assert.equal(await closed, boom);
  });

  test('the session closes when the conn ends', async () => {
    const { s, p } = setup(true);
    const st = open(s);
    const err = errorOf(st);
    const closed = closeEvent(s);
    p.end.end();
    const e = await closed;
    assert.ok(e instanceof BurrowError && e.code === 'BURROW_ERR_CLOSED');
    assert.equal(await err, e);
  });

  test('streams nobody accepted are dropped quietly', async () => {
    const { s, p } = setup(false);
    p.send(CMD_SYN, 3);
    await ticks(2);
    assert.equal(s.numStreams, 1);
    s.close();
    await ticks(2);
    assert.equal(s.numStreams, 0);
  });

  test('a stream whose peer had finished still delivers its data after the session dies', async () => {
    const { s, p } = setup(false);
    let st: Stream | undefined;
    s.on('stream', (x) => (st = x.on('error', noop)));
    p.send(CMD_SYN, 3);
    p.send(CMD_PSH, 3, Buffer.from('tail'));
    p.send(CMD_FIN, 3);
    await ticks(2);
    s.destroy();
    const err = errorOf(st!);
    let data = '';
    st!.on('data', (d: Buffer) => (data += d.toString()));
    await err;
    assert.equal(data, 'tail');
  });

  test('keepalive: sends NOP every interval and dies after a silent timeout window', async () => {
    const p = rawPeer(2);
    const s = new Session(p.conn, { client: true, config: { keepAliveIntervalMs: 20, keepAliveTimeoutMs: 60 } });
    // The session's timers are unref'd and an in-memory pair holds no handle: keep the loop up.
    const hold = setTimeout(noop, 5000);
    const e = await closeEvent(s);
    clearTimeout(hold);
    assert.ok(e instanceof BurrowError && e.code === 'BURROW_ERR_TIMEOUT');
    assert.ok(p.frames.filter((f) => f.cmd === CMD_NOP && f.sid === 0).length >= 2);
  });

  test('keepalive: any frame from the peer keeps the session alive', async () => {
    const p = rawPeer(2);
    // The timeout is 20 of the peer's intervals, so a busy machine's late timer is not a silence;
    // the session is watched for more than two timeouts.
    const s = new Session(p.conn, { client: true, config: { keepAliveIntervalMs: 50, keepAliveTimeoutMs: 1000 } });
    const iv = setInterval(() => p.send(CMD_NOP, 0), 50);
    await new Promise((r) => setTimeout(r, 2500));
    clearInterval(iv);
    assert.equal(s.isClosed, false);
    s.close();
  });

  test("a listener's own exception is not swallowed; the session cannot go on and closes", async () => {
    const { s, p } = setup(false);
    const boom = new Error('listener bug');
    s.on('stream', (st) => {
      st.on('error', noop);
      throw boom;
    });
    // Deliver the bytes synchronously, as a socket's 'data' event would.
    assert.throws(() => p.conn.emit('data', encodeFrame(2, CMD_SYN, 3)), (e: unknown) => e === boom);
    assert.equal(s.isClosed, true);
    assert.equal(s.closeError, boom);
  });

  test('a session on a conn that is already gone closes', async () => {
    const p = rawPeer(2);
    p.conn.destroy();
    const s = new Session(p.conn, { client: true });
    const e = await closeEvent(s);
    assert.ok(e instanceof BurrowError && e.code === 'BURROW_ERR_CLOSED');
  });
});
