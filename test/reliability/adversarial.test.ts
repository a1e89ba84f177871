/**
 * Bad input tried (real server process): adversarial peers against the entry point and the
 * tunnel port. Each attack must be bounded by a limit (a deadline or a buffer bound), must not
 * disturb another tunnel (a canary keeps requesting through one during every attack), and must
 * be logged at most once per peer (warn level and above; the attacks come from 127.0.0.2 and
 * 127.0.0.3, the canary from 127.0.0.1).
 *
 * Limits used here: `entrypoint.sniffTimeout=2s` (the entry point's deadline for a request
 * head), `readTimeout=2s` (the tunnel port's deadline for a relay request), `sendTimeout=2s`
 * (a tunnel client that takes no bytes while frames wait loses its session), smux windows and
 * socket buffers for peers that do not read.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { burrow, stopAll } from '../helpers/cli';
import { waitFor } from '../helpers/net';
import { buildBindRequest, buildConnectRequest, decodeResponse, encodeRequest } from '../../src/protocol/relay/message';
import { parseTunnelId } from '../../src/protocol/relay/tunnel-id';
import { CMD_CONNECT } from '../../src/protocol/relay/constants';
import { CMD_NOP, CMD_PSH, CMD_SYN, encodeFrame, encodeUpdFrame } from '../../src/protocol/smux/frame';
import { FrameDecoder } from '../../src/protocol/smux/decoder';
import { readRelayMessage } from '../../src/io/read-message';
import {
  LOCAL,
  connectTcp,
  established,
  newTid,
  rawExchange,
  request,
  rssOf,
  sleep,
  socketsOf,
  startClient,
  startOrigin,
  startServer,
  startTcpVisitor,
  type Origin,
  type ServerProc,
} from './support';

/** Resolves on 'drain' or after `ms`, whichever comes first, leaving no listener behind. */
function drainOrTimeout(s: NodeJS.WritableStream, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(t);
      s.removeListener('drain', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    s.once('drain', done);
  });
}

const TID_GOOD = newTid();
const TID_EVIL = newTid();
const PEERS = ['127.0.0.2', '127.0.0.3'];
const MiB = 1 << 20;

/** The fd limit this process (and so the server it spawns) runs with. */
function fdLimit(): number {
  try {
    return Number(execFileSync('sh', ['-c', 'ulimit -n']).toString().trim()) || 1024;
  } catch {
    return 1024;
  }
}
const IDLE = Math.min(10_000, Math.floor((fdLimit() - 2_000) / 100) * 100);

/** Cleanups of the running test (canaries, sockets, timers), run after each test. */
const cleanups: Array<() => unknown> = [];
function onCleanup(fn: () => unknown): void {
  cleanups.push(fn);
}

/** Requests through the good tunnel every 50 ms until stopped. */
function canary(ep: number): { stop(): Promise<{ n: number; failures: string[]; maxMs: number }> } {
  let running = true;
  let n = 0;
  let maxMs = 0;
  const failures: string[] = [];
  const loop = (async () => {
    while (running) {
      const t0 = Date.now();
      try {
        const r = await request(ep, { host: 'good.example.com', path: '/canary', timeoutMs: 60_000 });
        if (r.status !== 200) failures.push(`HTTP ${r.status}`);
      } catch (err) {
        failures.push((err as Error).message);
      }
      n++;
      maxMs = Math.max(maxMs, Date.now() - t0);
      await sleep(50);
    }
  })();
  const stop = async (): Promise<{ n: number; failures: string[]; maxMs: number }> => {
    // At least a few requests, however short the attack was.
    const deadline = Date.now() + 5_000;
    while (n < 3 && Date.now() < deadline) await sleep(20);
    running = false;
    await loop;
    return { n, failures, maxMs };
  };
  onCleanup(stop);
  return { stop };
}

/** The canary's requests all succeeded; returns the slowest one's duration (ms), for a diagnostic. */
async function assertCanary(c: ReturnType<typeof canary>, what: string): Promise<number> {
  const r = await c.stop();
  assert.ok(r.n >= 3, `${what}: only ${r.n} canary requests`);
  assert.deepEqual(r.failures, [], `${what}: the other tunnel failed`);
  // How long they took is the bench's business; here they must succeed.
  return r.maxMs;
}

/** Resolves when the peer ends or closes the connection (our side may allow half-open). */
function gone(s: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (s.destroyed || s.readableEnded) return resolve();
    s.once('end', () => resolve());
    s.once('close', () => resolve());
  });
}

/**
 * Slowloris: 40 connections to 127.0.0.1:`port` (from the two PEERS in turn), each writing
 * `piece(k)` every 100 ms for k = 0, 1, … until it returns undefined. Resolves how long each
 * connection lived until the server closed it (Infinity: still open after 8 s).
 */
function trickle(port: number, piece: (k: number) => string | Buffer | undefined): Promise<number[]> {
  return Promise.all(
    Array.from({ length: 40 }, async (_, i) => {
      const s = await connectTcp(port, LOCAL, PEERS[i % 2]);
      s.on('error', () => undefined);
      const t0 = Date.now();
      let k = 0;
      const timer = setInterval(() => {
        const p = s.destroyed ? undefined : piece(k);
        if (p === undefined) return clearInterval(timer);
        s.write(p);
        k++;
      }, 100);
      return Promise.race([
        gone(s).then(() => Date.now() - t0),
        // A hang guard: the server cuts them at its 2 s deadline even though bytes keep coming.
        sleep(60_000).then(() => Infinity),
      ]).finally(() => {
        clearInterval(timer);
        s.destroy();
      });
    }),
  );
}

/** Opens `n` connections from `localAddress` in batches; returns them with close tracking. */
async function openMany(port: number, n: number, localAddress: string, batchSize: number): Promise<{ socks: net.Socket[]; closed: () => number }> {
  const socks: net.Socket[] = [];
  let closed = 0;
  for (let i = 0; i < n; i += batchSize) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(batchSize, n - i) }, () =>
        connectTcp(port, LOCAL, localAddress).then((s) => {
          s.on('error', () => undefined);
          void gone(s).then(() => closed++);
          return s;
        }),
      ),
    );
    socks.push(...batch);
  }
  return { socks, closed: () => closed };
}

/** A raw tunnel client: BIND, then the smux session is ours to misbehave with. */
async function rawBind(serverPort: number, tid: string, localAddress: string): Promise<{ sock: net.Socket; frames: Array<{ cmd: number; sid: number; data: Buffer }> }> {
  const sock = await connectTcp(serverPort, LOCAL, localAddress);
  sock.on('error', () => undefined);
  sock.write(buildBindRequest({ srcAddr: `${localAddress}:0`, bindAddr: ':0', tunnelId: parseTunnelId(tid), udp: false }));
  const resp = decodeResponse(await readRelayMessage(sock, 5_000));
  assert.equal(resp.status, 0);
  const frames: Array<{ cmd: number; sid: number; data: Buffer }> = [];
  const dec = new FrameDecoder(2, (cmd, sid, data) => frames.push({ cmd, sid, data: Buffer.from(data) }));
  sock.on('data', (c: Buffer) => dec.push(c));
  return { sock, frames };
}

/** A TCP source that writes 64 KiB chunks as fast as it is read, forever. */
async function firehose(): Promise<{ port: number; close(): Promise<void> }> {
  const socks = new Set<net.Socket>();
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const server = net.createServer((s) => {
    socks.add(s);
    s.on('error', () => undefined);
    s.on('close', () => socks.delete(s));
    const pump = (): void => {
      while (!s.destroyed && s.write(chunk));
    };
    s.on('drain', pump);
    pump();
  });
  await new Promise<void>((r) => server.listen(0, LOCAL, () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of socks) s.destroy();
        server.close(() => r());
      }),
  };
}

describe('adversarial peers', () => {
  let origin: Origin;
  let server: ServerProc;
  let hose: Awaited<ReturnType<typeof firehose>>;
  /** Where each attack's log lines start, by test. */
  const marks = new Map<string, number>();

  before(async () => {
    origin = await startOrigin();
    hose = await firehose();
    server = await startServer(
      // backlog=1024: the tunnel port's listen backlog (gost's default is 128, with which the
      // kernel itself drops part of a burst of 10,000 connects and retries them a second later).
      `tunnel=good.example.com:${TID_GOOD},evil.example.com:${TID_EVIL}&entrypoint.sniffTimeout=2s&readTimeout=2s&sendTimeout=2s&backlog=1024`,
      { name: 'server' },
    );
    const good = await startClient(server.port, TID_GOOD, `${LOCAL}:${origin.port}`, { name: 'good-client' });
    await established(server.proc, good.connector);
    assert.equal((await request(server.ep, { host: 'good.example.com' })).status, 200);
  });
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });
  after(async () => {
    await stopAll();
    await origin.close();
    await hose.close();
  });

  it('slowloris on the entry point: a request head trickled in is cut at entrypoint.sniffTimeout (2 s)', async () => {
    marks.set('slowloris-ep', server.proc.mark());
    const c = canary(server.ep);
    const head = 'GET / HTTP/1.1\r\nHost: good.example.com\r\nX-Slow: ';
    const lives = await trickle(server.ep, (k) => (k < head.length ? head[k]! : 'a'));
    await assertCanary(c, 'slowloris on the entry point');
    const worst = Math.max(...lives);
    assert.ok(worst !== Infinity, 'a trickling request head was not cut (entrypoint.sniffTimeout=2s)');
  });

  it('slowloris on the tunnel port: a relay request trickled in is cut at readTimeout (2 s)', async () => {
    marks.set('slowloris-tunnel', server.proc.mark());
    const c = canary(server.ep);
    const req = buildConnectRequest({ srcAddr: '1.2.3.4:5', dstAddr: 'good.example.com:80', tunnelId: parseTunnelId(TID_GOOD), udp: false });
    const lives = await trickle(server.port, (k) => (k >= req.length - 1 ? undefined : req.subarray(k, k + 1)));
    await assertCanary(c, 'slowloris on the tunnel port');
    const worst = Math.max(...lives);
    assert.ok(worst !== Infinity, 'a trickling relay request was not cut (readTimeout=2s)');
  });

  for (const where of ['entry point', 'tunnel port'] as const) {
    it(`${IDLE} connections that never send a byte (${where}) are closed at the deadline; the server gets its sockets back`, async (t) => {
      const key = `idle-${where}`;
      marks.set(key, server.proc.mark());
      const port = where === 'entry point' ? server.ep : server.port;
      const base = socketsOf(server.proc.pid);
      const c = canary(server.ep);
      const t0 = Date.now();
      // Both peers' batches together stay under the listen backlogs (entry point 511, tunnel
      // port 1024 here), so the kernel does not drop connects before the server accepts them.
      const sets = await Promise.all(PEERS.map((p) => openMany(port, IDLE / 2, p, 200)));
      onCleanup(() => {
        for (const set of sets) for (const x of set.socks) x.destroy();
      });
      const openedMs = Date.now() - t0;
      const rss = rssOf(server.proc.pid);
      await waitFor(() => sets.every((s) => s.closed() === IDLE / 2), 120_000, `all ${IDLE} idle connections closed by the server`).catch(
        (err: Error) => {
          throw new Error(`${err.message}: ${sets.map((s) => s.closed()).join(' + ')} closed`);
        },
      );
      const closedMs = Date.now() - t0;
      const canaryMs = await assertCanary(c, `${IDLE} idle connections on the ${where}`);
      await waitFor(() => socketsOf(server.proc.pid) <= base + 2, 60_000, `server sockets back to ${base}`);
      // Timings are reported, not asserted (they belong to the bench): a loaded machine is slower.
      t.diagnostic(
        `opened in ${openedMs} ms, all closed ${closedMs} ms after the first; slowest canary request ${canaryMs} ms; ` +
          `server RSS with them open ${(rss / MiB).toFixed(0)} MiB`,
      );
    });
  }

  it('a tunnel client that never reads the streams sent to it holds bounded server memory, its streams closed at sendTimeout', async () => {
    marks.set('unread-client', server.proc.mark());
    const evil = await rawBind(server.port, TID_EVIL, PEERS[0]!);
    evil.sock.pause(); // never read again
    const nop = setInterval(() => evil.sock.write(encodeFrame(2, CMD_NOP, 0)), 200);
    onCleanup(() => {
      clearInterval(nop);
      evil.sock.destroy();
    });
    const rss0 = rssOf(server.proc.pid);
    const c = canary(server.ep);
    const v = await startTcpVisitor(server.port, TID_EVIL, 'evil.example.com:80', { name: 'visitor-evil' });
    const pushers = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const s = await connectTcp(v.port);
        s.on('error', () => undefined);
        let written = 0;
        const chunk = Buffer.alloc(MiB, 1);
        const go = async (): Promise<void> => {
          while (written < 32 * MiB && !s.destroyed) {
            written += MiB;
            if (!s.write(chunk)) await drainOrTimeout(s, 200);
          }
        };
        void go();
        onCleanup(() => s.destroy());
        return { s, written: () => written };
      }),
    );
    await sleep(3_000);
    const grown = rssOf(server.proc.pid) - rss0;
    // It keeps sending NOPs, so keepalive cannot tell; the send timeout (2 s here) frees the
    // streams it does not read (and its whole session if its connection stops taking bytes).
    await waitFor(
      () =>
        server.proc.lines
          .slice(marks.get('unread-client'))
          .some((l) => /client took no bytes|client stopped reading/.test(String(l.msg)) && JSON.stringify(l).includes(PEERS[0]!)),
      10_000,
      'the server to give up on the streams of the client that does not read',
    );
    await assertCanary(c, 'a client that never reads');
    const accepted = pushers.reduce((n, p) => n + p.written(), 0);
    assert.ok(accepted < 4 * 32 * MiB, 'all 128 MiB were accepted for a client that reads nothing');
    assert.ok(grown < 48 * MiB, `server RSS grew by ${(grown / MiB).toFixed(1)} MiB`);
  });

  it('visitors that never read their downloads hold bounded server memory; other tunnels flow', async (t) => {
    marks.set('unread-visitors', server.proc.mark());
    const tid = newTid();
    const srv2 = await startServer(`tunnel=hose.example.com:${tid},good.example.com:${TID_GOOD}`, { name: 'server-hose' });
    const hc = await startClient(srv2.port, tid, `${LOCAL}:${hose.port}`, { name: 'hose-client' });
    const gc = await startClient(srv2.port, TID_GOOD, `${LOCAL}:${origin.port}`, { name: 'good-client-2' });
    await Promise.all([established(srv2.proc, hc.connector), established(srv2.proc, gc.connector)]);
    const v = await startTcpVisitor(srv2.port, tid, 'hose.example.com:80', { name: 'visitor-hose' });
    const c = canary(srv2.ep);
    // What the stalled visitors cost, not the fresh server's warm-up: the same path first
    // carries 32 MiB to a visitor that reads, while the canary runs.
    const warm = await connectTcp(v.port);
    let warmed = 0;
    warm.on('data', (d: Buffer) => (warmed += d.length));
    await waitFor(() => warmed >= 32 * MiB, 60_000, '32 MiB for the warm-up reader');
    warm.destroy();
    await sleep(500);
    const rss0 = rssOf(srv2.proc.pid);
    const readers = await Promise.all(Array.from({ length: 8 }, () => connectTcp(v.port)));
    for (const r of readers) {
      r.on('error', () => undefined);
      r.pause();
      onCleanup(() => r.destroy());
    }
    await sleep(3_000);
    const grown = rssOf(srv2.proc.pid) - rss0;
    t.diagnostic(`server RSS grew by ${(grown / MiB).toFixed(1)} MiB`);
    await assertCanary(c, 'visitors that never read');
    assert.ok(grown < 48 * MiB, `server RSS grew by ${(grown / MiB).toFixed(1)} MiB`);
  });

  it(
    'visitors that never read their downloads do not stall the other visitors of the same tunnel',
    async () => {
      const tid = newTid();
      const srv3 = await startServer(`tunnel=hose.example.com:${tid}`, { name: 'server-hose-2' });
      // One client process serves both: the firehose by default, the origin for web.hose.example.com.
      const cl = burrow(
        ['-L', `rtcp://:0/${LOCAL}:${hose.port}`, '-F', `tunnel://${LOCAL}:${srv3.port}?tunnel.id=${tid}`],
        { name: 'hose-client-2' },
      );
      const line = await cl.tunnelCreated();
      await established(srv3.proc, /connector=([0-9a-f-]+)/.exec(String(line.msg))![1]!);
      const v = await startTcpVisitor(srv3.port, tid, 'hose.example.com:80', { name: 'visitor-hose-2' });
      const stalled = await Promise.all(Array.from({ length: 16 }, () => connectTcp(v.port)));
      for (const r of stalled) {
        r.on('error', () => undefined);
        r.pause();
        onCleanup(() => r.destroy());
      }
      // Long enough for the socket buffers on the way to fill up.
      await sleep(3_000);
      try {
        // Another visitor of the same tunnel reads its download normally.
        const s = await connectTcp(v.port);
        let got = 0;
        s.on('data', (c: Buffer) => (got += c.length));
        await waitFor(() => got >= 4 * MiB, 60_000, '4 MiB for a visitor that reads');
        s.destroy();
      } finally {
        for (const r of stalled) r.destroy();
      }
    },
  );

  it('a window update that overflows the window or claims more than was sent does not hurt the server or other tunnels', async () => {
    marks.set('upd-overflow', server.proc.mark());
    const evil = await rawBind(server.port, TID_EVIL, PEERS[1]!);
    const nop = setInterval(() => evil.sock.write(encodeFrame(2, CMD_NOP, 0)), 200);
    onCleanup(() => {
      clearInterval(nop);
      evil.sock.destroy();
    });
    const c = canary(server.ep);
    {
      const v = await startTcpVisitor(server.port, TID_EVIL, 'evil.example.com:80', { name: 'visitor-upd' });
      const visitors: net.Socket[] = [];
      for (const [consumed, window] of [
        [0xffffffff, 0xffffffff],
        [0x80000000, 0x7fffffff],
        [0, 0xffffffff],
      ] as const) {
        const n = evil.frames.filter((f) => f.cmd === CMD_SYN).length;
        const s = await connectTcp(v.port);
        s.on('error', () => undefined);
        visitors.push(s);
        s.write(Buffer.alloc(512 * 1024, 3));
        await waitFor(() => evil.frames.filter((f) => f.cmd === CMD_SYN).length > n, 60_000, 'a SYN from the server');
        const sid = evil.frames.filter((f) => f.cmd === CMD_SYN)[n]!.sid;
        evil.sock.write(encodeUpdFrame(2, sid, consumed, window));
        evil.sock.write(encodeFrame(2, CMD_PSH, sid, Buffer.from('hello from the bad client')));
      }
      await sleep(1_000);
      // The session is still usable: a new visitor still gets a stream on it.
      const n = evil.frames.filter((f) => f.cmd === CMD_SYN).length;
      const s = await connectTcp(v.port);
      s.on('error', () => undefined);
      await waitFor(() => evil.frames.filter((f) => f.cmd === CMD_SYN).length > n, 60_000, 'a SYN after the bad updates');
      s.destroy();
      for (const x of visitors) x.destroy();
      assert.ok(server.proc.alive);
    }
    await assertCanary(c, 'window update overflow');
  });

  it('a SYN flood of smux streams from a tunnel client is absorbed with bounded memory; other tunnels flow', async () => {
    marks.set('syn-flood', server.proc.mark());
    const evil = await rawBind(server.port, TID_EVIL, PEERS[0]!);
    evil.sock.pause();
    onCleanup(() => evil.sock.destroy());
    const rss0 = rssOf(server.proc.pid);
    const c = canary(server.ep);
    const batch = Buffer.concat(Array.from({ length: 1000 }, (_, i) => encodeFrame(2, CMD_SYN, 2 * (i + 1))));
    let sent = 0;
    for (let k = 0; k < 200; k++) {
      // Stream ids 2, 4, … 2000 again and again: 200,000 SYNs.
      if (!evil.sock.write(batch)) await drainOrTimeout(evil.sock, 200);
      sent += 1000;
    }
    await sleep(1_000);
    const grown = rssOf(server.proc.pid) - rss0;
    await assertCanary(c, 'SYN flood');
    evil.sock.destroy();
    assert.ok(server.proc.alive);
    assert.ok(grown < 64 * MiB, `server RSS grew by ${(grown / MiB).toFixed(1)} MiB after ${sent} SYNs`);
  });

  it('oversized headers: 431 at the entry point, a relay request over the limit is dropped; other tunnels flow', async () => {
    marks.set('oversized', server.proc.mark());
    const c = canary(server.ep);
    const big = `GET / HTTP/1.1\r\nHost: good.example.com\r\nX-Big: ${'a'.repeat(100 * 1024)}\r\n\r\n`;
    const r = await rawExchange(server.ep, big, 5_000, PEERS[0]);
    assert.match(r.data.toString('latin1'), /^HTTP\/1\.1 431 /);
    // A relay request whose features fill the whole 16-bit length: 65,535 bytes of junk.
    const junk = encodeRequest({ cmd: CMD_CONNECT, flags: 0, features: [] });
    const huge = Buffer.concat([junk.subarray(0, 2), Buffer.from([0xff, 0xff]), Buffer.alloc(65535, 0xee)]);
    const x = await rawExchange(server.port, huge, 5_000, PEERS[1]);
    assert.ok(x.closedAfterMs !== undefined, 'the server kept a connection with an oversized relay request open');
    assert.equal(x.data.length, 0);
    await assertCanary(c, 'oversized headers');
  });

  it('every attack above is logged once per attacking peer (warn level), naming its limit', () => {
    // The limit each attack hits, by attacking peer. A warning is one per peer and limit a
    // minute, so an attack on a limit the same peer already hit moments ago may be logged by
    // the earlier attack's line; it must never be logged more than once.
    const limits: Record<string, Record<string, RegExp>> = {
      'slowloris-ep': { [PEERS[0]!]: /entrypoint\.sniffTimeout/, [PEERS[1]!]: /entrypoint\.sniffTimeout/ },
      'slowloris-tunnel': { [PEERS[0]!]: /limit: readTimeout/, [PEERS[1]!]: /limit: readTimeout/ },
      'idle-entry point': { [PEERS[0]!]: /entrypoint\.sniffTimeout/, [PEERS[1]!]: /entrypoint\.sniffTimeout/ },
      'idle-tunnel port': { [PEERS[0]!]: /limit: readTimeout/, [PEERS[1]!]: /limit: readTimeout/ },
      'unread-client': { [PEERS[0]!]: /limit: sendTimeout/ },
      'upd-overflow': { [PEERS[1]!]: /limit: smux protocol/ },
      'syn-flood': { [PEERS[0]!]: /limit: streams opened by a client/ },
      oversized: { [PEERS[0]!]: /limit: request head size/, [PEERS[1]!]: /limit: relay request (size|format)/ },
    };
    const keys = [...marks.keys()];
    assert.ok(Object.keys(limits).every((k) => marks.has(k)), 'run the whole file: every attack sets its mark');
    const warnedIn = (k: string): Array<{ text: string }> => {
      const i = keys.indexOf(k);
      const from = marks.get(k)!;
      const to = i + 1 < keys.length ? marks.get(keys[i + 1]!)! : server.proc.lines.length;
      return server.proc.lines
        .slice(from, to)
        .filter((l) => l.level === 'warn' || l.level === 'error' || l.level === 'fatal')
        .map((l) => ({ text: JSON.stringify(l) }));
    };
    const report: string[] = [];
    const seenSoFar: string[] = [];
    for (const k of keys) {
      const lines = warnedIn(k).map((l) => l.text);
      seenSoFar.push(...lines);
      for (const [peer, limit] of Object.entries(limits[k] ?? {})) {
        const mine = lines.filter((t) => t.includes(`"${peer}`) || t.includes(`${peer}:`) || t.includes(`from ${peer} `));
        if (mine.length > 1) report.push(`${k}: ${mine.length} warnings for ${peer}: ${mine.join(' | ')}`);
        if (!seenSoFar.some((t) => t.includes(peer) && limit.test(t))) report.push(`${k}: no warning for ${peer} naming ${limit}`);
      }
    }
    assert.deepEqual(report, []);
  });
});
