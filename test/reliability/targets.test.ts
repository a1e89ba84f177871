/**
 * Faults survived: bad targets behind a client, and a bad server name. A target that refuses
 * connections or whose name does not resolve makes the entry point answer 503 and a TCP visitor
 * see its connection closed at once; a target that answers too late gets 503 after
 * `entrypoint.readTimeout`; a target that stops reading holds only its own stream (bounded
 * memory) while the rest of the tunnel flows. The tunnel (connector, session, process) survives
 * all of it.
 *
 * The unresolvable name is a 64-character label (longer than DNS allows), which the resolver
 * rejects locally (ENOTFOUND) without sending a query.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { burrow, stopAll, type BurrowProcess } from '../helpers/cli';
import { listenLocal, tunnelClientYaml, type LocalServer, type TargetNode } from '../helpers/local';
import { listenEcho, randomBytes, waitFor, type TestServer } from '../helpers/net';
import {
  LOCAL,
  connectTcp,
  newTid,
  rawExchange,
  request,
  rssOf,
  sha,
  socketsOf,
  startOrigin,
  startServer,
  startTcpVisitor,
  startYamlClient,
  tcpEcho,
  type Origin,
  type ServerProc,
} from './support';

const TID = newTid();
const BAD_NAME = `${'a'.repeat(64)}.invalid`;
/** The client's sendTimeout here (60 s by default). */
const SEND_TIMEOUT_S = 3;

/** A target that accepts and never reads nor answers. */
async function blackHole(): Promise<LocalServer> {
  const server = net.createServer({ pauseOnConnect: true }, (s) => {
    s.on('error', () => undefined);
  });
  return listenLocal(server);
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, LOCAL, () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** The client: one rtcp service with the given nodes, and this file's sendTimeout. */
function clientYaml(serverPort: number, nodes: TargetNode[]): string {
  return tunnelClientYaml(serverPort, TID, [{ name: 'client', type: 'rtcp', handlerMetadata: { sendTimeout: `${SEND_TIMEOUT_S}s` }, nodes }]);
}

describe('bad targets and names', () => {
  let origin: Origin;
  let echo: TestServer;
  let hole: Awaited<ReturnType<typeof blackHole>>;
  let server: ServerProc;
  let client: BurrowProcess;
  /** The client's open sockets when idle (its session to the server). */
  let clientSockets = 0;

  before(async () => {
    origin = await startOrigin();
    echo = await listenEcho();
    hole = await blackHole();
    server = await startServer(`tunnel=.example.com:${TID}&entrypoint.readTimeout=1s`, { name: 'server' });
    ({ proc: client } = await startYamlClient(
      server,
      'targets-client.yaml',
      clientYaml(server.port, [
        { name: 'good', addr: `${LOCAL}:${origin.port}`, host: 'good.example.com' },
        { name: 'refused', addr: `${LOCAL}:${await closedPort()}`, host: 'refused.example.com' },
        { name: 'dns', addr: `${BAD_NAME}:80`, host: 'dns.example.com' },
        { name: 'full', addr: `${LOCAL}:${hole.port}`, host: 'full.example.com' },
        { name: 'echo', addr: `${LOCAL}:${echo.port}` },
      ]),
    ));
    clientSockets = socketsOf(client.pid);
  });
  after(async () => {
    await stopAll();
    await Promise.all([origin.close(), echo.close(), hole.close()]);
  });

  /** The connector is the one registered at the start, the client never re-registered. */
  function tunnelSurvived(): void {
    assert.equal(server.proc.count((l) => /^remove connector: /.test(String(l.msg))), 0, 'the connector was removed');
    assert.equal(client.count((l) => /^create tunnel on /.test(String(l.msg))), 1, 'the client had to register again');
    assert.ok(client.alive && server.proc.alive);
  }

  it('a target that refuses connections: 503 at the entry point, an immediate close for a TCP visitor', async () => {
    const t0 = Date.now();
    const r = await request(server.ep, { host: 'refused.example.com', path: '/' });
    assert.equal(r.status, 503);
    assert.equal(r.body.length, 0);
    assert.ok(Date.now() - t0 < 60_000, `503 after ${Date.now() - t0} ms`);
    const v = await startTcpVisitor(server.port, TID, 'refused.example.com:80', { name: 'visitor-refused' });
    const x = await rawExchange(v.port, 'hello', 3_000);
    assert.ok(x.closedAfterMs !== undefined && x.closedAfterMs < 60_000, `closed after ${x.closedAfterMs} ms`);
    assert.equal(x.data.length, 0);
    assert.equal((await request(server.ep, { host: 'good.example.com', path: '/still' })).status, 200);
    tunnelSurvived();
  });

  it('a forwarder node whose name does not resolve: 503 at the entry point, an immediate close for a TCP visitor', async () => {
    const r = await request(server.ep, { host: 'dns.example.com', path: '/' });
    assert.equal(r.status, 503);
    const v = await startTcpVisitor(server.port, TID, 'dns.example.com:80', { name: 'visitor-dns' });
    const x = await rawExchange(v.port, 'hello', 3_000);
    assert.ok(x.closedAfterMs !== undefined && x.closedAfterMs < 60_000, `closed after ${x.closedAfterMs} ms`);
    assert.ok(client.filter((l) => /ENOTFOUND/.test(String(l.msg))).length >= 1, 'the client logged the resolution failure');
    assert.equal((await request(server.ep, { host: 'good.example.com', path: '/still' })).status, 200);
    tunnelSurvived();
  });

  it('a server name that does not resolve: the visitor closes at once, the client keeps retrying', async () => {
    const bad = burrow(['-L', `tcp://${LOCAL}:0/good.example.com:80`, '-F', `tunnel://${BAD_NAME}:8443?tunnel.id=${TID}`], { name: 'visitor-dns-server' });
    const port = await bad.listeningPort();
    const x = await rawExchange(port, 'hello', 3_000);
    assert.ok(x.closedAfterMs !== undefined && x.closedAfterMs < 60_000, `closed after ${x.closedAfterMs} ms`);
    assert.equal(x.data.length, 0);
    assert.ok(bad.alive);
    const c = burrow(['-L', `rtcp://:0/${LOCAL}:${origin.port}`, '-F', `tunnel://${BAD_NAME}:8443?tunnel.id=${TID}`], { name: 'client-dns-server' });
    await c.waitForMsg(/ENOTFOUND.*retrying in \d+ms$/, { timeoutMs: 60_000 });
    await c.waitFor(() => c.count((l) => /retrying in \d+ms$/.test(String(l.msg))) >= 2, { timeoutMs: 60_000, what: 'a second retry' });
    assert.ok(c.alive);
  });

  it('a target that answers too late: 503 after entrypoint.readTimeout', async () => {
    const t0 = Date.now();
    const r = await request(server.ep, { host: 'good.example.com', path: '/slowhead?delay=3000' });
    const ms = Date.now() - t0;
    assert.equal(r.status, 503);
    assert.ok(ms >= 900 && ms < 60_000, `503 after ${ms} ms with entrypoint.readTimeout=1s`);
    assert.equal((await request(server.ep, { host: 'good.example.com', path: '/still' })).status, 200);
    tunnelSurvived();
  });

  it('a target that never reads: 503 after entrypoint.readTimeout for an HTTP upload, the stream alone stalls, memory stays bounded', async () => {
    const t0 = Date.now();
    const r = await request(server.ep, { host: 'full.example.com', path: '/upload', body: randomBytes(8 << 20) }).catch((e: Error) => e);
    const ms = Date.now() - t0;
    assert.ok(!(r instanceof Error), `the upload failed instead of getting a status: ${(r as Error).message}`);
    assert.equal(r.status, 503);
    assert.ok(ms < 60_000, `503 after ${ms} ms`);

    // A TCP visitor pushes 48 MiB at the black hole while another stream of the same client
    // echoes 4 MiB: the echo completes, the server buffers only a bounded amount.
    const rss0 = rssOf(server.proc.pid);
    const v = await startTcpVisitor(server.port, TID, 'full.example.com:80', { name: 'visitor-full' });
    const sock = await connectTcp(v.port);
    sock.on('error', () => undefined);
    let written = 0;
    const chunk = Buffer.alloc(1 << 20, 7);
    const push = async (): Promise<void> => {
      while (written < 48 << 20 && !sock.destroyed) {
        written += chunk.length;
        // Only backpressure stops it (no timer: how long the rest of the case takes must not matter).
        if (!sock.write(chunk)) await new Promise<void>((res) => { sock.once('drain', res); sock.once('close', res); });
      }
    };
    void push();
    await waitFor(() => hole.sockets.size > 0, 60_000, 'the black hole to be reached');
    await new Promise((res) => setTimeout(res, 1_000));
    const echoVisitor = await startTcpVisitor(server.port, TID, 'other.example.com:7', { name: 'visitor-echo' });
    const data = randomBytes(4 << 20);
    const back = await tcpEcho(echoVisitor.port, data, 15_000);
    assert.equal(sha(back), sha(data));
    const grown = rssOf(server.proc.pid) - rss0;
    assert.ok(written < 48 << 20, 'the whole 48 MiB went into a target that reads nothing');
    assert.ok(grown < 32 << 20, `server RSS grew by ${(grown / 2 ** 20).toFixed(1)} MiB while a target read nothing`);
    sock.destroy();
    tunnelSurvived();
  });

  it(
    `a stream stalled on a target that never reads is released after sendTimeout (${SEND_TIMEOUT_S} s here), though its visitor's FIN cannot be seen`,
    async () => {
      // The black hole cannot tell (it reads nothing, so it never sees a FIN): count the client's sockets.
      await waitFor(() => socketsOf(client.pid) <= clientSockets, 12_000, `the client's sockets back to ${clientSockets}`).catch((err: Error) => {
        throw new Error(`${err.message} (now ${socketsOf(client.pid)})`);
      });
      assert.ok(
        client.filter((l) => /send timeout: the far side took no bytes for 3000 ms \(sendTimeout\)/.test(String(l.msg))).length >= 1,
        'the client logged why it closed the stream',
      );
      tunnelSurvived();
    },
  );

  it(
    'several targets that never read do not stall the other streams of the tunnel',
    async () => {
    // Each stalled stream may hold its window (mux.maxStreamBuffer, 1 MiB) in the receiving
    // session; the session's budget (mux.maxReceiveBuffer, 4 MiB) must not let a handful of
    // them stop every other stream of the connector.
    const stalled: net.Socket[] = [];
    const v = await startTcpVisitor(server.port, TID, 'full.example.com:80', { name: 'visitor-full-6' });
    for (let i = 0; i < 6; i++) {
      const s = await connectTcp(v.port);
      s.on('error', () => undefined);
      for (let k = 0; k < 8; k++) s.write(Buffer.alloc(1 << 20, k));
      stalled.push(s);
    }
    try {
      await waitFor(() => hole.sockets.size >= 6, 60_000, 'six streams at the black hole');
      await new Promise((res) => setTimeout(res, 1_000));
      const echoVisitor = await startTcpVisitor(server.port, TID, 'other.example.com:7', { name: 'visitor-echo-2' });
      const data = randomBytes(2 << 20);
      const back = await tcpEcho(echoVisitor.port, data, 5_000);
      assert.equal(sha(back), sha(data));
      const t0 = Date.now();
      const r = await request(server.ep, { host: 'good.example.com', path: '/meanwhile', timeoutMs: 60_000 });
      assert.equal(r.status, 200, `after ${Date.now() - t0} ms; origin saw ${JSON.stringify(origin.seen.slice(-3))}`);
    } finally {
      for (const s of stalled) s.destroy();
    }
    tunnelSurvived();
  },
  );
});
