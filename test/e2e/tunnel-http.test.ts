/**
 * The first example of the docs (config.md S1 + C1), run with the real CLI: a tunnel server
 * with an HTTP/TLS entry point and two inline rules, one client publishing a local HTTP
 * service, and requests through the entry point (behavior.md §4).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { burrow, type BurrowProcess } from '../helpers/cli';
import { makeSelfSigned } from '../helpers/certs';
import { randomBytes, sha256 } from '../helpers/net';
import { listenLocal } from '../helpers/local';
import { Cleanup, LOCAL, TID, eventually, httpRequest, rawHttp, startHttpService, type HttpService } from './support';

const cleanup = new Cleanup();
after(() => cleanup.run());

function serverArgs(): string[] {
  return [
    '-L',
    `tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel=.example.com:${TID.example},example.org:${TID.org}`,
    '-D',
  ];
}

function clientArgs(serverPort: number, targetPort: number): string[] {
  return ['-L', `rtcp://:0/127.0.0.1:${targetPort}`, '-F', `tunnel://127.0.0.1:${serverPort}?tunnel.id=${TID.example}&tunnel.weight=1`, '-D'];
}

/**
 * An HTTP/1.1 backend that answers `ok` to each request (body read by Content-Length) and ends
 * a connection that stays idle `idleMs` after a response, without a Keep-Alive header.
 */
async function startTerseKeepAliveBackend(idleMs: number): Promise<{ port: number; connections: number; close(): Promise<void> }> {
  const state = { port: 0, connections: 0, close: async () => undefined as void };
  const server = net.createServer((sock) => {
    state.connections++;
    sock.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    let idle: NodeJS.Timeout | undefined;
    sock.on('data', (c: Buffer) => {
      if (idle) clearTimeout(idle);
      buf = Buffer.concat([buf, c]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const len = Number(/\r\ncontent-length: *(\d+)/i.exec(buf.subarray(0, end).toString('latin1'))?.[1] ?? 0);
        if (buf.length < end + 4 + len) return;
        buf = buf.subarray(end + 4 + len);
        sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
        idle = setTimeout(() => sock.end(), idleMs);
      }
    });
  });
  const { port, close } = await listenLocal(server);
  return Object.assign(state, { port, close });
}

describe('tunnel: HTTP through the entry point (S1 + C1)', () => {
  let web: HttpService;
  let server: BurrowProcess;
  let client: BurrowProcess;
  let ep: number;
  let tunnelPort: number;
  let nodeId: string;

  before(async () => {
    web = cleanup.add(await startHttpService('web'));
    server = burrow(serverArgs(), { name: 'server' });
    const port = await server.listeningPort();
    tunnelPort = port;
    ep = await server.entrypointPort();
    nodeId = String((await server.waitForMsg(/^entrypoint: /)).node);
    client = burrow(clientArgs(port, web.port), { name: 'client' });
    const created = await client.tunnelCreated();
    assert.match(String(created.msg), /^create tunnel on a6265c6d9847a4be:0\/tcp OK, tunnel=4d21094e-b74c-4916-86c1-d9fa36ea677b/);
    assert.equal(created.endpoint, 'a6265c6d9847a4be');
    // The server has registered the connector once it logs "established".
    await server.waitForMsg(/tunnel=4d21094e-b74c-4916-86c1-d9fa36ea677b, connector=.* established/);
  });

  it('routes Host: www.example.com to the published service', async () => {
    const r = await httpRequest(ep, { host: 'www.example.com', path: '/hello?x=1' });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'web GET /hello?x=1 host=www.example.com');
    assert.equal(r.headers['x-service'], 'web');
    // The apex matches the ".example.com" rule too (behavior.md §1.2 step 4).
    const apex = await httpRequest(ep, { host: 'example.com:8080' });
    assert.equal(apex.status, 200);
    assert.equal(apex.body, 'web GET / host=example.com:8080');
  });

  it('answers 503 for a rule whose tunnel has no client and 502 for an unknown host', async () => {
    const org = await httpRequest(ep, { host: 'example.org' });
    assert.equal(org.status, 503);
    assert.equal(org.body, '');
    const unknown = await httpRequest(ep, { host: 'www.example.net' });
    assert.equal(unknown.status, 502);
    assert.equal(unknown.body, '');
    // www.example.org has no wildcard rule: no route.
    assert.equal((await httpRequest(ep, { host: 'www.example.org' })).status, 502);
    await server.waitForMsg(/^no route to host www\.example\.net/);
  });

  it('keeps the visitor connection open after an error response', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const a = await httpRequest(ep, { host: 'nowhere.test', agent });
      const b = await httpRequest(ep, { host: 'www.example.com', agent });
      assert.equal(a.status, 502);
      assert.equal(b.status, 200);
      assert.equal(b.reused, true, 'second request should reuse the connection');
      assert.equal(a.socket, b.socket);
    } finally {
      agent.destroy();
    }
  });

  it('serves 100 sequential keep-alive requests on one connection', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<unknown>();
    try {
      for (let i = 0; i < 100; i++) {
        const r = await httpRequest(ep, { host: 'www.example.com', path: `/k/${i}`, agent });
        assert.equal(r.status, 200, `request ${i}`);
        assert.equal(r.body, `web GET /k/${i} host=www.example.com`);
        if (i > 0) assert.equal(r.reused, true, `request ${i} did not reuse the connection`);
        sockets.add(r.socket);
      }
    } finally {
      agent.destroy();
    }
    assert.equal(sockets.size, 1);
  });

  it('clients that close after each request (Connection: close) share one stream and one backend connection, sent on as keep-alive', async () => {
    const paths = ['/close-1', '/close-2', '/close-3'];
    for (const path of paths) {
      const r = await httpRequest(ep, { host: 'close.example.com', path, headers: { Connection: 'close' }, agent: false });
      assert.equal(r.status, 200);
      assert.equal(r.headers.connection, 'close', 'the visitor connection closes as asked');
    }
    const seen = paths.map((path) => web.requests.find((q) => q.url === path)!);
    assert.ok(seen.every((q) => q.headers.connection === 'keep-alive'), JSON.stringify(seen.map((q) => q.headers.connection)));
    assert.equal(new Set(seen.map((q) => q.remote)).size, 1, 'one backend connection for the three');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      await httpRequest(ep, { host: 'www.example.com', path: '/keep-me', agent });
    } finally {
      agent.destroy();
    }
    assert.equal(web.requests.find((q) => q.url === '/keep-me')?.headers.connection, 'keep-alive');
  });

  it('a backend that closes an idle keep-alive connection: the next POST on the visitor connection still gets 200', async () => {
    // The entry point keeps the stream for the connection's next request; when the backend
    // closes its side while idle, that stream must leave the pool, or the next request (a POST,
    // which cannot be retried) would go down a stream nobody reads and get 503.
    // A backend that closes an idle connection after 200 ms without announcing it (no
    // Keep-Alive hint, which Node's agent would otherwise honour by itself).
    const quick = cleanup.add(await startTerseKeepAliveBackend(200));
    const c2 = burrow(['-L', `rtcp://:0/127.0.0.1:${quick.port}`, '-F', `tunnel://127.0.0.1:${tunnelPort}?tunnel.id=${TID.org}`], { name: 'client-org' });
    await c2.tunnelCreated();
    await server.waitForMsg(new RegExp(`tunnel=${TID.org}, connector=.* established`));
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < 4; i++) {
        const r = await httpRequest(ep, { host: 'example.org', method: 'POST', path: `/q/${i}`, body: 'x'.repeat(1000), agent });
        assert.equal(r.status, 200, `request ${i}`);
        if (i > 0) assert.equal(r.reused, true, `request ${i} did not reuse the visitor connection`);
        // The backend closes its idle connection after 200 ms.
        await new Promise((res) => setTimeout(res, 600));
      }
    } finally {
      agent.destroy();
      await c2.stop();
    }
    assert.ok(quick.connections >= 4, `the backend saw ${quick.connections} connections`);
  });

    it('delivers a 1 MiB request body intact (Content-Length and chunked)', async () => {
    const body = randomBytes(1024 * 1024);
    const r = await httpRequest(ep, { host: 'www.example.com', path: '/upload', body, timeoutMs: 20_000 });
    assert.equal(r.status, 200);
    assert.equal(r.body, `web POST /upload host=www.example.com bytes=${body.length} sha=${sha256(body)}`);

    // Chunked: written in pieces without a Content-Length.
    const chunked = await new Promise<string>((resolve, reject) => {
      const req = http.request(
        { host: LOCAL, port: ep, method: 'PUT', path: '/chunked', headers: { Host: 'www.example.com' }, agent: false },
        (res) => {
          let s = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (s += c));
          res.on('end', () => resolve(`${res.statusCode} ${s}`));
        },
      );
      req.on('error', reject);
      for (let off = 0; off < body.length; off += 100_000) req.write(body.subarray(off, off + 100_000));
      req.end();
    });
    assert.equal(chunked, `200 web PUT /chunked host=www.example.com bytes=${body.length} sha=${sha256(body)}`);
  });

  it('forwards Gost-Forwarded-Node and the client address', async () => {
    const mark = client.mark();
    // A host no earlier request used: a new stream (idle streams are kept per host and client IP).
    const r = await httpRequest(ep, { host: 'who.example.com', path: '/who', headers: { 'Gost-Record': 'x' } });
    assert.equal(r.status, 200);
    const seen = web.requests.find((q) => q.url === '/who')!;
    assert.ok(seen, 'the service saw the request');
    assert.equal(seen.headers['gost-forwarded-node'], nodeId);
    assert.equal(seen.headers['gost-record'], undefined, 'Gost-Record is stripped');
    assert.ok(seen.headers['gost-sid'], 'Gost-Sid is set');
    assert.equal(seen.headers.host, 'who.example.com');
    // The stream header carries the visitor's address; the client logs it as the remote.
    const local = r.socket.localPort;
    await client.waitFor((l) => l.remote === `${LOCAL}:${local}`, { from: mark, what: `remote ${LOCAL}:${local}` });

    // With X-Forwarded-For the first address (port 0) is the client address; the header itself
    // reaches the service unchanged.
    const mark2 = client.mark();
    const r2 = await httpRequest(ep, {
      host: 'www.example.com',
      path: '/xff',
      headers: { 'X-Forwarded-For': '203.0.113.7, 10.0.0.1' },
    });
    assert.equal(r2.status, 200);
    await client.waitFor((l) => l.remote === '203.0.113.7:0', { from: mark2, what: 'remote 203.0.113.7:0' });
    assert.equal(web.requests.find((q) => q.url === '/xff')!.headers['x-forwarded-for'], '203.0.113.7, 10.0.0.1');
  });

  it('answers 503 for a request that already passed this node (loop)', async () => {
    const r = await httpRequest(ep, { host: 'www.example.com', path: '/loop', headers: { 'Gost-Forwarded-Node': nodeId } });
    assert.equal(r.status, 503);
    assert.equal(web.requests.find((q) => q.url === '/loop'), undefined);
  });
});

describe('tunnel: TLS pass-through by SNI (S1 + C1 with a TLS service)', () => {
  let ep: number;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'burrow-e2e-tls-'));
    cleanup.fn(() => rmSync(dir, { recursive: true, force: true }));
    const cert = await makeSelfSigned(dir, { cn: 'secure.example.com' });
    const tlsServer = tls.createServer({ cert: cert.certPem, key: cert.keyPem }, (s) => {
      s.on('error', () => undefined);
      s.pipe(s);
    });
    await new Promise<void>((r) => tlsServer.listen(0, LOCAL, () => r()));
    const tlsPort = (tlsServer.address() as { port: number }).port;
    cleanup.fn(() => new Promise<void>((r) => tlsServer.close(() => r())));

    const server = burrow(serverArgs(), { name: 'tls-server' });
    const port = await server.listeningPort();
    ep = await server.entrypointPort();
    const client = burrow(clientArgs(port, tlsPort), { name: 'tls-client' });
    await client.tunnelCreated();
    await server.waitForMsg(/established$/);
  });

  function tlsEcho(servername: string, payload: Buffer): Promise<{ echoed: Buffer; cn: string }> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({ host: LOCAL, port: ep, servername, rejectUnauthorized: false }, () => {
        const cn = String(s.getPeerCertificate().subject?.CN ?? '');
        s.write(payload);
        let got = Buffer.alloc(0);
        s.on('data', (c: Buffer) => {
          got = Buffer.concat([got, c]);
          if (got.length >= payload.length) {
            s.end();
            resolve({ echoed: got, cn });
          }
        });
      });
      s.setTimeout(10_000, () => s.destroy(new Error('TLS exchange timed out')));
      s.on('error', reject);
      s.on('close', () => reject(new Error('TLS connection closed early')));
    });
  }

  it('reaches the TLS service end to end and echoes data', async () => {
    const payload = randomBytes(200_000);
    const r = await eventually(() => tlsEcho('secure.example.com', payload), 5_000);
    assert.equal(r.cn, 'secure.example.com', 'the certificate is the service’s own (no termination)');
    assert.equal(sha256(r.echoed), sha256(payload));
  });

  it('closes a TLS connection whose SNI has no rule', async () => {
    await assert.rejects(tlsEcho('nothing.example.net', Buffer.from('x')));
  });

  it('closes a TLS connection for a rule without a client', async () => {
    await assert.rejects(tlsEcho('example.org', Buffer.from('x')));
    // Plain HTTP on the same entry point still works (the port is not wedged).
    const r = await rawHttp(ep, 'GET / HTTP/1.1\r\nHost: nothing.test\r\nConnection: close\r\n\r\n');
    assert.match(r.data, /^HTTP\/1\.1 502 /);
  });
});
