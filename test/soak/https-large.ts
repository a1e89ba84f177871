/**
 * Large transfers over the terminated side of the entry point: `npm run soak:https`
 * (SOAK_HTTPS_MIB=1024 by default, i.e. 1 GiB each way).
 *
 * Real processes: a tunnel server terminating TLS at its entry point with a certificate made
 * for the run, a client with an HTTP service behind it (in this process). One upload of
 * SOAK_HTTPS_MIB MiB over https (HTTP/1.1) and one over h2, and one download over each; every
 * byte is generated as it is sent and checked by SHA-256 on the other side, so memory stays
 * flat whatever the size. Exit code 1 on a mismatch or an error.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, type Hash } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import tls from 'node:tls';
import { burrow } from '../helpers/cli';
import { makeCa, makeCert } from '../helpers/certs';
import { listenLocal } from '../helpers/local';
import { Cleanup, LOCAL, TID } from '../e2e/support';

const MIB = Number(process.env.SOAK_HTTPS_MIB ?? 1024);
const TOTAL = MIB << 20;
const HOST = 'big.example.com';
const cleanup = new Cleanup();
after(() => cleanup.run());

/** Block `i` of the generated data (1 MiB, its bytes depending on `i`). */
function block(i: number): Buffer {
  const b = Buffer.alloc(1 << 20, i & 0xff);
  b.writeUInt32BE(i, 0);
  return b;
}

function expectedSha(): string {
  const h = createHash('sha256');
  for (let i = 0; i < MIB; i++) h.update(block(i));
  return h.digest('hex');
}

/** Writes the generated data to `out` with backpressure. */
function pump(out: NodeJS.WritableStream & { once(e: 'drain', f: () => void): unknown }, done: () => void): void {
  let i = 0;
  const next = (): void => {
    while (i < MIB) {
      if (!out.write(block(i++))) return void out.once('drain', next);
    }
    done();
  };
  next();
}

/** The service: POST answers with the size and SHA-256 of the body, GET /download sends the data. */
async function startService(): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.method === 'POST') {
      const h = createHash('sha256');
      let n = 0;
      req.on('data', (c: Buffer) => {
        n += c.length;
        h.update(c);
      });
      req.on('end', () => res.end(`${n} ${h.digest('hex')}`));
    } else {
      res.writeHead(200, { 'Content-Length': TOTAL });
      pump(res, () => res.end());
    }
  });
  return listenLocal(server);
}

function hashOf(stream: NodeJS.ReadableStream): Promise<{ n: number; sha: string }> {
  return new Promise((resolve, reject) => {
    const h: Hash = createHash('sha256');
    let n = 0;
    stream.on('data', (c: Buffer) => {
      n += c.length;
      h.update(c);
    });
    stream.on('end', () => resolve({ n, sha: h.digest('hex') }));
    stream.on('error', reject);
  });
}

describe(`https edge: ${MIB} MiB each way over https and h2`, () => {
  let ep = 0;
  let ca = '';
  const sha = expectedSha();

  it('starts a server terminating TLS and a client', async () => {
    const testCa = await makeCa();
    cleanup.fn(() => testCa.cleanup());
    ca = testCa.certPem;
    const cert = await makeCert(testCa, { cn: HOST, san: [HOST] });
    const svc = cleanup.add(await startService());
    const q = `entrypoint=127.0.0.1:0&tunnel=${HOST}:${TID.example}&entrypoint.certFile=${cert.certFile}&entrypoint.keyFile=${cert.keyFile}`;
    const server = burrow(['-L', `tunnel://127.0.0.1:0?${q}`], { name: 'server' });
    const port = await server.listeningPort();
    ep = await server.entrypointPort();
    burrow(['-L', `rtcp://:0/127.0.0.1:${svc.port}`, '-F', `tunnel://127.0.0.1:${port}?tunnel.id=${TID.example}`], { name: 'client' });
    await server.waitForMsg(new RegExp(`tunnel=${TID.example}, connector=.* established`));
  });

  it('uploads and downloads over https (HTTP/1.1)', async () => {
    const opts = { host: LOCAL, port: ep, servername: HOST, headers: { Host: HOST }, ca, agent: false as const };
    const up = await new Promise<string>((resolve, reject) => {
      const req = https.request({ ...opts, method: 'POST', path: '/up' }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve(body));
      });
      req.on('error', reject);
      pump(req, () => req.end());
    });
    assert.equal(up, `${TOTAL} ${sha}`);
    const down = await new Promise<{ n: number; sha: string }>((resolve, reject) => {
      https.get({ ...opts, path: '/download' }, (res) => hashOf(res).then(resolve, reject)).on('error', reject);
    });
    assert.deepEqual(down, { n: TOTAL, sha });
  });

  it('uploads and downloads over h2', async () => {
    const session = http2.connect(`https://${HOST}:${ep}`, {
      createConnection: () => tls.connect({ host: LOCAL, port: ep, servername: HOST, ca, ALPNProtocols: ['h2'] }),
    });
    session.on('error', () => undefined);
    try {
      const up = await new Promise<string>((resolve, reject) => {
        const req = session.request({ ':method': 'POST', ':path': '/up' }, { endStream: false });
        let body = '';
        req.setEncoding('utf8');
        req.on('data', (c: string) => (body += c));
        req.on('end', () => resolve(body));
        req.on('error', reject);
        pump(req, () => req.end());
      });
      assert.equal(up, `${TOTAL} ${sha}`);
      const req = session.request({ ':path': '/download' });
      assert.deepEqual(await hashOf(req), { n: TOTAL, sha });
    } finally {
      session.close();
    }
  });
});
