/**
 * TLS termination at the entry point with certificate files (docs/https.md), with the real CLI:
 * certificate choice by SNI (exact, then wildcard), passthrough for names without a certificate
 * and for `entrypoint.passthrough`, requests of terminated connections routed as plain HTTP ones
 * (keep-alive, errors), forwarded headers, the redirect to https, streaming and a large upload,
 * the public mode's https URL, and bad input (garbage after the handshake, a stalled handshake,
 * certificate files that do not load).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { execFile } from 'node:child_process';
import { burrow, tempFile, type BurrowProcess } from '../helpers/cli';
import { makeCa, makeCert, makeSelfSigned, type TestCa } from '../helpers/certs';
import { listenLocal } from '../helpers/local';
import { Cleanup, LOCAL, TID, eventually, httpRequest, startClients, startHttpService, type HttpService } from './support';

const cleanup = new Cleanup();
after(() => cleanup.run());

interface HttpsResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  peerCn: string | undefined;
  socket: net.Socket;
}

/** One request over TLS to the entry point with `servername` as SNI and Host. */
function httpsRequest(
  port: number,
  servername: string,
  opts: { ca?: string; path?: string; method?: string; headers?: Record<string, string>; body?: Buffer; agent?: https.Agent } = {},
): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: LOCAL,
        port,
        servername,
        path: opts.path ?? '/',
        method: opts.method ?? 'GET',
        headers: { Host: servername, ...(opts.headers ?? {}) },
        ca: opts.ca,
        agent: opts.agent ?? false,
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        const sock = res.socket as tls.TLSSocket;
        const peerCn = sock.getPeerCertificate().subject?.CN as string | undefined;
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString(), peerCn, socket: sock });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Runs a command; resolves with its stdout, rejects with its stderr. */
function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { timeout: 120_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${cmd}: ${err.message} ${stderr}`)) : resolve(stdout),
    ),
  );
}

/** The CN of the certificate a TLS handshake with `servername` gets (no verification). */
function handshakeCn(port: number, servername: string): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: LOCAL, port, servername, rejectUnauthorized: false }, () => {
      const cn = s.getPeerCertificate().subject?.CN as string | undefined;
      s.destroy();
      resolve(cn);
    });
    s.on('error', reject);
    s.setTimeout(30_000, () => s.destroy(new Error('timeout')));
  });
}

/** Resolves when `sock` closes; the hang guard rejects. */
function closed(sock: net.Socket, guardMs = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (sock.destroyed) return resolve();
    const t = setTimeout(() => reject(new Error('connection still open')), guardMs);
    sock.on('error', () => undefined);
    sock.once('close', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

/** A TLS service (its own certificate, CN "backend") answering every connection with "backend:<sni>". */
async function startTlsBackend(dir: string): Promise<{ port: number; close(): Promise<void> }> {
  const cert = await makeSelfSigned(dir, { cn: 'backend', san: ['backend'] });
  const server = tls.createServer({ cert: cert.certPem, key: cert.keyPem }, (s) => {
    s.on('error', () => undefined);
    s.end(`backend:${(s as tls.TLSSocket & { servername?: string }).servername ?? ''}`);
  });
  return listenLocal(server);
}

/** An HTTP service with an event stream (`/events`: one event now, the next when `/next` is asked) and a download. */
async function startStreamingService(): Promise<{ port: number; close(): Promise<void> }> {
  const waiting: http.ServerResponse[] = [];
  const server = http.createServer((req, res) => {
    if (req.url === '/events') {
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      res.write('data: first\n\n');
      waiting.push(res);
    } else if (req.url === '/next') {
      for (const w of waiting.splice(0)) w.end('data: second\n\n');
      res.end('ok');
    } else if (req.url?.startsWith('/download/')) {
      const total = Number(req.url.slice('/download/'.length));
      res.writeHead(200, { 'Content-Length': total });
      const block = Buffer.alloc(1 << 20, 7);
      let left = total;
      const pump = (): void => {
        while (left > 0) {
          const n = Math.min(left, block.length);
          left -= n;
          if (!res.write(block.subarray(0, n))) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    } else {
      res.end('?');
    }
  });
  return listenLocal(server);
}

describe('https edge: TLS termination with certificate files', () => {
  let ca: TestCa;
  let web: HttpService;
  let server: BurrowProcess;
  let ep: number;

  before(async () => {
    ca = await makeCa();
    cleanup.fn(() => ca.cleanup());
    const exact = await makeCert(ca, { cn: 'exact', san: ['app.example.com'] });
    const wild = await makeCert(ca, { cn: 'wild', san: ['*.example.com'] });
    // h2load takes the SNI from the URL's host: a name that resolves to the loopback.
    const local = await makeCert(ca, { cn: 'localhost', san: ['localhost'] });
    web = cleanup.add(await startHttpService('web'));
    const stream = cleanup.add(await startStreamingService());
    const backend = cleanup.add(await startTlsBackend(ca.dir));
    const q = [
      'entrypoint=127.0.0.1:0',
      `tunnel=pass.example.com:${TID.org},stream.example.com:${TID.services},.example.com:${TID.example},example.org:${TID.org},localhost:${TID.example}`,
      `entrypoint.certFile=${exact.certFile},${wild.certFile},${local.certFile}`,
      `entrypoint.keyFile=${exact.keyFile},${wild.keyFile},${local.keyFile}`,
      'entrypoint.passthrough=pass.example.com',
      'entrypoint.redirectHttps=true',
    ].join('&');
    server = burrow(['-L', `tunnel://127.0.0.1:0?${q}`, '-D'], { name: 'server' });
    const port = await server.listeningPort();
    ep = await server.entrypointPort();
    const clients: Array<[string, number]> = [
      [TID.example, web.port],
      [TID.org, backend.port],
      [TID.services, stream.port],
    ];
    await startClients(server, port, clients);
  });

  it('chooses the certificate by SNI: the exact name first, then the wildcard', async () => {
    assert.equal(await handshakeCn(ep, 'app.example.com'), 'exact');
    assert.equal(await handshakeCn(ep, 'www.example.com'), 'wild');
    assert.equal(await handshakeCn(ep, 'WWW.Example.COM'), 'wild');
  });

  it('serves terminated requests through the tunnel as plain HTTP ones, with keep-alive', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const a = await httpsRequest(ep, 'app.example.com', { ca: ca.certPem, path: '/a?x=1', agent });
      assert.equal(a.status, 200);
      assert.equal(a.body, 'web GET /a?x=1 host=app.example.com');
      assert.equal(a.peerCn, 'exact');
      const b = await httpsRequest(ep, 'app.example.com', { ca: ca.certPem, agent, path: '/b' });
      assert.equal(b.status, 200);
      assert.equal(b.body, 'web GET /b host=app.example.com');
      assert.equal(a.socket, b.socket, 'the second request reuses the TLS connection');
      // The same error answers as plain HTTP: a name routed nowhere.
      const none = await httpsRequest(ep, 'app.example.com', { ca: ca.certPem, agent, headers: { Host: 'nowhere.test' } });
      assert.equal(none.status, 502);
      assert.equal(none.socket, a.socket, 'the connection stays open after the error response');
      // A name covered by the wildcard, routed by the .example.com rule.
      const w = await httpsRequest(ep, 'www.example.com', { ca: ca.certPem });
      assert.equal(w.peerCn, 'wild');
      assert.equal(w.body, 'web GET / host=www.example.com');
    } finally {
      agent.destroy();
    }
  });

  it('passes TLS through for a name without a certificate and for entrypoint.passthrough', async () => {
    // example.org: no certificate covers it; the backend behind the client does its own handshake.
    assert.equal(await handshakeCn(ep, 'example.org'), 'backend');
    // pass.example.com is covered by the wildcard, but forced through.
    assert.equal(await handshakeCn(ep, 'pass.example.com'), 'backend');
    const s = tls.connect({ host: LOCAL, port: ep, servername: 'pass.example.com', rejectUnauthorized: false });
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    await closed(s);
    assert.equal(Buffer.concat(chunks).toString(), 'backend:pass.example.com');
  });

  it('sends X-Forwarded-* on terminated requests and replaces what an untrusted peer sent', async () => {
    const r = await httpsRequest(ep, 'app.example.com', {
      ca: ca.certPem,
      path: '/fwd',
      headers: { 'X-Forwarded-For': '6.6.6.6', 'X-Forwarded-Proto': 'gopher', 'X-Forwarded-Host': 'evil.test' },
    });
    assert.equal(r.status, 200);
    const seen = web.requests.find((q) => q.url === '/fwd')!;
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    assert.equal(seen.headers['x-forwarded-host'], 'app.example.com');
  });

  it('redirects plain HTTP to https for hosts with a certificate, except ACME challenges', async () => {
    const r = await httpRequest(ep, { host: 'app.example.com', path: '/x?y=1' });
    assert.equal(r.status, 308);
    assert.equal(r.headers.location, 'https://app.example.com/x?y=1');
    const challenge = await httpRequest(ep, { host: 'app.example.com', path: '/.well-known/acme-challenge/tok' });
    assert.equal(challenge.status, 200);
    assert.equal(challenge.body, 'web GET /.well-known/acme-challenge/tok host=app.example.com');
    assert.equal(web.requests.find((q) => q.url === '/.well-known/acme-challenge/tok')!.headers['x-forwarded-for'], undefined);
    // No certificate for example.org: no redirect (passthrough hosts neither).
    assert.notEqual((await httpRequest(ep, { host: 'example.org' })).status, 308);
    assert.notEqual((await httpRequest(ep, { host: 'pass.example.com' })).status, 308);
    // A keep-alive connection goes on after a redirect.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const a = await httpRequest(ep, { host: 'app.example.com', agent });
      const b = await httpRequest(ep, { host: 'app.example.com', agent });
      assert.equal(a.status, 308);
      assert.equal(b.status, 308);
      assert.equal(a.socket, b.socket);
    } finally {
      agent.destroy();
    }
  });

  it('streams server-sent events over https as they come', async () => {
    const events: string[] = [];
    const done = new Promise<void>((resolve, reject) => {
      const req = https.get(
        { host: LOCAL, port: ep, servername: 'stream.example.com', path: '/events', headers: { Host: 'stream.example.com' }, ca: ca.certPem },
        (res) => {
          res.setEncoding('utf8');
          res.on('data', (d: string) => {
            events.push(d);
            // The first event arrives while the response is still open: ask for the second.
            if (events.length === 1) void httpsRequest(ep, 'stream.example.com', { ca: ca.certPem, path: '/next' });
          });
          res.on('end', () => resolve());
        },
      );
      req.on('error', reject);
    });
    await done;
    assert.equal(events.join(''), 'data: first\n\ndata: second\n\n');
  });

  it('carries a 64 MiB upload and a 64 MiB download over https intact', async () => {
    const body = Buffer.alloc(64 << 20);
    for (let i = 0; i < body.length; i += 4096) body.writeUInt32BE(i, i);
    const sha = createHash('sha256').update(body).digest('hex');
    const up = await httpsRequest(ep, 'app.example.com', { ca: ca.certPem, method: 'POST', path: '/upload', body }).catch((err: Error) => {
      throw new Error(`${err.message}\n${server.recentOutput()}`);
    });
    assert.equal(up.status, 200);
    assert.equal(up.body, `web POST /upload host=app.example.com bytes=${body.length} sha=${sha}`);
    const down = await new Promise<{ n: number; sha: string }>((resolve, reject) => {
      https
        .get({ host: LOCAL, port: ep, servername: 'stream.example.com', path: `/download/${64 << 20}`, headers: { Host: 'stream.example.com' }, ca: ca.certPem }, (res) => {
          const h = createHash('sha256');
          let n = 0;
          res.on('data', (c: Buffer) => {
            n += c.length;
            h.update(c);
          });
          res.on('end', () => resolve({ n, sha: h.digest('hex') }));
        })
        .on('error', reject);
    });
    assert.equal(down.n, 64 << 20);
    assert.equal(down.sha, createHash('sha256').update(Buffer.alloc(64 << 20, 7)).digest('hex'));
  });

  it('speaks HTTP/2 to curl --http2, the request going on as HTTP/1.1', async () => {
    const caFile = tempFile('h2-ca.pem', ca.certPem);
    const out = await run('curl', [
      '-sS', '--http2', '--max-time', '30', '--cacert', caFile, '--resolve', `app.example.com:${ep}:127.0.0.1`,
      '-w', '\n%{http_version}', '-d', 'hello', `https://app.example.com:${ep}/h2?q=1`,
    ]);
    const sha = createHash('sha256').update('hello').digest('hex');
    assert.equal(out, `web POST /h2?q=1 host=app.example.com:${ep} bytes=5 sha=${sha}\n2`);
    const seen = web.requests.find((q) => q.url === '/h2?q=1')!;
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
  });

  it('serves h2load -n 1000 -c 10 -m 10 without a failed request', async () => {
    const out = await run('h2load', ['-n', '1000', '-c', '10', '-m', '10', `https://localhost:${ep}/load`]);
    assert.match(out, /Application protocol: h2/);
    assert.match(out, /requests: 1000 total, 1000 started, 1000 done, 1000 succeeded, 0 failed, 0 errored, 0 timeout/);
    assert.match(out, /status codes: 1000 2xx, 0 3xx, 0 4xx, 0 5xx/);
  });

  it('refuses HTTP/2 streams beyond 100 at a time, and stays up', async () => {
    const s = tls.connect({ host: LOCAL, port: ep, servername: 'app.example.com', ca: ca.certPem, ALPNProtocols: ['h2'] });
    s.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => s.once('secureConnect', resolve).once('error', reject));
    assert.equal(s.alpnProtocol, 'h2');
    const frame = (type: number, flags: number, id: number, payload: Buffer): Buffer => {
      const h = Buffer.alloc(9);
      h.writeUIntBE(payload.length, 0, 3);
      h[3] = type;
      h[4] = flags;
      h.writeUInt32BE(id, 5);
      return Buffer.concat([h, payload]);
    };
    const authority = Buffer.from('app.example.com');
    // HPACK: :method POST, :scheme https, :path /, :authority literal (no END_STREAM: each stream stays open).
    const block = Buffer.concat([Buffer.from([0x83, 0x87, 0x84, 0x01, authority.length]), authority]);
    const out = [Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(0x4, 0, 0, Buffer.alloc(0))];
    for (let i = 0; i < 3000; i++) out.push(frame(0x1, 0x4, 1 + 2 * i, block));
    s.write(Buffer.concat(out));
    let buf = Buffer.alloc(0);
    let refused = 0;
    let goaway = false;
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        const type = buf[3]!;
        if (type === 0x3 && buf.readUInt32BE(9) === 0x7) refused++;
        if (type === 0x7) goaway = true;
        buf = buf.subarray(9 + len);
      }
      if (refused > 0 || goaway) s.destroy();
    });
    await closed(s);
    assert.ok(refused > 0 || goaway, 'streams beyond the limit are refused (RST_STREAM REFUSED_STREAM) or the session ends (GOAWAY)');
    assert.equal((await httpsRequest(ep, 'app.example.com', { ca: ca.certPem, path: '/after-flood' })).status, 200);
  });

  it('closes a connection that sends garbage after the handshake, and stays up', async () => {
    const s = tls.connect({ host: LOCAL, port: ep, servername: 'app.example.com', ca: ca.certPem });
    await new Promise<void>((resolve, reject) => s.once('secureConnect', resolve).once('error', reject));
    s.write(Buffer.from('\x00\x01\x02 not http at all\r\n\r\n', 'latin1'));
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    await closed(s);
    assert.equal(Buffer.concat(chunks).length, 0);
    assert.equal((await httpsRequest(ep, 'app.example.com', { ca: ca.certPem })).status, 200);
  });

  it('terminates a ClientHello that comes in two TCP segments', async () => {
    // The client's bytes go through a stream of its own, which sends the first write (the
    // ClientHello) as 10 bytes, then the rest a moment later.
    const raw = net.connect(ep, LOCAL);
    raw.on('error', () => undefined);
    let first = true;
    const wire = new Duplex({
      read: () => raw.resume(),
      write(chunk: Buffer, _enc, cb) {
        if (!first) return raw.write(chunk, cb);
        first = false;
        raw.write(chunk.subarray(0, 10));
        setTimeout(() => raw.write(chunk.subarray(10), cb), 50);
      },
      final: (cb) => raw.end(cb),
    });
    raw.on('data', (d: Buffer) => {
      if (!wire.push(d)) raw.pause();
    });
    raw.on('end', () => wire.push(null));
    const s = tls.connect({ socket: wire, servername: 'app.example.com', ca: ca.certPem });
    await new Promise<void>((resolve, reject) => s.once('secureConnect', resolve).once('error', reject));
    s.end('GET / HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n\r\n');
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    await new Promise<void>((resolve, reject) => s.once('end', resolve).once('error', reject));
    assert.match(Buffer.concat(chunks).toString('latin1'), /^HTTP\/1\.1 200 /);
    raw.destroy();
  });

  it('closes a handshake that stalls after the ClientHello (entrypoint.tlsHandshakeTimeout)', async () => {
    // A server of its own with a short deadline (only the close is asserted, not when it comes).
    const cert = await makeCert(ca, { cn: 'slow', san: ['slow.test'] });
    const q = `entrypoint=127.0.0.1:0&tunnel=slow.test:${TID.example}&entrypoint.certFile=${cert.certFile}&entrypoint.keyFile=${cert.keyFile}&entrypoint.tlsHandshakeTimeout=1s`;
    const slow = burrow(['-L', `tunnel://127.0.0.1:0?${q}`], { name: 'slow server' });
    const slowEp = await slow.entrypointPort();
    // A real ClientHello, caught by a listener that never answers, replayed to the entry point.
    const hello = await new Promise<Buffer>((resolve, reject) => {
      const catcher = net.createServer((s) => s.once('data', (d: Buffer) => {
        resolve(d);
        s.destroy();
        catcher.close();
      }));
      catcher.listen(0, LOCAL, () => {
        const c = tls.connect({ host: LOCAL, port: (catcher.address() as net.AddressInfo).port, servername: 'slow.test' });
        c.on('error', () => undefined);
      });
      catcher.on('error', reject);
    });
    const raw = net.connect(slowEp, LOCAL);
    raw.on('error', () => undefined);
    raw.write(hello);
    let got = 0;
    raw.on('data', (d: Buffer) => (got += d.length));
    await closed(raw);
    assert.ok(got > 0, 'the server answered the ClientHello before the deadline closed it');
    await slow.waitForMsg(/no TLS handshake within 1000 ms/);
  });
});

describe('https edge: public mode', () => {
  it('prints an https:// URL that works when the entry point has the wildcard certificate', async () => {
    const ca = await makeCa();
    cleanup.fn(() => ca.cleanup());
    const wild = await makeCert(ca, { cn: 'public', san: ['*.example.net'] });
    const web = cleanup.add(await startHttpService('svc'));
    const q = `entrypoint=127.0.0.1:0&tunnel.publicDomain=example.net&entrypoint.certFile=${wild.certFile}&entrypoint.keyFile=${wild.keyFile}`;
    const server = burrow(['-L', `tunnel://127.0.0.1:0?${q}`], { name: 'public server' });
    const port = await server.listeningPort();
    const ep = await server.entrypointPort();
    const client = burrow(['-L', `rtcp://:0/127.0.0.1:${web.port}`, '-F', `tunnel://127.0.0.1:${port}?tunnel.id=${TID.public}`], { name: 'public client' });
    const line = await eventually(async () => {
      const l = client.output.find((t) => t.includes('public URL: '));
      if (!l) throw new Error(`no URL yet:\n${client.recentOutput()}`);
      return l;
    }, 30_000);
    const m = /public URL: (https?):\/\/([0-9a-f]{16}\.example\.net)/.exec(line);
    assert.ok(m, line);
    assert.equal(m[1], 'https');
    const host = m[2]!;
    // curl, trusting the test CA, reaches the printed URL through the entry point.
    const caFile = tempFile('public-ca.pem', ca.certPem);
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        'curl',
        ['-sS', '--max-time', '30', '--cacert', caFile, '--resolve', `${host}:${ep}:127.0.0.1`, `https://${host}:${ep}/hello`],
        (err, stdout, stderr) => (err ? reject(new Error(`${err.message} ${stderr}`)) : resolve(stdout)),
      ),
    );
    assert.equal(out, `svc GET /hello host=${host}:${ep}`);
    const seen = web.requests.find((r) => r.url === '/hello')!;
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
  });

  it('prints http:// when the server does not terminate TLS for the name', async () => {
    const web = cleanup.add(await startHttpService('plain'));
    const server = burrow(['-L', 'tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel.publicDomain=example.net'], { name: 'plain server' });
    const port = await server.listeningPort();
    const client = burrow(['-L', `rtcp://:0/127.0.0.1:${web.port}`, '-F', `tunnel://127.0.0.1:${port}?tunnel.id=${TID.public}`], { name: 'plain client' });
    const line = await eventually(async () => {
      const l = client.output.find((t) => t.includes('public URL: '));
      if (!l) throw new Error('no URL yet');
      return l;
    }, 30_000);
    assert.match(line, /public URL: http:\/\/[0-9a-f]{16}\.example\.net /);
  });
});

describe('https edge: certificate files that do not load', () => {
  for (const [what, cert, key, named] of [
    ['a missing certificate file', '/nonexistent/cert.pem', '/nonexistent/key.pem', '/nonexistent/cert.pem'],
    ['a file that is not a certificate', 'NOTPEM', 'NOTPEM', 'NOTPEM'],
  ] as const) {
    it(`exits 2 naming the file for ${what}`, async () => {
      const bad = cert === 'NOTPEM' ? tempFile('bad-cert.pem', 'not a certificate\n') : cert;
      const badKey = key === 'NOTPEM' ? tempFile('bad-key.pem', 'not a key\n') : key;
      const p = burrow(['-L', `tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&entrypoint.certFile=${bad}&entrypoint.keyFile=${badKey}`], { name: what });
      const exit = await p.exited;
      assert.equal(exit.code, 2, p.recentOutput());
      const text = p.output.join('\n');
      assert.ok(text.includes(named === 'NOTPEM' ? bad : named), text);
      assert.match(text, /entrypoint\.certFile/);
    });
  }

  it('exits 2 naming the file and its place for a YAML list with a missing file', async () => {
    const ca = await makeCa();
    cleanup.fn(() => ca.cleanup());
    const ok = await makeCert(ca, { cn: 'ok', san: ['ok.test'] });
    const cfg = tempFile(
      'https-list.yaml',
      [
        'services:',
        '- name: s',
        '  addr: 127.0.0.1:0',
        '  handler:',
        '    type: tunnel',
        '    metadata:',
        '      entrypoint: 127.0.0.1:0',
        `      entrypoint.certFile: [${ok.certFile}, /nonexistent/second.pem]`,
        `      entrypoint.keyFile: [${ok.keyFile}, ${ok.keyFile}]`,
        '      entrypoint.passthrough: [keep.test, "*.e2e.test"]',
        '  listener:',
        '    type: tcp',
        '',
      ].join('\n'),
    );
    const p = burrow(['-C', cfg], { name: 'yaml list' });
    const exit = await p.exited;
    assert.equal(exit.code, 2, p.recentOutput());
    assert.match(p.output.join('\n'), /https-list\.yaml: services\[0\]\.handler\.metadata\.entrypoint\.certFile: certificate file \/nonexistent\/second\.pem: no such file/);
  });

  it('exits 2 for a key that does not match its certificate', async () => {
    const ca = await makeCa();
    cleanup.fn(() => ca.cleanup());
    const a = await makeCert(ca, { cn: 'a', san: ['a.test'] });
    const b = await makeCert(ca, { cn: 'b', san: ['b.test'] });
    const p = burrow(['-L', `tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&entrypoint.certFile=${a.certFile}&entrypoint.keyFile=${b.keyFile}`], { name: 'mismatch' });
    const exit = await p.exited;
    assert.equal(exit.code, 2, p.recentOutput());
    assert.ok(p.output.join('\n').includes(`${b.keyFile} does not match the certificate in ${a.certFile}`), p.recentOutput());
  });
});
