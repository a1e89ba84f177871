/**
 * Certificates from files (`entrypoint.certFile` / `entrypoint.keyFile`): each pair is loaded once
 * at start, and a TLS connection's SNI picks one: an exact name of a certificate's DNS SANs (its
 * CN when it has none) first, then a wildcard `*.example.net`, which matches exactly one label
 * (`a.example.net`, not `example.net` nor `a.b.example.net`), as browsers match. When two
 * certificates name the same host, the first given wins.
 */
import fs from 'node:fs';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import tls, { type SecureContext } from 'node:tls';
import type { CertificateProvider } from './provider';

/** A list option as given: "a,b" on the command line, a YAML list, or nothing. */
export function listOption(value: unknown): string[] {
  if (value === undefined || value === null || value === '') return [];
  const items = Array.isArray(value) ? value.map(String) : String(value).split(',');
  return items.map((s) => s.trim()).filter((s) => s !== '');
}

/** "Example.NET." → "example.net". */
export function normalizeName(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith('.') ? n.slice(0, -1) : n;
}

/** The DNS names a certificate is for: its DNS SANs, else its subject's CN. */
export function certificateNames(cert: X509Certificate): string[] {
  const out: string[] = [];
  for (const part of (cert.subjectAltName ?? '').split(/,\s*/)) {
    if (part.startsWith('DNS:')) out.push(normalizeName(part.slice(4)));
  }
  if (out.length > 0) return out;
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject);
  return cn ? [normalizeName(cn[1]!.trim())] : [];
}

/** A wildcard `*.rest` stored under `rest`; null for anything else. */
function wildcardSuffix(name: string): string | null {
  return name.startsWith('*.') && name.length > 2 && !name.slice(2).includes('*') ? name.slice(2) : null;
}

export interface LoadedCertificate {
  readonly certFile: string;
  readonly keyFile: string;
  readonly names: readonly string[];
  readonly validTo: string;
  readonly context: SecureContext;
}

/** Reads a file for a pair, the error naming it. */
function readPem(file: string, what: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new Error(`${what} ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`, { cause: err });
  }
}

/** Loads one certificate (with its chain) and key; throws an Error naming the file at fault. */
export function loadCertificate(certFile: string, keyFile: string): LoadedCertificate {
  const certPem = readPem(certFile, 'certificate file');
  const keyPem = readPem(keyFile, 'key file');
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw new Error(`certificate file ${certFile}: not a PEM certificate (${(err as Error).message})`, { cause: err });
  }
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw new Error(`key file ${keyFile}: not a PEM private key (${(err as Error).message})`, { cause: err });
  }
  if (!cert.checkPrivateKey(key)) throw new Error(`key file ${keyFile} does not match the certificate in ${certFile}`);
  const names = certificateNames(cert);
  if (names.length === 0) throw new Error(`certificate file ${certFile}: the certificate names no DNS host (no DNS SAN, no CN)`);
  let context: SecureContext;
  try {
    context = tls.createSecureContext({ cert: certPem, key: keyPem });
  } catch (err) {
    throw new Error(`certificate file ${certFile}: ${(err as Error).message}`, { cause: err });
  }
  return { certFile, keyFile, names, validTo: cert.validTo, context };
}

export class FileCertificates implements CertificateProvider {
  readonly certificates: readonly LoadedCertificate[];
  readonly #exact = new Map<string, SecureContext>();
  readonly #wild = new Map<string, SecureContext>();

  constructor(certificates: readonly LoadedCertificate[]) {
    this.certificates = certificates;
    for (const c of certificates) {
      for (const n of c.names) {
        const suffix = wildcardSuffix(n);
        const map = suffix === null ? this.#exact : this.#wild;
        const key = suffix ?? n;
        if (!map.has(key)) map.set(key, c.context);
      }
    }
  }

  /**
   * The pairs of `certFile` / `keyFile` (lists of the same length, taken in order). Throws an
   * Error naming the file at fault, or the lists' lengths when they differ.
   */
  static load(certFiles: readonly string[], keyFiles: readonly string[]): FileCertificates {
    if (certFiles.length !== keyFiles.length) {
      throw new Error(`${certFiles.length} certificate file(s) but ${keyFiles.length} key file(s): give one key file per certificate file, in the same order`);
    }
    return new FileCertificates(certFiles.map((c, i) => loadCertificate(c, keyFiles[i]!)));
  }

  /** The context for `servername`: an exact name, then a wildcard one label up. */
  contextFor(servername: string): SecureContext | undefined {
    const name = normalizeName(servername);
    const exact = this.#exact.get(name);
    if (exact !== undefined) return exact;
    const dot = name.indexOf('.');
    return dot > 0 ? this.#wild.get(name.slice(dot + 1)) : undefined;
  }

  /** Whether a certificate covers `servername`. */
  has(servername: string): boolean {
    return this.contextFor(servername) !== undefined;
  }
}

/** Host patterns that keep end-to-end TLS (`entrypoint.passthrough`): exact names and `*.suffix` (one label). */
export class HostPatterns {
  readonly #exact = new Set<string>();
  readonly #wild = new Set<string>();

  constructor(patterns: readonly string[]) {
    for (const p of patterns) {
      const n = normalizeName(p);
      const suffix = wildcardSuffix(n);
      if (suffix === null && n.includes('*')) throw new Error(`"${p}": a wildcard is "*." followed by a domain (e.g. *.example.net)`);
      if (suffix === null) this.#exact.add(n);
      else this.#wild.add(suffix);
    }
  }

  get size(): number {
    return this.#exact.size + this.#wild.size;
  }

  matches(host: string): boolean {
    const name = normalizeName(host);
    if (this.#exact.has(name)) return true;
    const dot = name.indexOf('.');
    return dot > 0 && this.#wild.has(name.slice(dot + 1));
  }
}
