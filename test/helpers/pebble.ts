/**
 * A private ACME CA for the tests: Debian's `pebble` with `pebble-challtestsrv` as its DNS
 * server (every name resolves to 127.0.0.1), all on 127.0.0.1 with ports from the OS. pebble
 * validates HTTP-01 on `httpPort` and TLS-ALPN-01 on `tlsPort` (the test's edge port).
 *
 *   const pebble = await startPebble({ httpPort: edge.port, tlsPort: edge.port });
 *   t.after(() => pebble.stop());
 *   // pebble.directoryUrl, pebble.caFile (trust for the directory), await pebble.rootPem()
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { promises as fs } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { join } from 'node:path';
import { makeCa, makeCert } from './certs';
import { LOCAL, sleep } from './local';
import { freePort } from './redis';

export interface Pebble {
  directoryUrl: string;
  /** CA file that signs pebble's own HTTPS certificate (for the ACME client). */
  caFile: string;
  managementPort: number;
  /** The root that signs issued certificates (generated at each start). */
  rootPem(): Promise<string>;
  /** pebble's and challtestsrv's output so far (for failure messages). */
  output(): string;
  stop(): Promise<void>;
}

export interface PebbleOptions {
  httpPort: number;
  tlsPort: number;
  /** Lifetime of issued certificates in seconds (pebble's default: 5 years). */
  validitySeconds?: number;
  /** Percentage of nonces pebble rejects on purpose (pebble's default 5; here 0 unless given). */
  nonceRejectPercent?: number;
}

export function havePebble(): boolean {
  return spawnSync('sh', ['-c', 'command -v pebble && command -v pebble-challtestsrv'], { stdio: 'ignore' }).status === 0;
}

function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.bind(0, LOCAL, () => {
      const port = s.address().port;
      s.close(() => resolve(port));
    });
  });
}

function httpsGet(url: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, LOCAL);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function stopProc(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
  p.kill('SIGKILL');
  await exited;
}

export async function startPebble(opts: PebbleOptions): Promise<Pebble> {
  if (!havePebble()) throw new Error('pebble is not installed (apt-get install pebble)');
  const ca = await makeCa({ cn: 'pebble test server CA' });
  const server = await makeCert(ca, { cn: 'localhost', san: ['localhost', LOCAL] });
  const caPem = await fs.readFile(ca.certFile, 'utf8');
  let out = '';
  const collect = (p: ChildProcess, tag: string): void => {
    p.stdout?.on('data', (c: Buffer) => (out += `[${tag}] ${c.toString('utf8')}`));
    p.stderr?.on('data', (c: Buffer) => (out += `[${tag}] ${c.toString('utf8')}`));
  };
  let dns: ChildProcess | undefined;
  let pebble: ChildProcess | undefined;
  const stopAll = async (): Promise<void> => {
    await stopProc(pebble);
    await stopProc(dns);
  };
  // A port taken by another process between the probe and the bind: try again with new ones.
  for (let attempt = 1; ; attempt++) {
    const dnsPort = await freeUdpPort();
    const dnsMgmt = await freePort();
    const listenPort = await freePort();
    const mgmtPort = await freePort();
    const config = {
      pebble: {
        listenAddress: `${LOCAL}:${listenPort}`,
        managementListenAddress: `${LOCAL}:${mgmtPort}`,
        certificate: server.certFile,
        privateKey: server.keyFile,
        httpPort: opts.httpPort,
        tlsPort: opts.tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
        ...(opts.validitySeconds ? { certificateValidityPeriod: opts.validitySeconds } : {}),
      },
    };
    const configFile = join(ca.dir, `pebble-${attempt}.json`);
    await fs.writeFile(configFile, JSON.stringify(config));
    dns = spawn(
      'pebble-challtestsrv',
      ['-defaultIPv4', LOCAL, '-defaultIPv6', '', '-dns01', `${LOCAL}:${dnsPort}`, '-http01', '', '-https01', '', '-tlsalpn01', '', '-management', `${LOCAL}:${dnsMgmt}`],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    collect(dns, 'challtestsrv');
    pebble = spawn('pebble', ['-config', configFile, '-dnsserver', `${LOCAL}:${dnsPort}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: String(opts.nonceRejectPercent ?? 0) },
    });
    collect(pebble, 'pebble');
    const directoryUrl = `https://${LOCAL}:${listenPort}/dir`;
    const deadline = Date.now() + 20_000;
    let ready = false;
    while (Date.now() < deadline && pebble.exitCode === null && dns.exitCode === null) {
      const dir = await httpsGet(directoryUrl, caPem).catch(() => undefined);
      if (dir?.status === 200 && (await tcpOpen(dnsMgmt))) {
        ready = true;
        break;
      }
      await sleep(50);
    }
    if (!ready) {
      await stopAll();
      if (attempt < 3) continue;
      await ca.cleanup();
      throw new Error(`pebble did not start:\n${out}`);
    }
    return {
      directoryUrl,
      caFile: ca.certFile,
      managementPort: mgmtPort,
      async rootPem(): Promise<string> {
        const r = await httpsGet(`https://${LOCAL}:${mgmtPort}/roots/0`, caPem);
        if (r.status !== 200) throw new Error(`pebble /roots/0 answered ${r.status}`);
        return r.body;
      },
      output: () => out,
      async stop(): Promise<void> {
        await stopAll();
        await ca.cleanup();
      },
    };
  }
}
