/**
 * smux sessions over real 127.0.0.1 TCP connections: many streams, bulk transfer, flow control
 * under a stalled reader, keepalive, teardown and close semantics.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { BurrowError } from '../../../src/core/errors';
import { Session } from '../../../src/protocol/smux/session';
import type { Stream } from '../../../src/protocol/smux/stream';
import { FrameDecoder } from '../../../src/protocol/smux/decoder';
import { CMD_NOP, CMD_PSH, CMD_SYN, CMD_UPD, encodeFrame, encodeUpdFrame } from '../../../src/protocol/smux/frame';
import { DEFAULT_SMUX_CONFIG } from '../../../src/protocol/smux/config';
import { nextStream, readAll, sessionPair, sleep, tcpPair, waitFor } from './helpers';

const noop = (): void => {};

/** Writes `total` bytes from `next()` honouring backpressure; resolves when all were accepted. */
function pump(st: Stream, total: number, next: (offset: number) => Buffer, onChunk?: (b: Buffer) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let off = 0;
    st.once('error', reject);
    const go = (): void => {
      while (off < total) {
        const b = next(off);
        off += b.length;
        onChunk?.(b);
        if (!st.write(b)) {
          st.once('drain', go);
          return;
        }
      }
      resolve();
    };
    go();
  });
}

describe('smux over loopback TCP', () => {
  test('1,000 concurrent streams echo their data', async () => {
    const p = await sessionPair();
    after(() => p.close());
    p.server.on('stream', (st) => {
      st.on('error', noop);
      st.pipe(st);
    });
    const N = 1000;
    const results = await Promise.all(
      Array.from({ length: N }, async (_, i) => {
        const st = p.client.openStream();
        st.on('error', noop);
        const data = randomBytes(1 + ((i * 7919) % 40_000));
        const parts: Buffer[] = [];
        let got = 0;
        const echoed = new Promise<void>((resolve) => {
          st.on('data', (d: Buffer) => {
            parts.push(d);
            got += d.length;
            if (got >= data.length) resolve();
          });
        });
        st.write(data);
        await echoed;
        const closed = once(st, 'close');
        st.end();
        await closed;
        return Buffer.concat(parts).equals(data);
      }),
    );
    assert.equal(results.filter(Boolean).length, N);
    await waitFor(() => p.client.numStreams === 0 && p.server.numStreams === 0, 5000, 'all streams forgotten');
  });

  test('1 GiB through one stream arrives intact (SHA-256)', { timeout: 120_000 }, async () => {
    const total = (process.env.SMUX_BIG === '0' ? 256 : 1024) * 1024 * 1024;
    const p = await sessionPair();
    after(() => p.close());
    const accepted = nextStream(p.server);
    const st = p.client.openStream();
    st.on('error', noop);
    const block = randomBytes(1024 * 1024);
    const sent = createHash('sha256');
    let seq = 0;
    const started = Date.now();
    const writing = pump(
      st,
      total,
      () => {
        // A fresh copy stamped with its sequence number, so a lost or repeated chunk shows.
        const b = Buffer.allocUnsafe(block.length);
        block.copy(b);
        b.writeUInt32LE(seq++, 0);
        return b;
      },
      (b) => sent.update(b),
    ).then(() => st.end());
    const srv = await accepted;
    srv.on('error', noop);
    const received = createHash('sha256');
    let bytes = 0;
    srv.on('data', (d: Buffer) => {
      received.update(d);
      bytes += d.length;
    });
    await once(srv, 'end');
    await writing;
    const secs = (Date.now() - started) / 1000;
    assert.equal(bytes, total);
    assert.equal(received.digest('hex'), sent.digest('hex'));
    // A loose floor: fails only if something is badly wrong (the bench reports real figures).
    assert.ok(secs < 60, `took ${secs.toFixed(1)} s`);
  });

  describe('a stalled reader keeps memory bounded', () => {
    async function stall(readFirst: number) {
      const cfg = DEFAULT_SMUX_CONFIG;
      const p = await sessionPair();
      after(() => p.close());
      const accepted = nextStream(p.server);
      const st = p.client.openStream();
      st.on('error', noop);
      const chunk = Buffer.alloc(64 * 1024, 1);
      let acked = 0;
      const total = 64 * 1024 * 1024;
      let written = 0;
      // Write 64 MiB honouring backpressure and count the write callbacks.
      const go = (): void => {
        while (written < total) {
          written += chunk.length;
          if (!st.write(chunk, () => (acked += chunk.length))) {
            st.once('drain', go);
            return;
          }
        }
      };
      global.gc?.();
      const before = process.memoryUsage();
      go();
      const srv = await accepted;
      srv.on('error', noop);
      let read = 0;
      const onData = (d: Buffer): void => {
        read += d.length;
        if (read >= readFirst) srv.pause();
      };
      if (readFirst > 0) srv.on('data', onData);
      // Let the window fill up, then check that nothing moves any more.
      await sleep(400);
      const ackedA = acked;
      const queuedA = srv.queuedBytes;
      await sleep(300);
      assert.equal(acked, ackedA, 'write callbacks stopped');
      assert.equal(srv.queuedBytes, queuedA, 'receiver queue stopped growing');
      const window = readFirst > 0 ? cfg.maxStreamBuffer : 262_144;
      const held = srv.queuedBytes + srv.readableLength;
      assert.ok(held <= window + srv.readableHighWaterMark + cfg.maxFrameSize, `receiver holds ${held} bytes`);
      assert.ok(p.server.receiveBufferedBytes <= window + cfg.maxFrameSize, `session budget ${p.server.receiveBufferedBytes}`);
      // The sender got no further than the window plus its own Writable buffer.
      assert.ok(acked <= read + window + 2 * chunk.length, `sender acked ${acked}`);
      const afterMem = process.memoryUsage();
      const grown = afterMem.heapUsed + afterMem.arrayBuffers - (before.heapUsed + before.arrayBuffers);
      assert.ok(grown < 24 * 1024 * 1024, `heap + buffers grew ${(grown / 1048576).toFixed(1)} MiB for a 64 MiB write`);
      srv.off('data', onData);
      return { p, srv, st, acked: () => acked, read: () => read };
    }

    test('a reader that never reads: the sender stops at the initial 256 KiB window', async () => {
      const { acked } = await stall(0);
      assert.ok(acked() <= 262_144 + 2 * 65_536);
    });

    test('a reader that stops after 3 MiB: its window had grown to 4 MiB, and the sender stops one 4 MiB window later', async () => {
      const { srv, acked, read } = await stall(3 * 1024 * 1024);
      assert.equal(srv.receiveWindow, 4 * 1024 * 1024);
      assert.ok(acked() > read() + 3 * 1024 * 1024, `the grown window was used (read ${read()}, acked ${acked()})`);
      srv.resume();
      await waitFor(() => acked() >= 64 * 1024 * 1024, 30_000, 'all 64 MiB acknowledged');
    });

    test('a reader that stops after 100 KiB: the sender stops one 1 MiB window later', async () => {
      const { srv, acked } = await stall(100 * 1024);
      assert.ok(acked() > 1_000_000, `the 1 MiB window was used (${acked()})`);
      // Reading again lets everything through.
      srv.resume();
      await waitFor(() => acked() >= 64 * 1024 * 1024, 30_000, 'all 64 MiB acknowledged');
    });
  });

  test('one stalled stream does not stop the others', async () => {
    const p = await sessionPair();
    after(() => p.close());
    const streams: Stream[] = [];
    p.server.on('stream', (st) => {
      st.on('error', noop);
      streams.push(st);
    });
    const stalled = p.client.openStream();
    stalled.on('error', noop);
    const chunk = Buffer.alloc(64 * 1024, 2);
    void pump(stalled, 32 * 1024 * 1024, () => chunk).catch(noop);
    await waitFor(() => streams.length === 1, 2000, 'stalled stream accepted');
    streams[0]!.pause();
    await sleep(100);

    const live = p.client.openStream();
    live.on('error', noop);
    const data = randomBytes(16 * 1024 * 1024);
    const writing = pump(live, data.length, (off) => data.subarray(off, off + 256 * 1024)).then(() => live.end());
    await waitFor(() => streams.length === 2, 2000, 'live stream accepted');
    const got = await readAll(streams[1]!);
    await writing;
    assert.ok(got.equals(data));
    assert.ok(streams[0]!.queuedBytes <= DEFAULT_SMUX_CONFIG.maxStreamBuffer + DEFAULT_SMUX_CONFIG.maxFrameSize);
  });

  test('streams share the connection fairly', async () => {
    const p = await sessionPair();
    after(() => p.close());
    const total = 48 * 1024 * 1024;
    const received = [0, 0];
    const done: number[] = [];
    p.server.on('stream', (st) => {
      st.on('error', noop);
      const idx = st.id === 3 ? 0 : 1;
      st.on('data', (d: Buffer) => {
        received[idx]! += d.length;
      });
      st.on('end', () => done.push(idx));
    });
    const chunk = Buffer.alloc(1024 * 1024, 3);
    const a = p.client.openStream();
    const b = p.client.openStream();
    a.on('error', noop);
    b.on('error', noop);
    const wa = pump(a, total, () => chunk).then(() => a.end());
    const wb = pump(b, total, () => chunk).then(() => b.end());
    await waitFor(() => done.length >= 1, 30_000, 'first stream done');
    const other = received[1 - done[0]!]!;
    assert.ok(other >= total * 0.4, `the other stream had ${(other / total * 100).toFixed(0)}% when the first finished`);
    await Promise.all([wa, wb]);
    await waitFor(() => done.length === 2, 30_000, 'second stream done');
  });

  test('keepalive: a peer that goes silent is dropped after the timeout', async () => {
    const [raw, sock] = await tcpPair();
    after(() => raw.destroy());
    raw.resume();
    const started = Date.now();
    const s = new Session(sock, { client: true, config: { keepAliveIntervalMs: 100, keepAliveTimeoutMs: 300 } });
    const st = s.openStream();
    const streamErr = once(st, 'error');
    const [err] = (await once(s, 'close')) as [Error | undefined];
    const elapsed = Date.now() - started;
    assert.ok(err instanceof BurrowError && err.code === 'BURROW_ERR_TIMEOUT', String(err));
    assert.ok(elapsed >= 290 && elapsed < 60_000, `closed after ${elapsed} ms`);
    const [se] = (await streamErr) as [Error];
    assert.ok(se instanceof BurrowError && se.code === 'BURROW_ERR_CLOSED' && se.cause === err);
    await once(raw, 'end');
    assert.equal(sock.destroyed, true);
    // How many NOPs fit in the 300 ms depends on the scheduler (a stalled event loop runs the
    // check first); that they are sent every interval is checked below without a deadline.
  });

  test('keepalive: a NOP goes out every interval while the peer stays quiet', async () => {
    const [raw, sock] = await tcpPair();
    after(() => raw.destroy());
    let nops = 0;
    const dec = new FrameDecoder(2, (cmd, sid) => {
      if (cmd === CMD_NOP && sid === 0) nops++;
    });
    raw.on('data', (d: Buffer) => dec.push(d));
    const s = new Session(sock, { client: true, config: { keepAliveIntervalMs: 100, keepAliveTimeoutMs: 600_000 } });
    after(() => s.destroy());
    await waitFor(() => nops >= 3, 30_000, 'three NOPs');
    assert.equal(s.isClosed, false);
  });

  describe('send timeout: a peer that sends (NOPs) but never reads', () => {
    /** A session streaming into a raw peer that never reads and sends a NOP every 50 ms. */
    async function stuffed(sendTimeoutMs: number): Promise<{ s: Session; closed: Promise<Error | undefined>; startedAt: () => number; stop(): void }> {
      const [raw, sock] = await tcpPair();
      raw.pause();
      const nop = setInterval(() => raw.write(encodeFrame(1, CMD_NOP, 0)), 50);
      const s = new Session(sock, { client: true, config: { version: 1, keepAliveIntervalMs: 100, keepAliveTimeoutMs: 1000, sendTimeoutMs } });
      const st = s.openStream();
      st.on('error', noop);
      const chunk = Buffer.alloc(256 * 1024);
      let stalledAt = 0;
      const push = (): void => {
        while (!st.destroyed && st.write(chunk));
        if (!st.destroyed) {
          stalledAt = Date.now();
          st.once('drain', push);
        }
      };
      push();
      const closed = once(s, 'close').then(([err]) => err as Error | undefined);
      return {
        s,
        closed,
        startedAt: () => stalledAt,
        stop() {
          clearInterval(nop);
          s.destroy();
          raw.destroy();
        },
      };
    }

    test('the session closes once the connection has taken no bytes for sendTimeout', async () => {
      const x = await stuffed(500);
      after(() => x.stop());
      const err = await x.closed;
      const waited = Date.now() - x.startedAt();
      assert.ok(err instanceof BurrowError && err.code === 'BURROW_ERR_TIMEOUT' && /send timeout/.test(err.message), String(err));
      assert.ok(waited >= 400 && waited < 60_000, `closed ${waited} ms after the last write was accepted`);
    });

    test('sendTimeout 0: keepalive alone keeps it open', async () => {
      const x = await stuffed(0);
      after(() => x.stop());
      await sleep(1_500);
      assert.equal(x.s.isClosed, false);
    });
  });

  /** A session whose peer is a raw socket we write frames to; its 'violation' events collected. */
  async function rawPeer(client: boolean): Promise<{ raw: import('node:net').Socket; s: Session; violations: Error[] }> {
    const [raw, sock] = await tcpPair();
    after(() => raw.destroy());
    raw.on('data', noop);
    const s = new Session(sock, { client });
    after(() => s.destroy());
    const violations: Error[] = [];
    s.on('violation', (e) => violations.push(e));
    return { raw, s, violations };
  }

  test("'violation': a window update claiming more consumed than sent closes that stream only", async () => {
    const { raw, s, violations } = await rawPeer(true);
    const bad = s.openStream();
    const good = s.openStream();
    good.on('error', noop);
    const badErr = once(bad, 'error');
    bad.write('x');
    raw.write(encodeUpdFrame(2, bad.id, 0x80000000, 0x7fffffff));
    const [e] = (await badErr) as [Error];
    assert.match(e.message, /consumed than were sent/);
    assert.equal(violations.length, 1);
    assert.equal(violations[0], e);
    assert.equal(good.destroyed, false);
    assert.equal(s.isClosed, false);
  });

  test("'violation': a peer sending past the window loses that stream, named after mux.maxStreamBuffer", async () => {
    const { raw, s, violations } = await rawPeer(false);
    const accepted = nextStream(s);
    raw.write(encodeFrame(2, CMD_SYN, 3));
    const st = await accepted;
    st.pause();
    st.on('error', noop);
    for (let i = 0; i < 80; i++) raw.write(encodeFrame(2, CMD_PSH, 3, Buffer.alloc(32768)));
    await waitFor(() => violations.length > 0, 2000, 'a violation');
    assert.match(violations[0]!.message, /past the \d+-byte window \(mux\.maxStreamBuffer\)/);
    assert.equal(s.isClosed, false);
  });

  test('keepalive: two live sessions keep each other up', async () => {
    const cfg = { keepAliveIntervalMs: 100, keepAliveTimeoutMs: 400 };
    const p = await sessionPair(cfg);
    after(() => p.close());
    await sleep(1300);
    assert.equal(p.client.isClosed, false);
    assert.equal(p.server.isClosed, false);
  });

  test('an abrupt socket destroy fails every stream on both sides, without hanging', async () => {
    const p = await sessionPair();
    after(() => p.close());
    const serverErrors: Promise<unknown>[] = [];
    p.server.on('stream', (st) => {
      serverErrors.push(once(st, 'error'));
      st.resume();
    });
    const clientStreams = Array.from({ length: 20 }, () => p.client.openStream());
    const clientErrors = clientStreams.map((st) => once(st, 'error'));
    for (const st of clientStreams) void pump(st, 8 * 1024 * 1024, () => Buffer.alloc(65536)).catch(noop);
    await waitFor(() => serverErrors.length === 20, 2000, 'streams accepted');
    await sleep(20);
    const closes = [once(p.client, 'close'), once(p.server, 'close')];
    p.clientSocket.destroy();
    await Promise.all(closes);
    for (const [e] of (await Promise.all([...clientErrors, ...serverErrors])) as [Error][]) {
      assert.ok(e instanceof BurrowError && e.code === 'BURROW_ERR_CLOSED', String(e));
    }
    assert.equal(p.client.numStreams, 0);
    assert.equal(p.server.numStreams, 0);
    assert.equal(p.serverSocket.destroyed, true);
  });

  describe('half close', () => {
    test("after A.end(), B reads EOF and can still write: A reads everything until B's FIN", async () => {
      const p = await sessionPair();
      after(() => p.close());
      const accepted = nextStream(p.server);
      const a = p.client.openStream();
      a.on('error', noop);
      a.pause();
      a.write('ping');
      const b = await accepted;
      b.on('error', noop);
      const [ping] = (await once(b, 'data')) as [Buffer];
      assert.equal(ping.toString(), 'ping');
      const reply = randomBytes(200_000);
      await new Promise<void>((r) => b.write(reply, () => r()));
      a.end();
      await once(b, 'end');
      // Beyond the initial 256 KiB window: this only completes if A keeps reading and sending UPDs.
      const late = randomBytes(600_000);
      const reading = readAll(a);
      await new Promise<void>((r, j) => b.end(late, (err?: Error | null) => (err ? j(err) : r())));
      const got = await reading;
      assert.ok(got.equals(Buffer.concat([reply, late])));
      await waitFor(() => p.client.numStreams === 0 && p.server.numStreams === 0, 2000, 'streams forgotten');
    });

    test('an echo through pipe() after end() returns every byte, then both sides close', async () => {
      const p = await sessionPair();
      after(() => p.close());
      p.server.on('stream', (st) => {
        st.on('error', noop);
        st.pipe(st);
      });
      const a = p.client.openStream();
      a.on('error', noop);
      const data = randomBytes(4 * 1024 * 1024);
      const reading = readAll(a);
      a.end(data);
      const got = await reading;
      assert.equal(got.length, data.length);
      assert.ok(got.equals(data));
      await waitFor(() => p.client.numStreams === 0 && p.server.numStreams === 0, 5000, 'streams forgotten');
    });

    test('FIN both ways closes both streams and frees the ids', async () => {
      const p = await sessionPair();
      after(() => p.close());
      const accepted = nextStream(p.server);
      const a = p.client.openStream();
      a.end('from a');
      const b = await accepted;
      const gotB = readAll(b);
      assert.equal((await gotB).toString(), 'from a');
      b.end();
      assert.equal((await readAll(a)).length, 0);
      await Promise.all([a, b].map((x) => (x.closed ? undefined : once(x, 'close'))));
      assert.equal(p.client.numStreams, 0);
      assert.equal(p.server.numStreams, 0);
    });
  });

  test('smux inside smux: an inner v2 session over an outer v1 stream', async () => {
    const outer = await sessionPair({ version: 1 });
    after(() => outer.close());
    const acceptedOuter = nextStream(outer.server);
    const outerA = outer.client.openStream();
    const outerB = await acceptedOuter;
    const innerClient = new Session(outerA, { client: true });
    const innerServer = new Session(outerB, { client: false });
    after(() => {
      innerClient.destroy();
      innerServer.destroy();
    });
    innerServer.on('stream', (st) => {
      st.on('error', noop);
      st.pipe(st);
    });
    const results = await Promise.all(
      Array.from({ length: 50 }, async () => {
        const st = innerClient.openStream();
        st.on('error', noop);
        const data = randomBytes(256 * 1024);
        const parts: Buffer[] = [];
        let got = 0;
        await new Promise<void>((resolve) => {
          st.on('data', (d: Buffer) => {
            parts.push(d);
            got += d.length;
            if (got >= data.length) resolve();
          });
          st.write(data);
        });
        st.destroy();
        return Buffer.concat(parts).equals(data);
      }),
    );
    assert.equal(results.filter(Boolean).length, 50);
    // Closing the inner session closes its outer stream, not the outer session.
    const outerClosed = once(outerA, 'close');
    innerClient.close();
    await outerClosed;
    assert.equal(outer.client.isClosed, false);
  });

  test('a version mismatch kills both sessions', async () => {
    const [a, b] = await tcpPair();
    const s1 = new Session(a, { client: true, config: { version: 1 } });
    const s2 = new Session(b, { client: false, config: { version: 2 } });
    s2.on('stream', noop);
    const c2 = once(s2, 'close');
    const c1 = once(s1, 'close');
    s1.openStream().on('error', noop);
    const [err] = (await c2) as [Error];
    assert.equal((err as { kind?: string }).kind, 'bad_version');
    await c1;
  });

  for (const [what, config, windows] of [
    ['gost\'s 1 MiB window first, then twice that', {}, [1_048_576, 2_097_152]],
    ['gost\'s 1 MiB window throughout when mux.maxStreamBuffer is gost\'s', { maxStreamBuffer: 1_048_576 }, [1_048_576, 1_048_576]],
  ] as const) {
    test(`UPD frames on the wire carry consumed = bytes read and ${what}`, async () => {
      const [raw, sock] = await tcpPair();
      after(() => raw.destroy());
      const s = new Session(sock, { client: false, config });
      after(() => s.destroy());
      const upds: [number, number, number][] = [];
      const syns: number[] = [];
      const dec = new FrameDecoder(2, (cmd, sid, data) => {
        if (cmd === CMD_UPD) upds.push([sid, data.readUInt32LE(0), data.readUInt32LE(4)]);
        if (cmd === CMD_SYN) syns.push(sid);
      });
      raw.on('data', (d: Buffer) => dec.push(d));
      let read = 0;
      s.on('stream', (st) => st.on('error', noop).on('data', (d: Buffer) => (read += d.length)));
      raw.write(encodeFrame(2, CMD_SYN, 3));
      raw.write(encodeFrame(2, CMD_PSH, 3, Buffer.alloc(36)));
      await waitFor(() => upds.length === 1, 30_000, 'first UPD');
      assert.deepEqual(upds, [[3, 36, windows[0]]]);
      for (let i = 0; i < 20; i++) raw.write(encodeFrame(2, CMD_PSH, 3, Buffer.alloc(32768)));
      await waitFor(() => read === 36 + 20 * 32768, 30_000, 'all read');
      // The UPDs for those reads are on their way; a SYN sent now goes out behind them on the
      // same connection, so once it arrives every UPD sent for the reads above has arrived too.
      s.openStream().on('error', noop);
      await waitFor(() => syns.length === 1, 30_000, 'the SYN sent after the reads');
      // 20 × 32 KiB = 640 KiB read after the first UPD: exactly one more, once ≥ 512 KiB more was read.
      assert.equal(upds.length, 2);
      assert.equal(upds[1]![1], 36 + 16 * 32768);
      assert.equal(upds[1]![2], windows[1]);
    });
  }
});
