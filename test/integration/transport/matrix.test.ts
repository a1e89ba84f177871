/**
 * The same behaviour checks over every stream transport (tcp, tls, ws, wss): a listener on
 * 127.0.0.1:0 and the matching dialer, real sockets only.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Duplex } from 'node:stream';
import { Metadata } from '../../../src/core/metadata';
import type { Conn, Dialer, StreamListener } from '../../../src/core/transport';
import { DIALERS, LISTENERS } from '../../../src/transport';
import { makeCa, makeCert, type CertFiles, type TestCa } from '../../helpers/certs';
import { memoryLogger, randomBytes, readAll, readN, sha256, waitFor } from '../../helpers/net';

const KINDS = ['tcp', 'tls', 'ws', 'wss'] as const;
/** Transports with a real half-close (ws has none: a close frame ends both directions). */
const HALF_CLOSE = new Set(['tcp', 'tls']);

type Mode = 'echo' | 'half-close' | 'hold';

let ca: TestCa;
let serverCert: CertFiles;

before(async () => {
  ca = await makeCa();
  serverCert = await makeCert(ca, { cn: 'localhost', san: ['localhost', '127.0.0.1'] });
});
after(async () => {
  await ca?.cleanup();
});

/** Ends when the stream can no longer deliver data: 'end', 'error' or 'close'. */
function whenDone(s: Duplex): Promise<string> {
  return new Promise((resolve) => {
    if (s.readableEnded) return resolve('end');
    if (s.destroyed) return resolve('close');
    s.once('end', () => resolve('end'));
    s.once('error', () => resolve('error'));
    s.once('close', () => resolve('close'));
  });
}

for (const kind of KINDS) {
  describe(`${kind} transport`, () => {
    const { logger } = memoryLogger('warn');
    let listener: StreamListener;
    let dialer: Dialer;
    let mode: Mode = 'echo';
    const serverConns: Conn[] = [];
    const clientConns: Conn[] = [];

    before(async () => {
      listener = LISTENERS[kind]!({
        addr: '127.0.0.1:0',
        metadata: new Metadata({}),
        tls: { certFile: serverCert.certFile, keyFile: serverCert.keyFile },
        logger,
      });
      await listener.listen((conn) => {
        serverConns.push(conn);
        conn.stream.on('error', () => undefined);
        if (mode === 'echo') conn.stream.pipe(conn.stream);
        else if (mode === 'half-close') {
          // Read the whole request (to EOF), then answer and end.
          void readAll(conn.stream).then(
            (req) => conn.stream.end(Buffer.concat([Buffer.from(sha256(req)), Buffer.from('\n')])),
            () => undefined,
          );
        }
      });
      dialer = DIALERS[kind]!({ metadata: new Metadata({}), logger });
    });

    after(async () => {
      await listener.close();
      for (const c of [...serverConns, ...clientConns]) c.stream.destroy();
      await dialer.close?.();
    });

    async function dial(): Promise<Conn> {
      const conn = await dialer.dial(listener.address());
      clientConns.push(conn);
      conn.stream.on('error', () => undefined);
      return conn;
    }

    it('binds to the asked address and reports the real port', () => {
      assert.match(listener.address(), /^127\.0\.0\.1:\d+$/);
      assert.notEqual(listener.address(), '127.0.0.1:0');
    });

    it('echoes 4 MiB both ways intact', async () => {
      mode = 'echo';
      const conn = await dial();
      const payload = randomBytes(4 * 1024 * 1024);
      const reading = readN(conn.stream, payload.length, 60_000);
      for (let off = 0; off < payload.length; off += 100_000) conn.stream.write(payload.subarray(off, off + 100_000));
      const back = await reading;
      assert.equal(back.length, payload.length);
      assert.equal(sha256(back), sha256(payload));
      conn.stream.destroy();
    });

    it('sets local and remote on both sides', async () => {
      mode = 'echo';
      const before = serverConns.length;
      const conn = await dial();
      await waitFor(() => serverConns.length > before, 5_000, 'server conn');
      const server = serverConns[serverConns.length - 1]!;
      assert.equal(conn.remote, listener.address());
      assert.match(conn.local, /^127\.0\.0\.1:\d+$/);
      assert.equal(server.local, listener.address());
      assert.equal(server.remote, conn.local);
      conn.stream.destroy();
    });

    it('carries 100 concurrent connections', async () => {
      mode = 'echo';
      await Promise.all(
        Array.from({ length: 100 }, async () => {
          const conn = await dial();
          const payload = randomBytes(32 * 1024);
          const reading = readN(conn.stream, payload.length, 30_000);
          conn.stream.write(payload);
          assert.equal(sha256(await reading), sha256(payload));
          conn.stream.destroy();
        }),
      );
    });

    if (HALF_CLOSE.has(kind)) {
      it('half-close: the peer reads to EOF and still answers', async () => {
        mode = 'half-close';
        const conn = await dial();
        const request = randomBytes(300_000);
        const reply = readAll(conn.stream);
        conn.stream.end(request);
        assert.equal((await reply).toString(), `${sha256(request)}\n`);
        conn.stream.destroy();
      });
    } else {
      it('end() is EOF for the peer (no half-close over WebSocket)', async () => {
        mode = 'hold';
        const before = serverConns.length;
        const conn = await dial();
        await waitFor(() => serverConns.length > before, 5_000, 'server conn');
        const server = serverConns[serverConns.length - 1]!;
        const got = readAll(server.stream);
        conn.stream.resume();
        conn.stream.end(Buffer.from('last words'));
        assert.equal((await got).toString(), 'last words');
        await waitFor(() => conn.stream.destroyed, 5_000, 'client stream closed');
      });
    }

    it('the server destroying a connection ends the client side', async () => {
      mode = 'hold';
      const before = serverConns.length;
      const conn = await dial();
      await waitFor(() => serverConns.length > before, 5_000, 'server conn');
      const done = whenDone(conn.stream);
      conn.stream.resume();
      serverConns[serverConns.length - 1]!.stream.destroy();
      assert.ok(['end', 'close', 'error'].includes(await done));
      conn.stream.destroy();
    });

    it('the client destroying a connection ends the server side', async () => {
      mode = 'hold';
      const before = serverConns.length;
      const conn = await dial();
      await waitFor(() => serverConns.length > before, 5_000, 'server conn');
      const server = serverConns[serverConns.length - 1]!;
      const done = whenDone(server.stream);
      server.stream.resume();
      conn.stream.destroy();
      assert.ok(['end', 'close', 'error'].includes(await done));
      server.stream.destroy();
    });

    it('closing the listener leaves accepted connections working', async () => {
      mode = 'echo';
      const conn = await dial();
      const probe = Buffer.from('still there?');
      let reading = readN(conn.stream, probe.length);
      conn.stream.write(probe);
      await reading;
      const addr = listener.address();
      await listener.close();
      await listener.close(); // idempotent
      reading = readN(conn.stream, probe.length);
      conn.stream.write(probe);
      assert.equal((await reading).toString(), probe.toString());
      await assert.rejects(dialer.dial(addr));
      conn.stream.destroy();
    });
  });
}
