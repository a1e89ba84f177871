/**
 * Set-up for the ACME tests: pebble behind a one-port edge (test/helpers/tls-edge.ts), a temp
 * storage directory, the set of "live" names the managers may order for, and managers made on
 * demand (closed with everything else after the test).
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { AcmeManager, type AcmeManagerOptions } from '../../src/tls/acme/manager';
import { startPebble, type Pebble, type PebbleOptions } from './pebble';
import { startEdge, type Edge } from './tls-edge';
import { LOCAL } from './local';

export interface AcmeSetup {
  pebble: Pebble;
  edge: Edge;
  storage: string;
  live: Set<string>;
  manager(extra?: Partial<AcmeManagerOptions>): AcmeManager;
}


export async function acmeSetup(t: { after(fn: () => Promise<void> | void): void }, pebbleOpts: Partial<PebbleOptions> = {}): Promise<AcmeSetup> {
  const storage = await fs.mkdtemp(path.join(os.tmpdir(), 'burrow-acme-'));
  const live = new Set<string>();
  const managers: AcmeManager[] = [];
  let pebble: Pebble | undefined;
  const make = (extra: Partial<AcmeManagerOptions> = {}): AcmeManager => {
    const m = new AcmeManager({
      directoryUrl: pebble!.directoryUrl,
      caFile: pebble!.caFile,
      storageDir: storage,
      eligible: (name) => live.has(name),
      retryMinMs: 200,
      ...extra,
    });
    managers.push(m);
    return m;
  };
  // The edge needs a provider before pebble exists (pebble must know the edge's port): a stand-in
  // that is swapped for the real manager below.
  const none = { contextFor: () => undefined, httpChallenge: () => undefined, alpnChallengeContext: () => undefined };
  const edge = await startEdge(none);
  pebble = await startPebble({ httpPort: edge.port, tlsPort: edge.port, ...pebbleOpts });
  t.after(async () => {
    for (const m of managers) await m.close();
    await edge.close();
    await pebble!.stop();
    await fs.rm(storage, { recursive: true, force: true });
  });
  return { pebble, edge, storage, live, manager: make };
}

export function use(edge: Edge, m: AcmeManager): void {
  edge.provider = m;
  edge.answerer = m;
}

/** A TLS handshake to the edge with `name` as SNI, trusting `ca`; resolves with the peer certificate or the error. */
export function handshake(port: number, name: string, ca: string): Promise<{ cert?: tls.PeerCertificate; error?: Error }> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: LOCAL, port, servername: name, ca, timeout: 60_000 });
    s.once('secureConnect', () => {
      const cert = s.getPeerCertificate();
      s.destroy();
      resolve({ cert });
    });
    s.once('error', (error) => resolve({ error }));
    s.once('close', () => resolve({ error: new Error('closed before the handshake') }));
    s.once('timeout', () => s.destroy(new Error('handshake timeout')));
  });
}

export function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '60', ...args], (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

