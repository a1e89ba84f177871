/**
 * Nothing lost (real processes): 200 concurrent 4 MiB transfers in both directions through one
 * tunnel, half of them HTTP requests at the entry point and half raw TCP through a visitor,
 * every SHA-256 checked; half-closes honoured; server-sent events and long polls not buffered;
 * a visitor that goes away is seen by the origin.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { createHash } from 'node:crypto';
import { stopAll, type BurrowProcess } from '../helpers/cli';
import { listenLocal, tunnelClientYaml } from '../helpers/local';
import { listenEcho, randomBytes, readAll, waitFor, type TestServer } from '../helpers/net';
import {
  LOCAL,
  connectTcp,
  dechunk,
  newTid,
  sha,
  sleep,
  startOrigin,
  startServer,
  startTcpVisitor,
  startYamlClient,
  type Origin,
  type ServerProc,
} from './support';

const TID = newTid();
const SIZE = 4 << 20;

/**
 * A "request/response after EOF" service: reads until the client half-closes, then (after
 * 200 ms) answers `<sha256 of what it read>\n` followed by 4 MiB of data derived from it, and
 * closes. With `early`, it instead answers at once and half-closes while still reading, and
 * reports the SHA-256 of everything the client sent on `received`.
 */
async function afterEofService(): Promise<{ port: number; received: string[]; close(): Promise<void> }> {
  const received: string[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    const h = createHash('sha256');
    let first = true;
    s.on('data', (c: Buffer) => {
      if (first && c[0] === 0x45 /* 'E' */) {
        // Early mode: answer and half-close now, keep reading.
        s.end('early answer\n');
      }
      first = false;
      h.update(c);
    });
    s.on('end', () => {
      const digest = h.digest('hex');
      received.push(digest);
      if (s.writableEnded) {
        s.destroy();
        return;
      }
      setTimeout(() => {
        s.write(`${digest}\n`);
        s.end(responseFor(digest));
      }, 200);
    });
  });
  const { port, close } = await listenLocal(server);
  return { port, received, close };
}

function responseFor(digest: string): Buffer {
  const out = Buffer.alloc(SIZE);
  const seed = Buffer.from(digest, 'hex');
  for (let i = 0; i < SIZE; i += 32) createHash('sha256').update(seed).update(String(i)).digest().copy(out, i);
  return out;
}

/** The client: the HTTP origins and the after-EOF service by Host, the TCP echo for the rest. */
function clientYaml(serverPort: number, origin: number, echo: number, afterEof: number, halfOpenOrigin: number): string {
  return tunnelClientYaml(serverPort, TID, [
    {
      name: 'client',
      type: 'rtcp',
      nodes: [
        { name: 'web', addr: `${LOCAL}:${origin}`, host: 'web.example.com' },
        { name: 'web-half-open', addr: `${LOCAL}:${halfOpenOrigin}`, host: 'half-open.example.com' },
        { name: 'eof', addr: `${LOCAL}:${afterEof}`, host: 'eof.example.com' },
        { name: 'echo', addr: `${LOCAL}:${echo}` },
      ],
    },
  ]);
}

/** Writes `size` random bytes in 64 KiB chunks with backpressure; resolves their SHA-256. */
async function pumpRandom(w: NodeJS.WritableStream & { writableNeedDrain?: boolean; destroyed?: boolean }, size: number): Promise<string> {
  const h = createHash('sha256');
  for (let sent = 0; sent < size; ) {
    const c = randomBytes(Math.min(64 * 1024, size - sent));
    h.update(c);
    sent += c.length;
    if (!w.write(c)) await new Promise<void>((r) => w.once('drain', r));
  }
  return h.digest('hex');
}

/** Hashes a readable until it ends; rejects if it closes early. */
function hashAll(r: NodeJS.ReadableStream): Promise<{ sha: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    let bytes = 0;
    let ended = false;
    r.on('data', (c: Buffer) => {
      h.update(c);
      bytes += c.length;
    });
    r.once('end', () => {
      ended = true;
      resolve({ sha: h.digest('hex'), bytes });
    });
    r.once('error', reject);
    r.once('close', () => {
      if (!ended) reject(new Error(`closed after ${bytes} bytes`));
    });
  });
}

/** 4 MiB up and back through the entry point (POST /echo); compares hashes. */
function httpTransfer(ep: number): Promise<{ ok: boolean; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: LOCAL,
        port: ep,
        method: 'POST',
        path: '/echo',
        headers: { host: 'web.example.com', 'content-length': String(SIZE) },
        agent: false,
        setHost: false,
      },
      (res) => {
        if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}`));
        Promise.all([sent, hashAll(res)]).then(([up, down]) => {
          if (!res.complete) reject(new Error('response aborted'));
          else resolve({ ok: up === down.sha && down.bytes === SIZE, bytes: down.bytes });
        }, reject);
      },
    );
    req.setTimeout(120_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    const sent = pumpRandom(req, SIZE).then((d) => {
      req.end();
      return d;
    });
  });
}

/** 4 MiB up and back through the TCP visitor (echo); our write side is closed only at the end. */
async function tcpTransfer(port: number): Promise<{ ok: boolean; bytes: number }> {
  const sock = await connectTcp(port);
  try {
    const h = createHash('sha256');
    let bytes = 0;
    const back = new Promise<void>((resolve, reject) => {
      sock.on('data', (c: Buffer) => {
        h.update(c);
        bytes += c.length;
        if (bytes >= SIZE) resolve();
      });
      sock.once('end', () => reject(new Error(`ended after ${bytes} bytes`)));
      sock.once('error', reject);
    });
    const up = await pumpRandom(sock, SIZE);
    await back;
    sock.end();
    return { ok: bytes === SIZE && h.digest('hex') === up, bytes };
  } finally {
    setTimeout(() => sock.destroy(), 1_000).unref();
  }
}

describe('nothing lost', () => {
  let origin: Origin;
  let halfOpenOrigin: Origin;
  let echo: TestServer;
  let eof: Awaited<ReturnType<typeof afterEofService>>;
  let server: ServerProc;
  let client: { proc: BurrowProcess; connector: string };
  let visitor: { proc: BurrowProcess; port: number };
  let eofVisitor: { proc: BurrowProcess; port: number };

  before(async () => {
    origin = await startOrigin();
    halfOpenOrigin = await startOrigin({ halfOpen: true });
    echo = await listenEcho();
    eof = await afterEofService();
    // 200 transfers share the machine fairly, so on a loaded one a request head or a response
    // head can wait longer than the entry point's 15 s deadlines (sniffTimeout, readTimeout);
    // what is tested here is that nothing is lost, so they are hang guards only.
    server = await startServer(`tunnel=.example.com:${TID}&entrypoint.sniffTimeout=180s&entrypoint.readTimeout=180s`, { name: 'server' });
    client = await startYamlClient(server, 'nothing-lost.yaml', clientYaml(server.port, origin.port, echo.port, eof.port, halfOpenOrigin.port));
    visitor = await startTcpVisitor(server.port, TID, 'raw.example.com:7', { name: 'visitor' });
    eofVisitor = await startTcpVisitor(server.port, TID, 'eof.example.com:9', { name: 'visitor-eof' });
  });
  after(async () => {
    await stopAll();
    await Promise.all([origin.close(), halfOpenOrigin.close(), echo.close(), eof.close()]);
  });

  it('200 concurrent 4 MiB transfers both ways (100 HTTP at the entry point, 100 TCP through a visitor): every SHA-256 matches', async (t) => {
    const t0 = Date.now();
    const jobs = Array.from({ length: 200 }, async (_, i) => {
      const kind = i % 2 === 0 ? 'http' : 'tcp';
      const r = kind === 'http' ? await httpTransfer(server.ep) : await tcpTransfer(visitor.port);
      return { kind, ...r };
    });
    const results = await Promise.allSettled(jobs);
    const bad = results.flatMap((r, i) =>
      r.status === 'rejected' ? [`#${i}: ${(r.reason as Error).message}`] : r.value.ok ? [] : [`#${i} ${r.value.kind}: ${r.value.bytes} bytes, SHA-256 differs`],
    );
    t.diagnostic(`${200 * 2 * 4} MiB moved in ${Date.now() - t0} ms`);
    if (bad.length > 0) {
      // What the processes said about the failures.
      for (const p of [server.proc, client.proc]) {
        const errs = p.lines.filter((l) => l.level === 'warn' || l.level === 'error').map((l) => String(l.msg));
        t.diagnostic(`${p.name}: ${errs.length} warnings/errors: ${[...new Set(errs)].slice(0, 10).join(' | ')}`);
      }
    }
    assert.deepEqual(bad, []);
  });

  it(
    'half-close through the entry point: a client that shuts down its write side still gets the whole response',
    async () => {
    const data = randomBytes(SIZE);
    const sock = await connectTcp(server.ep);
    // The FIN is passed on to the origin, which decides: this one honours half-close (the
    // disconnect tests below use one that takes a FIN for a disconnect).
    sock.write(`POST /echo HTTP/1.1\r\nHost: half-open.example.com\r\nContent-Length: ${data.length}\r\n\r\n`);
    sock.end(data);
    const text = await readAll(sock);
    const head = text.subarray(0, text.indexOf('\r\n\r\n') + 4).toString();
    assert.match(head, /^HTTP\/1\.1 200 /);
    const body = /\r\ntransfer-encoding: chunked\r\n/i.test(head) ? dechunk(text.subarray(head.length)) : text.subarray(head.length);
    assert.equal(body.length, data.length, `got ${body.length} of ${data.length} bytes (${JSON.stringify(head)})`);
    assert.equal(sha(body), sha(data));
  },
  );

  it(
    'half-close through a TCP visitor: a client that shuts down its write side still gets the whole response',
    async () => {
      const req = randomBytes(1 << 20);
      const sock = await connectTcp(eofVisitor.port);
      sock.end(req);
      const got = await readAll(sock);
      const nl = got.indexOf(0x0a);
      assert.equal(got.subarray(0, nl).toString(), sha(req), 'the service did not get the whole request');
      const body = got.subarray(nl + 1);
      assert.equal(body.length, SIZE, `got ${body.length} of ${SIZE} response bytes`);
      assert.equal(sha(body), sha(responseFor(sha(req))));
    },
  );

  it(
    'half-close from the target: a service that answers and shuts down its write side still receives all the client sends',
    async () => {
      const sock = await connectTcp(eofVisitor.port);
      const answer = new Promise<Buffer>((r) => {
        const chunks: Buffer[] = [];
        sock.on('data', (c: Buffer) => chunks.push(c));
        sock.once('end', () => r(Buffer.concat(chunks)));
      });
      const data = Buffer.concat([Buffer.from('E'), randomBytes(SIZE)]);
      sock.write(data.subarray(0, 1));
      assert.equal((await answer).toString(), 'early answer\n');
      const before = eof.received.length;
      sock.end(data.subarray(1));
      await waitFor(() => eof.received.length > before, 10_000, 'the service to see the end of the upload');
      assert.equal(eof.received[eof.received.length - 1], sha(data), 'the service got a truncated upload');
      sock.destroy();
    },
  );

  // Lock step: the origin sends event i+1 only once event i has arrived here, so a proxy that
  // held events back (until the response ends, or a buffer fills) never delivers the next one and
  // the test stops at its guard, whatever the machine's speed.
  const LOCKSTEP_EVENTS = 6;
  const GUARD_MS = 30_000;

  /** Indices of the `data: <i> <ms>` events in `text`. */
  function eventsIn(text: string): number[] {
    return [...text.matchAll(/data: (\d+) \d+\n\n/g)].map((m) => Number(m[1]));
  }

  it('server-sent events through the entry point arrive as they are sent', async () => {
    let text = '';
    const got = await new Promise<number[]>((resolve, reject) => {
      const guard = setTimeout(() => reject(new Error(`events stopped after ${JSON.stringify(eventsIn(text))}`)), GUARD_MS);
      http
        .get({ host: LOCAL, port: server.ep, path: `/sse?n=${LOCKSTEP_EVENTS}&step=1`, headers: { host: 'web.example.com' }, agent: false }, (res) => {
          assert.equal(res.headers['content-type'], 'text/event-stream');
          res.setEncoding('utf8');
          let count = 0;
          res.on('data', (c: string) => {
            text += c;
            const n = eventsIn(text).length;
            if (n > count) {
              count = n;
              origin.step();
            }
          });
          res.on('end', () => {
            clearTimeout(guard);
            resolve(eventsIn(text));
          });
          res.on('error', reject);
        })
        .on('error', reject);
    });
    assert.deepEqual(got, [...Array(LOCKSTEP_EVENTS).keys()]);
  });

  it('server-sent events through a TCP visitor arrive as they are sent', async () => {
    const web = await startTcpVisitor(server.port, TID, 'web.example.com:80', { name: 'visitor-web' });
    const s = await connectTcp(web.port);
    let text = '';
    s.setEncoding('utf8');
    try {
      const got = await new Promise<number[]>((resolve, reject) => {
        const guard = setTimeout(() => reject(new Error(`events stopped after ${JSON.stringify(eventsIn(text))}`)), GUARD_MS);
        let count = 0;
        s.on('data', (c: string) => {
          text += c;
          const seen = eventsIn(text);
          if (seen.length > count) {
            count = seen.length;
            if (count >= LOCKSTEP_EVENTS) {
              clearTimeout(guard);
              resolve(seen);
            } else {
              origin.step();
            }
          }
        });
        s.on('error', reject);
        s.write(`GET /sse?n=${LOCKSTEP_EVENTS}&step=1 HTTP/1.1\r\nHost: web.example.com\r\n\r\n`);
      });
      assert.deepEqual(got, [...Array(LOCKSTEP_EVENTS).keys()]);
    } finally {
      s.destroy();
    }
  });

  it('a long poll is answered the moment the origin answers', async () => {
    const t0 = Date.now();
    const body = await new Promise<string>((resolve, reject) => {
      http
        .get({ host: LOCAL, port: server.ep, path: '/poll?delay=1500', headers: { host: 'web.example.com' }, agent: false }, (res) => {
          let s = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (s += c));
          res.on('end', () => resolve(s));
        })
        .on('error', reject);
    });
    const now = Date.now();
    const sentAt = Number(/^polled (\d+)$/.exec(body)![1]);
    // Not held for a deadline (readTimeout is 15 s) or until the connection closes: 5 s leaves
    // room for a busy machine.
    assert.ok(now - sentAt < 5_000, `answer arrived ${now - sentAt} ms after it was sent`);
    assert.ok(now - t0 >= 1_450, `long poll returned after ${now - t0} ms`);
  });

  for (const via of ['entry point', 'TCP visitor'] as const) {
    it(`a visitor that disconnects from an event stream or a long poll (${via}) is seen by the origin`, async () => {
      let port = server.ep;
      if (via === 'TCP visitor') port = (await startTcpVisitor(server.port, TID, 'web.example.com:80', { name: `visitor-disc` })).port;
      const tag = via === 'entry point' ? 'ep' : 'tcp';
      for (const path of [`/sse?n=0&every=100&via=${tag}`, `/poll?delay=10000&via=${tag}`]) {
        const s = await connectTcp(port);
        s.on('error', () => undefined);
        let got = '';
        s.setEncoding('utf8');
        s.on('data', (c: string) => (got += c));
        s.write(`GET ${path} HTTP/1.1\r\nHost: web.example.com\r\n\r\n`);
        await waitFor(() => origin.seen.includes(path), 5_000, `origin to see ${path}`);
        if (path.startsWith('/sse')) await waitFor(() => got.includes('data: 1 '), 5_000, 'two events');
        else await sleep(300);
        const before = origin.aborted.length;
        const closedAt = Date.now();
        s.destroy();
        // Seen as an abort, and before the long poll (10 s) would have ended by itself.
        await waitFor(() => origin.aborted.slice(before).some((a) => a.url === path), 8_000, `the origin to see the disconnect of ${path}`);
        const seenAfter = origin.aborted.find((a) => a.url === path)!.at - closedAt;
        assert.ok(seenAfter < 8_000, `origin saw the disconnect after ${seenAfter} ms`);
      }
    });
  }
});
