/**
 * Accepted tcp sockets read through adaptive `onread` buffers (the listener moves each
 * accepted handle into a new socket before its first read). These checks cover what that
 * move could break: bytes in order, backpressure from a reader that stops, resets, and the
 * listener's own bookkeeping.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Metadata } from '../../../src/core/metadata';
import type { Conn } from '../../../src/core/transport';
import { TcpListener } from '../../../src/transport/tcp/listener';
import { acceptWithAdaptiveReads } from '../../../src/transport/tcp/socket';
import { connect, memoryLogger, randomBytes, readAll, sha256, waitFor } from '../../helpers/net';

describe('tcp listener: accepted sockets', () => {
  const { logger } = memoryLogger('warn');
  let listener: TcpListener;
  let port = 0;
  const conns: Conn[] = [];

  before(async () => {
    listener = new TcpListener({ addr: '127.0.0.1:0', metadata: new Metadata({}), logger });
    await listener.listen((c) => conns.push(c));
    port = Number(listener.address().split(':')[1]);
  });
  after(async () => {
    await listener.close();
    for (const c of conns) c.stream.destroy();
  });

  async function accept(): Promise<{ client: net.Socket; server: net.Socket }> {
    const n = conns.length;
    const client = await connect(port);
    await waitFor(() => conns.length > n);
    return { client, server: conns[n]!.stream as net.Socket };
  }

  it('are plain net.Sockets with addresses, no delay and half-open', async () => {
    const { client, server } = await accept();
    // Neither address object stays cached on the socket, and the local address is asked of the
    // OS only when someone wants it (it is logged at debug level).
    const internals = server as unknown as { _sockname?: unknown; _peername?: unknown };
    assert.ok(!internals._sockname, 'the local address was read before anyone asked for it');
    assert.ok(!internals._peername, 'the peer address object stays cached on the socket');
    assert.ok(server instanceof net.Socket);
    assert.equal(conns.at(-1)!.remote, `127.0.0.1:${client.localPort}`);
    assert.equal(conns.at(-1)!.local, `127.0.0.1:${port}`);
    assert.equal(server.remotePort, client.localPort, 'the peer address can still be read');
    assert.equal(server.allowHalfOpen, true);
    client.destroy();
  });

  it('deliver 32 MiB in order, in reads larger than 64 KiB under load', async () => {
    const { client, server } = await accept();
    const data = randomBytes(32 * 1024 * 1024);
    let largest = 0;
    server.on('data', (c: Buffer) => {
      if (c.length > largest) largest = c.length;
    });
    const got = readAll(server);
    client.end(data);
    assert.equal(sha256(await got), sha256(data));
    assert.ok(largest > 64 * 1024, `largest read ${largest} bytes`);
    server.destroy();
  });

  it('a reader that stops stops the reads (the writer stalls), then everything arrives', async () => {
    const { client, server } = await accept();
    server.pause();
    const chunk = randomBytes(1024 * 1024);
    let written = 0;
    // Write until the client's own buffer is full and stays full.
    for (;;) {
      const more = client.write(chunk);
      written += chunk.length;
      if (!more) {
        const drained = await Promise.race([
          new Promise<boolean>((r) => client.once('drain', () => r(true))),
          new Promise<boolean>((r) => setTimeout(() => r(false), 300)),
        ]);
        if (!drained) break;
      }
      assert.ok(written < 256 * 1024 * 1024, 'the writer never stalled');
    }
    // What the server holds is bounded by its buffer and the kernel's, not by what was sent.
    assert.ok(server.readableLength <= 2 * 1024 * 1024, `server buffered ${server.readableLength} bytes`);
    const got = readAll(server);
    server.resume();
    client.end();
    assert.equal((await got).length, written);
    server.destroy();
  });

  it('half-close: the server reads to EOF and still answers', async () => {
    const { client, server } = await accept();
    server.on('end', () => server.end('bye'));
    const reply = readAll(client);
    server.resume();
    client.end('hello');
    assert.equal((await reply).toString(), 'bye');
  });

  it('a reset by the client reaches the server as an error or close', async () => {
    const { client, server } = await accept();
    const done = new Promise<string>((resolve) => {
      server.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      server.once('close', () => resolve('close'));
    });
    server.resume();
    client.resetAndDestroy();
    const how = await done;
    assert.ok(how === 'ECONNRESET' || how === 'close', how);
    await waitFor(() => server.destroyed);
  });

  it('destroying the server side ends the client side', async () => {
    const { client, server } = await accept();
    const ended = new Promise<string>((resolve) => {
      client.once('end', () => resolve('end'));
      client.once('error', () => resolve('error'));
    });
    client.resume();
    server.destroy();
    assert.ok(['end', 'error'].includes(await ended));
    client.destroy();
  });

  it('keep the server\'s connection count, so close() completes once they are gone', async () => {
    const server = net.createServer({ allowHalfOpen: true });
    const got: net.Socket[] = [];
    server.on('connection', () => assert.fail('the connection event fired: the accept hook is not in place'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    assert.equal(acceptWithAdaptiveReads(server, { allowHalfOpen: true, highWaterMark: 65536 }, (s) => got.push(s)), true);
    const p = (server.address() as net.AddressInfo).port;
    const clients = await Promise.all([connect(p), connect(p)]);
    await waitFor(() => got.length === 2);
    const count = (): Promise<number> => new Promise((r, j) => server.getConnections((e, n) => (e ? j(e) : r(n))));
    assert.equal(await count(), 2);
    assert.ok(got.every((s) => (s as unknown as { server: net.Server }).server === server && s.allowHalfOpen));
    const closed = new Promise<void>((r) => server.close(() => r()));
    got[0]!.destroy();
    await waitFor(async () => (await count()) === 1);
    let done = false;
    void closed.then(() => (done = true));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(done, false, 'close() completed while a connection was still open');
    got[1]!.destroy();
    await closed;
    for (const c of clients) c.destroy();
  });
});
