/**
 * The terminated side of the entry point with the real CLI, beyond plain requests: HTTP/2
 * visitors (a 16 MiB upload checked by SHA-256, server-sent events that stay open between
 * requests, many requests on one connection) and WebSocket over https (HTTP/1.1 by ALPN, the
 * upgrade spliced to a WebSocket service behind the client).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import tls from 'node:tls';
import { WebSocket, WebSocketServer, type ClientOptions } from 'ws';
import { burrow, type BurrowProcess } from '../helpers/cli';
import { makeCa, makeCert, type TestCa } from '../helpers/certs';
import { listenLocal } from '../helpers/local';
import { Cleanup, LOCAL, TID, startClients, startHttpService } from './support';

const cleanup = new Cleanup();
after(() => cleanup.run());

/** An HTTP/2 session to the entry point with `servername` as SNI and authority. */
function h2Session(port: number, servername: string, ca: string): http2.ClientHttp2Session {
  const session = http2.connect(`https://${servername}:${port}`, {
    createConnection: () => tls.connect({ host: LOCAL, port, servername, ca, ALPNProtocols: ['h2'] }),
  });
  session.on('error', () => undefined);
  return session;
}

/** Writes 12 pieces of 1000 bytes, 500 ms apart, then ends: a body that takes about 6 s. */
function trickle(req: NodeJS.WritableStream): void {
  let sent = 0;
  const next = (): void => {
    if (sent === 12) return void req.end();
    sent++;
    req.write(Buffer.alloc(1000, 1));
    setTimeout(next, 500);
  };
  next();
}

/** One request on `session`: status, and the body read whole; `body` is sent, or writes itself. */
function h2Request(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body?: Buffer | ((req: http2.ClientHttp2Stream) => void),
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = session.request(headers, { endStream: body === undefined });
    const chunks: Buffer[] = [];
    let status = 0;
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve({ status, body: Buffer.concat(chunks).toString() }));
    req.on('error', reject);
    req.setTimeout(60_000, () => req.close(http2.constants.NGHTTP2_CANCEL));
    if (typeof body === 'function') body(req);
    else if (body !== undefined) req.end(body);
  });
}

/** An event stream: `/events` sends one event now and the next when `/next` is asked. */
async function startEventService(): Promise<{ port: number; close(): Promise<void> }> {
  const waiting: http.ServerResponse[] = [];
  const server = http.createServer((req, res) => {
    if (req.url === '/events') {
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      res.write('data: first\n\n');
      waiting.push(res);
    } else if (req.url === '/next') {
      for (const w of waiting.splice(0)) w.end('data: second\n\n');
      res.end('ok');
    } else {
      res.end('?');
    }
  });
  return listenLocal(server);
}

/** A WebSocket service that echoes every message with a prefix. */
async function startWsEcho(): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((_req, res) => res.end('not a websocket'));
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => {
    ws.on('message', (m, binary) => ws.send(binary ? m : `echo:${String(m)}`));
  });
  const s = await listenLocal(server);
  return {
    port: s.port,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      wss.close();
      await s.close();
    },
  };
}

describe('https edge: HTTP/2 visitors and WebSocket over https', () => {
  let ca: TestCa;
  let server: BurrowProcess;
  let ep: number;

  before(async () => {
    ca = await makeCa();
    cleanup.fn(() => ca.cleanup());
    const wild = await makeCert(ca, { cn: 'wild', san: ['*.example.com'] });
    const web = cleanup.add(await startHttpService('web'));
    const events = cleanup.add(await startEventService());
    const echo = cleanup.add(await startWsEcho());
    const q = [
      'entrypoint=127.0.0.1:0',
      `tunnel=app.example.com:${TID.example},events.example.com:${TID.services},ws.example.com:${TID.org}`,
      `entrypoint.certFile=${wild.certFile}`,
      `entrypoint.keyFile=${wild.keyFile}`,
      // Short, for the slow upload below: the deadline counts from the end of the request.
      'entrypoint.readTimeout=3s',
    ].join('&');
    server = burrow(['-L', `tunnel://127.0.0.1:0?${q}`, '-D'], { name: 'server' });
    const port = await server.listeningPort();
    ep = await server.entrypointPort();
    const clients: Array<[string, number]> = [
      [TID.example, web.port],
      [TID.services, events.port],
      [TID.org, echo.port],
    ];
    await startClients(server, port, clients);
  });

  it('carries a 16 MiB h2 upload intact, and many requests on one h2 connection', async () => {
    const session = h2Session(ep, 'app.example.com', ca.certPem);
    try {
      const body = Buffer.alloc(16 << 20);
      for (let i = 0; i < body.length; i += 4096) body[i] = (i >> 12) & 0xff;
      const sha = createHash('sha256').update(body).digest('hex');
      const up = await h2Request(session, { ':method': 'POST', ':path': '/upload', 'content-type': 'application/octet-stream' }, body);
      assert.equal(up.status, 200);
      // The request's authority (with the port the visitor used) becomes its Host.
      assert.equal(up.body, `web POST /upload host=app.example.com:${ep} bytes=${body.length} sha=${sha}`);
      const many = await Promise.all(Array.from({ length: 50 }, (_, i) => h2Request(session, { ':path': `/r${i}` })));
      many.forEach((r, i) => {
        assert.equal(r.status, 200);
        assert.equal(r.body, `web GET /r${i} host=app.example.com:${ep}`);
      });
    } finally {
      session.close();
    }
  });

  it('gives an h2 upload slower than entrypoint.readTimeout its response (the deadline starts after the body)', async () => {
    const session = h2Session(ep, 'app.example.com', ca.certPem);
    try {
      // The body takes twice the 3 s deadline to arrive.
      const res = await h2Request(session, { ':method': 'POST', ':path': '/slow' }, trickle);
      assert.equal(res.status, 200);
      assert.match(res.body, /^web POST \/slow host=app\.example\.com:\d+ bytes=12000 /);
    } finally {
      session.close();
    }
  });

  it('gives an https (HTTP/1.1) upload slower than entrypoint.readTimeout its response', async () => {
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = https.request(
        { host: LOCAL, port: ep, servername: 'app.example.com', method: 'POST', path: '/slow1', headers: { Host: 'app.example.com' }, ca: ca.certPem, agent: false },
        (r) => {
          let body = '';
          r.setEncoding('utf8');
          r.on('data', (c: string) => (body += c));
          r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      // Chunked, twice the 3 s deadline to arrive.
      trickle(req);
    });
    assert.equal(res.status, 200);
    assert.match(res.body, /^web POST \/slow1 host=app\.example\.com bytes=12000 /);
  });

  it('keeps an h2 event stream open between events', async () => {
    const session = h2Session(ep, 'events.example.com', ca.certPem);
    try {
      const req = session.request({ ':path': '/events' });
      req.setEncoding('utf8');
      let got = '';
      const first = new Promise<void>((resolve, reject) => {
        req.on('data', (c: string) => {
          got += c;
          if (got.includes('data: first')) resolve();
        });
        req.on('error', reject);
      });
      await first;
      assert.equal(got.includes('second'), false, 'the second event waits for /next');
      const ended = new Promise<void>((resolve) => req.on('end', () => resolve()));
      const next = await h2Request(session, { ':path': '/next' });
      assert.equal(next.body, 'ok');
      await ended;
      assert.equal(got, 'data: first\n\ndata: second\n\n');
    } finally {
      session.close();
    }
  });

  it('upgrades a WebSocket over https (HTTP/1.1) and splices it to the service', async () => {
    const ws = new WebSocket(`wss://${LOCAL}:${ep}/chat`, { servername: 'ws.example.com', headers: { Host: 'ws.example.com' }, ca: ca.certPem } as ClientOptions);
    try {
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      const replies: string[] = [];
      const two = new Promise<void>((resolve) =>
        ws.on('message', (m) => {
          replies.push(String(m));
          if (replies.length === 2) resolve();
        }),
      );
      ws.send('hello');
      ws.send('again');
      await two;
      assert.deepEqual(replies, ['echo:hello', 'echo:again']);
      const big = Buffer.alloc(1 << 20, 3);
      const back = new Promise<Buffer>((resolve) => ws.once('message', (m) => resolve(m as Buffer)));
      ws.send(big, { binary: true });
      assert.deepEqual(await back, big);
    } finally {
      ws.terminate();
    }
  });
});
