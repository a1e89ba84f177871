/**
 * Test PKI: a CA and certificates it signs, written as PEM files into a temp dir.
 *
 *   const ca = await makeCa();            t.after(() => ca.cleanup());
 *   const server = await makeCert(ca, { cn: 'localhost', san: ['localhost', '127.0.0.1'] });
 *   // server.certFile, server.keyFile, ca.certFile
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { KeyObject } from 'node:crypto';
import { createCertificate, type DistinguishedName } from '../../src/transport/tls/x509';

export interface CertFiles {
  certFile: string;
  keyFile: string;
  certPem: string;
  keyPem: string;
}

export interface TestCa extends CertFiles {
  /** The temp dir holding this CA's files and every certificate made from it. */
  dir: string;
  subject: DistinguishedName;
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** Removes `dir`. */
  cleanup(): Promise<void>;
}

let counter = 0;

async function writePair(dir: string, base: string, certPem: string, keyPem: string): Promise<CertFiles> {
  const certFile = path.join(dir, `${base}-cert.pem`);
  const keyFile = path.join(dir, `${base}-key.pem`);
  await fs.writeFile(certFile, certPem);
  await fs.writeFile(keyFile, keyPem, { mode: 0o600 });
  return { certFile, keyFile, certPem, keyPem };
}

/** A self-signed ECDSA P-256 CA in a fresh temp dir. */
export async function makeCa(opts: { cn?: string; organization?: string } = {}): Promise<TestCa> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'burrow-pki-'));
  const subject = { commonName: opts.cn ?? 'burrow test CA', organization: opts.organization ?? 'burrow tests' };
  const gen = createCertificate({
    subject,
    isCa: true,
    keyUsage: ['digitalSignature', 'keyCertSign', 'cRLSign'],
  });
  const files = await writePair(dir, 'ca', gen.certPem, gen.keyPem);
  return {
    ...files,
    dir,
    subject,
    privateKey: gen.privateKey,
    publicKey: gen.publicKey,
    cleanup: () => fs.rm(dir, { recursive: true, force: true }),
  };
}

/**
 * A leaf certificate signed by `ca` (server and client auth), written into `ca.dir`.
 * `san` holds DNS names and IP literals; default: just `cn`.
 */
export async function makeCert(ca: TestCa, opts: { cn: string; san?: string[]; validityMs?: number }): Promise<CertFiles> {
  const gen = createCertificate({
    subject: { commonName: opts.cn },
    sans: opts.san ?? [opts.cn],
    keyUsage: ['digitalSignature', 'keyEncipherment'],
    extKeyUsage: ['serverAuth', 'clientAuth'],
    validityMs: opts.validityMs,
    issuer: { subject: ca.subject, privateKey: ca.privateKey, publicKey: ca.publicKey },
  });
  const base = `${opts.cn.replace(/[^A-Za-z0-9.-]/g, '_')}-${++counter}`;
  return writePair(ca.dir, base, gen.certPem, gen.keyPem);
}

/** A self-signed leaf certificate (not a CA) written into `dir`. */
export async function makeSelfSigned(dir: string, opts: { cn: string; san?: string[] }): Promise<CertFiles> {
  const gen = createCertificate({
    subject: { commonName: opts.cn },
    sans: opts.san ?? [opts.cn],
    keyUsage: ['digitalSignature'],
    extKeyUsage: ['serverAuth', 'clientAuth'],
  });
  return writePair(dir, `self-${opts.cn.replace(/[^A-Za-z0-9.-]/g, '_')}-${++counter}`, gen.certPem, gen.keyPem);
}
