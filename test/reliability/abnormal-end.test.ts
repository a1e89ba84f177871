/**
 * An abnormal end looks abnormal: a client killed with `kill -9` in the middle of a transfer
 * (real processes) reaches the visitor and the entry-point user as a reset (ECONNRESET), never
 * as a clean end that would make a cut transfer look complete: visitor TCP, entry-point HTTP
 * with a chunked and a content-length response (no terminating chunk, fewer bytes than the
 * length), and TLS passed through by SNI. A transfer that ends cleanly still ends with a FIN.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import tls from 'node:tls';
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { stopAll } from '../helpers/cli';
import { listenLocal, type LocalServer } from '../helpers/local';
import { makeSelfSigned } from '../helpers/certs';
import { LOCAL, connectTcp, newTid, startClient, startServer, startTcpVisitor, established, type ServerProc } from './support';

const CHUNK = Buffer.alloc(16 * 1024, 0x61);

/** Writes `CHUNK` to `w` for as long as it is open, with backpressure. */
function flood(w: NodeJS.WritableStream & { destroyed?: boolean; write(b: Buffer): boolean }, encode: (b: Buffer) => Buffer | string = (b) => b): void {
  const more = (): void => {
    while (!w.destroyed) {
      if (!w.write(encode(CHUNK) as Buffer)) {
        w.once('drain', more);
        return;
      }
    }
  };
  more();
}

/**
 * How the kernel ended a connection that Node reported as EOF: a FIN leaves our socket in
 * CLOSE-WAIT (we have not closed our side), a reset closes it at once. (libuv reports a reset
 * that arrives behind unread data as EOF, so the 'end' event alone cannot tell them apart.)
 */
function kernelEnd(localPort: number, remotePort: number): string {
  const out = execFileSync('ss', ['-tanH', 'state', 'all', `( sport = :${localPort} and dport = :${remotePort} )`], { encoding: 'utf8' }).trim();
  if (out === '') return 'ECONNRESET';
  const state = out.split(/\s+/)[0]!;
  return state === 'CLOSE-WAIT' ? 'end' : `end (${state})`;
}

interface Outcome {
  bytes: number;
  tail: Buffer;
  /** The error code the connection ended with (ECONNRESET for a reset), or 'end' for a FIN. */
  how: string;
}

/**
 * Reads `s` (connected, allowing half-open) until it ends; once `before` bytes came, calls `cut`
 * (kills the client). Resolves with how the connection ended.
 */
function readUntilEnd(s: net.Socket | tls.TLSSocket, before: number, cut: () => void): Promise<Outcome> {
  const localPort = s.localPort!;
  const remotePort = s.remotePort!;
  return new Promise((resolve) => {
    let bytes = 0;
    let tail = Buffer.alloc(0);
    let fired = false;
    let done = false;
    const settle = (how: string): void => {
      if (done) return;
      done = true;
      resolve({ bytes, tail, how });
      s.destroy();
    };
    s.on('data', (c: Buffer) => {
      bytes += c.length;
      tail = Buffer.concat([tail, c]).subarray(-64);
      if (!fired && bytes >= before) {
        fired = true;
        cut();
      }
    });
    // Synchronously, before our side closes in turn.
    s.on('end', () => settle(kernelEnd(localPort, remotePort)));
    s.on('error', (e: NodeJS.ErrnoException) => settle(e.code ?? e.message));
    s.on('close', () => settle('close without end'));
  });
}

describe('an abnormal end reaches the other side as one', () => {
  let server: ServerProc;
  const locals: LocalServer[] = [];
  let dir: string;

  const HOSTS = { tcp: newTid(), 'tcp-clean': newTid(), chunked: newTid(), 'content-length': newTid(), tls: newTid(), clean: newTid() };
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'burrow-abnormal-'));
    server = await startServer(`tunnel=${Object.entries(HOSTS).map(([h, tid]) => `${h}.abnormal.test:${tid}`).join(',')}`);
  });
  after(async () => {
    await stopAll();
    for (const l of locals) await l.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A client of tunnel `tid` (a new one by default) forwarding to `target`. */
  async function tunnelTo(target: number, tid = newTid()): Promise<{ tid: string; kill: () => void }> {
    const c = await startClient(server.port, tid, `${LOCAL}:${target}`);
    await established(server.proc, c.connector);
    return { tid, kill: () => c.proc.proc.kill('SIGKILL') };
  }

  async function tcpFlood(): Promise<number> {
    const l = await listenLocal(
      net.createServer((s) => {
        s.on('error', () => undefined);
        flood(s);
      }),
    );
    locals.push(l);
    return l.port;
  }

  it('visitor TCP: kill -9 of the client mid-transfer is a reset, not a FIN', async () => {
    const t = await tunnelTo(await tcpFlood(), HOSTS.tcp);
    const visitor = await startTcpVisitor(server.port, t.tid, 'tcp.abnormal.test:80');
    const s = await connectTcp(visitor.port);
    const r = await readUntilEnd(s, 1 << 20, t.kill);
    assert.equal(r.how, 'ECONNRESET', `ended with ${r.how} after ${r.bytes} bytes`);
  });

  it('visitor TCP: a transfer that ends cleanly still ends with a FIN and every byte', async () => {
    const total = 3 * 1024 * 1024 + 17;
    const l = await listenLocal(
      net.createServer((s) => {
        s.on('error', () => undefined);
        s.end(Buffer.alloc(total, 0x62));
      }),
    );
    locals.push(l);
    const t = await tunnelTo(l.port, HOSTS['tcp-clean']);
    const visitor = await startTcpVisitor(server.port, t.tid, 'tcp-clean.abnormal.test:80');
    const s = await connectTcp(visitor.port);
    const r = await readUntilEnd(s, Infinity, () => undefined);
    assert.equal(r.how, 'end');
    assert.equal(r.bytes, total);
  });

  for (const framing of ['chunked', 'content-length'] as const) {
    it(`entry-point HTTP, ${framing} response: kill -9 of the client mid-body is a reset`, async () => {
      const length = 1 << 30;
      const l = await listenLocal(
        http.createServer((req, res) => {
          req.resume();
          res.on('error', () => undefined);
          res.writeHead(200, framing === 'chunked' ? { 'content-type': 'application/octet-stream' } : { 'content-length': String(length) });
          flood(res);
        }),
      );
      locals.push(l);
      const t = await tunnelTo(l.port, HOSTS[framing]);
      const s = await connectTcp(server.ep);
      s.write(`GET /big HTTP/1.1\r\nHost: ${framing}.abnormal.test\r\n\r\n`);
      const r = await readUntilEnd(s, 1 << 20, t.kill);
      assert.equal(r.how, 'ECONNRESET', `ended with ${r.how} after ${r.bytes} bytes`);
      assert.ok(!r.tail.toString('latin1').endsWith('0\r\n\r\n'), 'no terminating chunk');
      if (framing === 'content-length') assert.ok(r.bytes < length);
    });
  }

  it('entry-point HTTP: a complete response on a connection that closes still ends with a FIN', async () => {
    const l = await listenLocal(
      http.createServer((req, res) => {
        req.resume();
        res.writeHead(200, { 'content-length': '5', connection: 'close' });
        res.end('whole');
      }),
    );
    locals.push(l);
    await tunnelTo(l.port, HOSTS.clean);
    const s = await connectTcp(server.ep);
    s.write('GET / HTTP/1.1\r\nHost: clean.abnormal.test\r\nConnection: close\r\n\r\n');
    const r = await readUntilEnd(s, Infinity, () => undefined);
    assert.equal(r.how, 'end');
    assert.match(r.tail.toString('latin1'), /\r\n\r\nwhole$/);
  });

  it('TLS passed through by SNI: kill -9 of the client mid-transfer is a reset', async () => {
    const cert = await makeSelfSigned(dir, { cn: 'tls.abnormal.test' });
    const l = await listenLocal(
      tls.createServer({ cert: cert.certPem, key: cert.keyPem }, (s) => {
        s.on('error', () => undefined);
        flood(s);
      }),
    );
    locals.push(l);
    const t = await tunnelTo(l.port, HOSTS.tls);
    const s = tls.connect({ host: LOCAL, port: server.ep, servername: 'tls.abnormal.test', rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      s.once('secureConnect', resolve);
      s.once('error', reject);
    });
    const r = await readUntilEnd(s, 1 << 20, t.kill);
    assert.equal(r.how, 'ECONNRESET', `ended with ${r.how} after ${r.bytes} bytes`);
  });
});
