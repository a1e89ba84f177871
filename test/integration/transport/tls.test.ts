/**
 * TLS behaviour shared by the tls and wss transports: mutual TLS, client verification modes
 * (protocol.md §8.3), no SNI for IP literals, the persisted auto-generated certificate, and
 * handshake deadlines.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { Metadata } from '../../../src/core/metadata';
import { BurrowError } from '../../../src/core/errors';
import type { TLSConfig } from '../../../src/core/config';
import type { Conn, StreamListener } from '../../../src/core/transport';
import { DIALERS, LISTENERS } from '../../../src/transport';
import { AUTO_CERT_FILE, AUTO_KEY_FILE, clearAutoCertificateCache } from '../../../src/transport/tls';
import { makeCa, makeCert, makeSelfSigned, type CertFiles, type TestCa } from '../../helpers/certs';
import { memoryLogger, readN, waitFor, type MemoryLogger } from '../../helpers/net';

let ca: TestCa;
let otherCa: TestCa;
let serverCert: CertFiles;
let clientCert: CertFiles;
let strangerCert: CertFiles;
let selfSigned: CertFiles;

/** Cleanups of every listener, connection and server the tests open; run at the very end. */
const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

before(async () => {
  ca = await makeCa({ cn: 'burrow test CA' });
  otherCa = await makeCa({ cn: 'some other CA' });
  serverCert = await makeCert(ca, { cn: 'tunnel.burrow.test', san: ['tunnel.burrow.test', '127.0.0.1'] });
  clientCert = await makeCert(ca, { cn: 'client-1' });
  strangerCert = await makeCert(otherCa, { cn: 'client-2' });
  selfSigned = await makeSelfSigned(ca.dir, { cn: 'tunnel.burrow.test', san: ['tunnel.burrow.test', '127.0.0.1'] });
});
after(async () => {
  await ca?.cleanup();
  await otherCa?.cleanup();
});

interface Server {
  listener: StreamListener;
  conns: Conn[];
  log: MemoryLogger;
}

/** An echo listener of `kind` on 127.0.0.1:0, closed after the current suite. */
async function echoServer(kind: 'tls' | 'wss', tlsCfg: TLSConfig | undefined, md: Record<string, unknown> = {}): Promise<Server> {
  const log = memoryLogger('debug');
  const listener = LISTENERS[kind]!({ addr: '127.0.0.1:0', metadata: new Metadata(md), tls: tlsCfg, logger: log.logger });
  const conns: Conn[] = [];
  await listener.listen((conn) => {
    conns.push(conn);
    conn.stream.on('error', () => undefined);
    conn.stream.pipe(conn.stream);
  });
  cleanups.push(async () => {
    await listener.close();
    for (const c of conns) c.stream.destroy();
  });
  return { listener, conns, log };
}

async function dial(kind: 'tls' | 'wss', addr: string, tlsCfg?: TLSConfig, md: Record<string, unknown> = {}): Promise<Conn> {
  const dialer = DIALERS[kind]!({ metadata: new Metadata(md), tls: tlsCfg, logger: memoryLogger('silent').logger });
  const conn = await dialer.dial(addr);
  conn.stream.on('error', () => undefined);
  cleanups.push(() => conn.stream.destroy());
  return conn;
}

async function echoes(conn: Conn): Promise<void> {
  const probe = Buffer.from(`ping ${Math.random()}`);
  const reading = readN(conn.stream, probe.length, 5_000);
  conn.stream.write(probe);
  assert.equal((await reading).toString(), probe.toString());
}

/**
 * The connection must not carry data: either the dial fails, or (TLS 1.3, where the server
 * checks the client certificate after the client finished) the stream dies unanswered.
 */
async function refused(p: Promise<Conn>): Promise<void> {
  let conn: Conn;
  try {
    conn = await p;
  } catch {
    return;
  }
  const done = new Promise<string>((resolve) => {
    conn.stream.once('data', () => resolve('data'));
    conn.stream.once('end', () => resolve('end'));
    conn.stream.once('close', () => resolve('close'));
    conn.stream.once('error', () => resolve('error'));
  });
  conn.stream.write('ping');
  assert.notEqual(await done, 'data');
  conn.stream.destroy();
}

for (const kind of ['tls', 'wss'] as const) {
  describe(`${kind}: mutual TLS (listener caFile)`, () => {
    let server: Server;
    before(async () => {
      server = await echoServer(kind, { certFile: serverCert.certFile, keyFile: serverCert.keyFile, caFile: ca.certFile });
    });

    it('accepts a client certificate signed by the CA', async () => {
      const conn = await dial(kind, server.listener.address(), { certFile: clientCert.certFile, keyFile: clientCert.keyFile });
      await echoes(conn);
    });

    it('refuses a client without a certificate, logs it, and keeps serving', async () => {
      const before = server.conns.length;
      await refused(dial(kind, server.listener.address()));
      await waitFor(() => server.log.lines.some((l) => l['msg'] === 'tls handshake failed'), 5_000, 'log line');
      const line = server.log.lines.find((l) => l['msg'] === 'tls handshake failed')!;
      assert.equal(line['level'], 'warn');
      assert.match(String(line['remote']), /^127\.0\.0\.1:\d+$/);
      assert.equal(server.conns.length, before);
      await echoes(await dial(kind, server.listener.address(), { certFile: clientCert.certFile, keyFile: clientCert.keyFile }));
    });

    it('refuses a client certificate from another CA', async () => {
      const before = server.conns.length;
      const logged = server.log.lines.length;
      await refused(dial(kind, server.listener.address(), { certFile: strangerCert.certFile, keyFile: strangerCert.keyFile }));
      await waitFor(
        () => server.log.lines.slice(logged).some((l) => l['msg'] === 'tls handshake failed'),
        5_000,
        'log line',
      );
      assert.equal(server.conns.length, before);
    });
  });
}

describe('tls: client verification', () => {
  let selfSignedServer: Server;
  let caSignedServer: Server;
  before(async () => {
    selfSignedServer = await echoServer('tls', { certFile: selfSigned.certFile, keyFile: selfSigned.keyFile });
    caSignedServer = await echoServer('tls', { certFile: serverCert.certFile, keyFile: serverCert.keyFile });
  });

  it('does not verify by default (gost: secure=false)', async () => {
    await echoes(await dial('tls', selfSignedServer.listener.address()));
  });

  it('secure=true refuses a self-signed server certificate', async () => {
    await assert.rejects(dial('tls', selfSignedServer.listener.address(), { secure: true, caFile: ca.certFile }), (err: Error) => {
      assert.ok(err instanceof BurrowError);
      assert.equal(err.code, 'BURROW_ERR_DIAL');
      assert.match(err.message, /tls handshake with 127\.0\.0\.1:\d+/);
      return true;
    });
  });

  it('secure=true accepts a server signed by caFile (IP SAN)', async () => {
    await echoes(await dial('tls', caSignedServer.listener.address(), { secure: true, caFile: ca.certFile }));
  });

  it('secure=true checks the host name (serverName override)', async () => {
    const addr = caSignedServer.listener.address();
    await echoes(await dial('tls', addr, { secure: true, caFile: ca.certFile, serverName: 'tunnel.burrow.test' }));
    await assert.rejects(dial('tls', addr, { secure: true, caFile: ca.certFile, serverName: 'elsewhere.test' }));
  });

  it('secure from metadata works like tls.secure', async () => {
    await assert.rejects(dial('tls', selfSignedServer.listener.address(), undefined, { secure: 'true', caFile: ca.certFile }));
  });

  it('caFile without secure verifies the chain but not the host name', async () => {
    const addr = caSignedServer.listener.address();
    await echoes(await dial('tls', addr, { caFile: ca.certFile, serverName: 'elsewhere.test' }));
    await assert.rejects(dial('tls', addr, { caFile: otherCa.certFile }));
    await assert.rejects(dial('tls', selfSignedServer.listener.address(), { caFile: ca.certFile }));
  });
});

describe('SNI', () => {
  for (const kind of ['tls', 'wss'] as const) {
    it(`${kind}: no SNI for an IP literal; the name otherwise`, async () => {
      const server = await echoServer(kind, { certFile: serverCert.certFile, keyFile: serverCert.keyFile });
      const addr = server.listener.address();
      const servernameOfLast = async (): Promise<unknown> => {
        await waitFor(() => server.conns.length > 0, 5_000, 'server conn');
        const s = server.conns[server.conns.length - 1]!.stream;
        // wss: the WsStream sits on the TLS socket; tls: the stream is the TLS socket.
        const sock = (kind === 'wss' ? (s as unknown as { webSocket: { _socket: TLSSocket } }).webSocket._socket : s) as TLSSocket;
        return sock.servername;
      };

      const byIp = await dial(kind, addr);
      await echoes(byIp);
      assert.equal(await servernameOfLast(), false);

      const n = server.conns.length;
      const byName = await dial(kind, addr, { serverName: 'tunnel.burrow.test' });
      await echoes(byName);
      await waitFor(() => server.conns.length > n, 5_000, 'second conn');
      assert.equal(await servernameOfLast(), 'tunnel.burrow.test');
    });
  }

  it('captures the ClientHello: no server_name extension for 127.0.0.1', async () => {
    let hello = Buffer.alloc(0);
    const raw = net.createServer((sock) => {
      sock.on('data', (d: Buffer) => {
        hello = Buffer.concat([hello, d]);
        if (hello.length >= 5 && hello.length >= 5 + hello.readUInt16BE(3)) sock.destroy();
      });
    });
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => raw.close(() => r())));
    const { port } = raw.address() as net.AddressInfo;
    const dialer = DIALERS['tls']!({ metadata: new Metadata({ handshakeTimeout: '2s' }), logger: memoryLogger('silent').logger });

    await assert.rejects(dialer.dial(`127.0.0.1:${port}`));
    assert.equal(hello[0], 0x16, 'a TLS handshake record');
    assert.equal(hasServerNameExtension(hello), false);

    hello = Buffer.alloc(0);
    const named = DIALERS['tls']!({ metadata: new Metadata({ handshakeTimeout: '2s' }), tls: { serverName: 'x.burrow.test' }, logger: memoryLogger('silent').logger });
    await assert.rejects(named.dial(`127.0.0.1:${port}`));
    assert.equal(hasServerNameExtension(hello), true);
  });
});

/** Walks a ClientHello record to its extensions and looks for server_name (type 0). */
function hasServerNameExtension(rec: Buffer): boolean {
  let p = 5; // record header
  assert.equal(rec[p], 0x01, 'ClientHello');
  p += 4; // handshake header
  p += 2 + 32; // version, random
  p += 1 + rec[p]!; // session id
  p += 2 + rec.readUInt16BE(p); // cipher suites
  p += 1 + rec[p]!; // compression methods
  const end = p + 2 + rec.readUInt16BE(p);
  p += 2;
  while (p + 4 <= end) {
    const type = rec.readUInt16BE(p);
    const len = rec.readUInt16BE(p + 2);
    if (type === 0) return true;
    p += 4 + len;
  }
  return false;
}

describe('auto-generated server certificate', () => {
  let home: string;
  const savedHome = process.env['BURROW_HOME'];
  before(async () => {
    home = await fs.mkdtemp(path.join(os.tmpdir(), 'burrow-home-'));
    process.env['BURROW_HOME'] = home;
    clearAutoCertificateCache();
  });
  after(async () => {
    if (savedHome === undefined) delete process.env['BURROW_HOME'];
    else process.env['BURROW_HOME'] = savedHome;
    clearAutoCertificateCache();
    await fs.rm(home, { recursive: true, force: true });
  });

  async function servedFingerprint(server: Server): Promise<string> {
    const conn = await dial('tls', server.listener.address());
    await echoes(conn);
    return (conn.stream as TLSSocket).getPeerCertificate().fingerprint256;
  }

  it('is generated once, persisted, logged, and reused on the next start', async () => {
    const first = await echoServer('tls', undefined);
    const certFile = path.join(home, AUTO_CERT_FILE);
    const keyFile = path.join(home, AUTO_KEY_FILE);
    const pem = await fs.readFile(certFile, 'utf8');
    const keyStat = await fs.stat(keyFile);
    assert.equal(keyStat.mode & 0o077, 0, 'private key readable by owner only');

    const x = new X509Certificate(pem);
    assert.match(x.subject, /CN=burrow/);
    assert.match(x.subject, /O=burrow/);
    assert.equal(x.ca, true);
    assert.equal(x.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const days = (Date.parse(x.validTo) - Date.parse(x.validFrom)) / 86_400_000;
    assert.ok(days > 364 && days < 367, `validity ${days} days`);
    const genLines = first.log.lines.filter((l) => l['msg'] === 'generated a self-signed TLS certificate');
    assert.equal(genLines.length, 1);
    assert.equal(genLines[0]!['level'], 'info');
    assert.equal(genLines[0]!['certFile'], certFile);
    assert.equal(await servedFingerprint(first), x.fingerprint256);

    // A later start (fresh process state) reads the same files instead of generating.
    await first.listener.close();
    clearAutoCertificateCache();
    const second = await echoServer('wss', undefined);
    assert.equal(await fs.readFile(certFile, 'utf8'), pem);
    assert.ok(second.log.lines.some((l) => l['msg'] === 'using the auto-generated TLS certificate' && l['certFile'] === certFile));
    assert.ok(!second.log.lines.some((l) => l['msg'] === 'generated a self-signed TLS certificate'));
    const conn = await dial('wss', second.listener.address());
    await echoes(conn);
    const tlsSock = (conn.stream as unknown as { webSocket: { _socket: TLSSocket } }).webSocket._socket;
    assert.equal(tlsSock.getPeerCertificate().fingerprint256, x.fingerprint256);
  });
});

describe('handshake deadlines', () => {
  it('the dialer gives up on a server that never answers the ClientHello', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    cleanups.push(() => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => silent.close(() => r()));
    });
    const { port } = silent.address() as net.AddressInfo;
    const started = Date.now();
    await assert.rejects(dial('tls', `127.0.0.1:${port}`, undefined, { handshakeTimeout: '300ms' }), (err: Error) => {
      assert.ok(err instanceof BurrowError);
      assert.equal(err.code, 'BURROW_ERR_TIMEOUT');
      assert.match(err.message, /127\.0\.0\.1:\d+.*300ms/);
      return true;
    });
    assert.ok(Date.now() - started < 3_000);
  });
});
