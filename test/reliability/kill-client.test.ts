/**
 * Faults survived: `kill -9` of a client in the middle of transfers (real processes). The
 * visitors of that tunnel are closed promptly, another tunnel keeps flowing through the same
 * server, the server frees the dead connector and every stream it carried, and traffic resumes
 * once the client is back.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { stopAll } from '../helpers/cli';
import { listenEcho, randomBytes, waitFor, type TestServer } from '../helpers/net';
import {
  LOCAL,
  connectTcp,
  dechunk,
  metricSum,
  newTid,
  removed,
  request,
  scrape,
  sha,
  sleep,
  socketsOf,
  startClient,
  startOrigin,
  startServer,
  startTcpVisitor,
  established,
  type Origin,
  type ServerProc,
} from './support';

const TID_A = newTid();
const TID_B = newTid();

/** Follows a never-ending response; records when data last arrived and when it closed. */
function follow(stream: NodeJS.EventEmitter): { bytes: number; lastDataAt: number; closedAt?: number; errored?: string } {
  const st: { bytes: number; lastDataAt: number; closedAt?: number; errored?: string } = { bytes: 0, lastDataAt: Date.now() };
  stream.on('data', (c: Buffer) => {
    st.bytes += c.length;
    st.lastDataAt = Date.now();
  });
  const closed = (why?: string) => {
    if (st.closedAt === undefined) st.closedAt = Date.now();
    if (why && !st.errored) st.errored = why;
  };
  stream.on('end', () => closed());
  stream.on('aborted', () => closed('aborted'));
  stream.on('error', (e: Error) => closed(e.message));
  stream.on('close', () => closed());
  return st;
}

/** A TCP stream through tunnel B that keeps echoing 16 KiB chunks; checks every byte. */
function pump(port: number): { stop(): Promise<{ sent: number; received: number; maxGapMs: number; match: boolean }> } {
  let running = true;
  const sent: Buffer[] = [];
  const received: Buffer[] = [];
  let receivedBytes = 0;
  let lastAt = Date.now();
  let maxGapMs = 0;
  let sock: net.Socket | undefined;
  const ready = connectTcp(port).then((s) => {
    sock = s;
    s.on('error', () => undefined);
    s.on('data', (c: Buffer) => {
      received.push(c);
      receivedBytes += c.length;
      const now = Date.now();
      maxGapMs = Math.max(maxGapMs, now - lastAt);
      lastAt = now;
    });
  });
  const loop = (async () => {
    await ready;
    let sentBytes = 0;
    while (running) {
      const chunk = randomBytes(16 * 1024);
      sent.push(chunk);
      sentBytes += chunk.length;
      sock!.write(chunk);
      // Keep at most 256 KiB in flight so the gap measures the tunnel, not our own queue.
      while (running && sentBytes - receivedBytes > 256 * 1024) await sleep(5);
      await sleep(10);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      const total = sent.reduce((n, b) => n + b.length, 0);
      await waitFor(() => receivedBytes >= total, 10_000, 'the last echoes of tunnel B');
      sock!.destroy();
      const a = Buffer.concat(sent);
      const b = Buffer.concat(received);
      return { sent: a.length, received: b.length, maxGapMs, match: sha(a) === sha(b) };
    },
  };
}

/** gost_service_requests_in_flight of one service. */
function inFlight(m: Map<string, number>, service: string): number {
  return m.get(`gost_service_requests_in_flight{service="${service}"}`) ?? 0;
}

describe('kill -9 of a client mid-transfer', () => {
  let origin: Origin;
  let echo: TestServer;
  let server: ServerProc;

  before(async () => {
    origin = await startOrigin();
    echo = await listenEcho();
    server = await startServer(`tunnel=a.example.com:${TID_A},b.example.com:${TID_B}`, { metrics: true });
  });
  after(async () => {
    await stopAll();
    await origin.close();
    await echo.close();
  });

  it('closes the visitors promptly, keeps other tunnels flowing, frees the connector and its streams; traffic resumes after a restart', async (t) => {
    const a = await startClient(server.port, TID_A, `${LOCAL}:${origin.port}`, { name: 'client-a' });
    const b = await startClient(server.port, TID_B, `${LOCAL}:${echo.port}`, { name: 'client-b' });
    await Promise.all([established(server.proc, a.connector), established(server.proc, b.connector)]);
    const va = await startTcpVisitor(server.port, TID_A, 'a.example.com:80', { name: 'visitor-a' });
    const vb = await startTcpVisitor(server.port, TID_B, 'b.example.com:7', { name: 'visitor-b' });

    // Tunnel B: a steady echo stream that must not notice the kill.
    const pb = pump(vb.port);
    await sleep(300);
    const socketsBefore = socketsOf(server.proc.pid);
    const m0 = await scrape(server.metricsPort!);
    assert.equal(metricSum(m0, 'burrow_tunnel_connectors'), 2);

    // Tunnel A: three never-ending downloads in flight: two over the entry point (HTTP SSE),
    // one through the TCP visitor (raw HTTP over the relay).
    const sse = [0, 1].map(
      () =>
        new Promise<http.IncomingMessage>((resolve, reject) => {
          const req = http.get({ host: LOCAL, port: server.ep, path: '/sse?n=0&every=10', headers: { host: 'a.example.com' }, agent: false }, resolve);
          req.on('error', reject);
        }),
    );
    const responses = await Promise.all(sse);
    const sseState = responses.map((r) => follow(r));
    const raw = await connectTcp(va.port);
    const rawState = follow(raw);
    raw.write('GET /sse?n=0&every=10 HTTP/1.1\r\nHost: a.example.com\r\n\r\n');
    await waitFor(() => sseState.every((s) => s.bytes > 200) && rawState.bytes > 200, 10_000, 'data flowing on tunnel A');
    const m1 = await scrape(server.metricsPort!);
    // In flight on the tunnel port: both BINDs and both visitors' CONNECTs (B's pump, A's raw one);
    // at the entry point (a service of its own): the two SSE connections.
    assert.equal(inFlight(m1, 'service-0'), 4);
    assert.equal(inFlight(m1, `service-0-ep-${LOCAL}:0`), 2);

    const mark = server.proc.mark();
    const killedAt = Date.now();
    await a.proc.kill('SIGKILL');
    await removed(server.proc, TID_A, a.connector, { from: mark, timeoutMs: 3_000 });
    const removedAfter = Date.now() - killedAt;

    // Every visitor of tunnel A sees its connection end promptly (no hang).
    await waitFor(
      () => sseState.every((s) => s.closedAt !== undefined) && rawState.closedAt !== undefined,
      3_000,
      'tunnel A visitors closed',
    );
    const closeDelays = [...sseState, rawState].map((s) => s.closedAt! - killedAt);
    t.diagnostic(`connector removed after ${removedAfter} ms; visitors closed after ${closeDelays.join(', ')} ms`);
    raw.destroy();
    for (const r of responses) r.destroy();

    // The server has freed the connector and every stream of tunnel A.
    await waitFor(
      async () => {
        const m = await scrape(server.metricsPort!);
        return (
          metricSum(m, 'burrow_tunnel_connectors') === 1 &&
          inFlight(m, 'service-0') === 2 &&
          inFlight(m, `service-0-ep-${LOCAL}:0`) === 0
        );
      },
      3_000,
      'connector gauge 1, only tunnel B (its BIND and its CONNECT) in flight, none at the entry point',
    );
    await waitFor(() => socketsOf(server.proc.pid) <= socketsBefore - 1, 3_000, `server sockets back to ${socketsBefore - 1}`).catch(
      (err: Error) => {
        throw new Error(`${err.message} (now ${socketsOf(server.proc.pid)})`);
      },
    );

    // Tunnel B went on: every byte echoed, no stall.
    const rb = await pb.stop();
    assert.ok(rb.match, `tunnel B: sent ${rb.sent}, received ${rb.received}, SHA-256 differs`);
    assert.ok(rb.sent > 256 * 1024, `tunnel B moved only ${rb.sent} bytes`);
    // A tunnel held up by the dead one would stall until a keepalive timeout (tens of seconds);
    // 5 s leaves room for a busy machine's scheduling.
    assert.ok(rb.maxGapMs < 5_000, `tunnel B stalled for ${rb.maxGapMs} ms around the kill`);

    // Meanwhile tunnel A answers 503 at the entry point, and after a restart it serves again.
    const down = await request(server.ep, { host: 'a.example.com', path: '/' });
    assert.equal(down.status, 503);
    const restarted = await startClient(server.port, TID_A, `${LOCAL}:${origin.port}`, { name: 'client-a2' });
    await established(server.proc, restarted.connector);
    const up = await request(server.ep, { host: 'a.example.com', path: '/after' });
    assert.equal(up.status, 200);
    assert.equal(up.body.toString(), 'ok /after');
    const data = randomBytes(1 << 20);
    const sock = await connectTcp(va.port);
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.write(`POST /echo HTTP/1.1\r\nHost: a.example.com\r\nContent-Length: ${data.length}\r\nConnection: close\r\n\r\n`);
    sock.write(data);
    await new Promise<void>((r) => sock.once('end', () => r()));
    sock.destroy();
    const text = Buffer.concat(chunks);
    const bodyAt = text.indexOf('\r\n\r\n') + 4;
    assert.match(text.subarray(0, bodyAt).toString(), /^HTTP\/1\.1 200 /);
    // Chunked: strip the chunk framing before comparing.
    const body = dechunk(text.subarray(bodyAt));
    assert.equal(sha(body), sha(data));
  });
});
