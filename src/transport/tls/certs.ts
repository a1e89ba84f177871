/**
 * Certificates and TLS options for every TLS-based transport (tls, wss, and later mtls/mwss),
 * following gost (protocol.md §8.3).
 *
 * Server certificate, first found wins:
 *   1. the listener's `tls.certFile`/`keyFile` (or metadata `certFile|cert|tls.certFile`, ...),
 *   2. the global `tls:` section's certFile/keyFile,
 *   3. `cert.pem` + `key.pem` in the working directory,
 *   4. a self-signed certificate generated on first use: ECDSA P-256, also a CA, CN/O
 *      `burrow`, one year (`validity`, `commonName`, `organization` of the global section
 *      override). It is kept in memory, as gost does; with `$BURROW_HOME` set it is kept there
 *      as `auto-ca-cert.pem` + `auto-ca-key.pem` and reused. Nothing is written anywhere else.
 * A `caFile` (listener first, else global) turns on mutual TLS: client certificates are
 * required and verified against it.
 *
 * Client: verification is off by default; `secure=true` verifies chain and host name;
 * `caFile` without `secure` verifies the chain against the CA only. No SNI for IP literals.
 */
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isIP } from 'node:net';
import type { ConnectionOptions, SecureVersion, TlsOptions } from 'node:tls';
import type { Logger } from 'pino';
import type { Metadata } from '../../core/metadata';
import { parseGoDurationMs } from '../../core/metadata';
import { ConfigError } from '../../core/errors';
import type { TLSConfig, TLSOptionsConfig } from '../../core/config';
import { createCertificate, ONE_YEAR_MS } from './x509';
import { DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS, TLS_CLIENT, TLS_FILES, TLS_HANDSHAKE } from '../../core/options/transport';
import { parseOption, parseOptions } from '../../core/options/options';

/** Default deadline for a TLS handshake, both sides (metadata `handshakeTimeout`). */
export { DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS };

export const AUTO_CERT_FILE = 'auto-ca-cert.pem';
export const AUTO_KEY_FILE = 'auto-ca-key.pem';
const AUTO_DEFAULT_NAME = 'burrow';

export function tlsHandshakeTimeoutMs(md: Metadata): number {
  return parseOption(TLS_HANDSHAKE.tlsHandshakeTimeout, md);
}

/** Where the auto-generated certificate is kept: `$BURROW_HOME`, else nowhere (memory only). */
export function burrowHome(): string | undefined {
  return process.env['BURROW_HOME'] || undefined;
}

export interface ServerTlsSource {
  tls?: TLSConfig;
  globalTls?: TLSConfig;
  metadata?: Metadata;
  logger: Logger;
}

/**
 * TLS options for a server (tls.createServer / https.createServer). Rejects with a
 * ConfigError when a configured file cannot be read or the pair does not parse.
 */
export async function loadServerTlsOptions(src: ServerTlsSource): Promise<TlsOptions> {
  const files = src.metadata ? parseOptions(TLS_FILES, src.metadata) : undefined;
  const local: TLSConfig = {
    certFile: src.tls?.certFile || files?.certFile,
    keyFile: src.tls?.keyFile || files?.keyFile,
    caFile: src.tls?.caFile || files?.caFile,
  };
  const global = src.globalTls ?? {};
  let pair: KeyPairPem;
  if (local.certFile || local.keyFile) pair = await readKeyPair(local.certFile, local.keyFile);
  else if (global.certFile || global.keyFile) pair = await readKeyPair(global.certFile, global.keyFile);
  else pair = (await readCwdKeyPair()) ?? (await loadAutoCertificate(src.logger, global));

  const out: TlsOptions = { cert: pair.cert, key: pair.key };
  const caFile = local.caFile || global.caFile;
  if (caFile) {
    out.ca = await readPem(caFile, 'caFile');
    out.requestCert = true;
    out.rejectUnauthorized = true;
  } else {
    out.requestCert = false;
    out.rejectUnauthorized = false;
  }
  applyTlsOptions(out, src.tls?.options ?? global.options, src.logger);
  return out;
}

/**
 * TLS options for a client connecting to `host` (the node's host; used as server name unless
 * `serverName` is set). The caller adds `socket`. Rejects with a ConfigError on unreadable files.
 */
export async function loadClientTlsOptions(
  tlsConfig: TLSConfig | undefined,
  md: Metadata | undefined,
  host: string,
  logger?: Logger,
): Promise<ConnectionOptions> {
  const cfg = tlsConfig ?? {};
  const o = md ? parseOptions({ ...TLS_FILES, ...TLS_CLIENT }, md) : undefined;
  const secure = cfg.secure ?? o?.secure ?? false;
  const serverName = cfg.serverName || o?.serverName || (host === '' ? '127.0.0.1' : host);
  const caFile = cfg.caFile || o?.caFile;
  const certFile = cfg.certFile || o?.certFile;
  const keyFile = cfg.keyFile || o?.keyFile;

  const out: ConnectionOptions = {
    // Used by Node for the host name check; SNI is set separately below.
    host: serverName,
    rejectUnauthorized: secure || Boolean(caFile),
  };
  // Go sends no SNI for an IP literal; Node would send it (and warn), so leave it out.
  if (isIP(serverName) === 0) out.servername = serverName;
  if (caFile) out.ca = await readPem(caFile, 'caFile');
  // caFile without secure: chain checked against the CA, host name not checked.
  if (!secure) out.checkServerIdentity = () => undefined;
  if (certFile || keyFile) {
    const pair = await readKeyPair(certFile, keyFile);
    out.cert = pair.cert;
    out.key = pair.key;
  }
  applyTlsOptions(out, cfg.options, logger);
  return out;
}

// ---- files ---------------------------------------------------------------------------------

interface KeyPairPem {
  cert: string;
  key: string;
}

async function readPem(file: string, what: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read ${what} "${file}": ${(err as Error).message}`, { cause: err });
  }
}

async function readKeyPair(certFile: string | undefined, keyFile: string | undefined): Promise<KeyPairPem> {
  if (!certFile || !keyFile) {
    throw new ConfigError(`TLS needs both certFile and keyFile (got certFile="${certFile ?? ''}", keyFile="${keyFile ?? ''}")`);
  }
  const pair = { cert: await readPem(certFile, 'certFile'), key: await readPem(keyFile, 'keyFile') };
  const problem = keyPairProblem(pair);
  if (problem) throw new ConfigError(`TLS key pair ${certFile} / ${keyFile}: ${problem}`);
  return pair;
}

/** Why a PEM pair is unusable, or undefined when the key matches the certificate. */
function keyPairProblem(pair: KeyPairPem): string | undefined {
  try {
    const certKey = new X509Certificate(pair.cert).publicKey.export({ type: 'spki', format: 'der' });
    const ownKey = createPublicKey(createPrivateKey(pair.key)).export({ type: 'spki', format: 'der' });
    return certKey.equals(ownKey) ? undefined : 'private key does not match the certificate';
  } catch (err) {
    return (err as Error).message;
  }
}

async function readCwdKeyPair(): Promise<KeyPairPem | undefined> {
  try {
    const pair = { cert: await fs.readFile('cert.pem', 'utf8'), key: await fs.readFile('key.pem', 'utf8') };
    return keyPairProblem(pair) ? undefined : pair;
  } catch {
    return undefined;
  }
}

/** One load (or generation) per directory ('' = memory) per process, shared by every listener. */
const autoCerts = new Map<string, Promise<KeyPairPem>>();

/**
 * The self-signed certificate: generated once per process and kept in memory, or, with
 * burrowHome() set, the one saved there (generated and saved on first use; if it cannot be
 * saved, the generated certificate is still used, with a warning).
 */
export function loadAutoCertificate(logger: Logger, global: TLSConfig = {}): Promise<KeyPairPem> {
  const dir = burrowHome() ?? '';
  let p = autoCerts.get(dir);
  if (!p) {
    p = dir ? loadOrGenerate(dir, logger, global) : generateInMemory(logger, global);
    autoCerts.set(dir, p);
    p.catch(() => autoCerts.delete(dir));
  }
  return p;
}

/** Forgets loaded auto-generated certificates, so the next use reads the files again. */
export function clearAutoCertificateCache(): void {
  autoCerts.clear();
}

async function loadOrGenerate(dir: string, logger: Logger, global: TLSConfig): Promise<KeyPairPem> {
  const certFile = path.join(dir, AUTO_CERT_FILE);
  const keyFile = path.join(dir, AUTO_KEY_FILE);
  try {
    const pair = { cert: await fs.readFile(certFile, 'utf8'), key: await fs.readFile(keyFile, 'utf8') };
    const problem = keyPairProblem(pair);
    if (!problem) {
      logger.info({ certFile, keyFile }, 'using the auto-generated TLS certificate');
      return pair;
    }
    logger.warn({ certFile, keyFile, reason: problem }, 'auto-generated TLS certificate unusable, generating a new one');
  } catch {
    /* not there yet */
  }
  const pair = generate(global);
  try {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    await writeAtomic(keyFile, pair.key, 0o600);
    await writeAtomic(certFile, pair.cert, 0o644);
    logger.info({ certFile, keyFile }, 'generated a self-signed TLS certificate');
  } catch (err) {
    logger.warn({ dir, err: (err as Error).message }, 'cannot save the generated TLS certificate; using it for this run only');
  }
  return pair;
}

function generate(global: TLSConfig): KeyPairPem {
  const name = global.commonName || AUTO_DEFAULT_NAME;
  const validityMs = (global.validity && parseGoDurationMs(global.validity)) || ONE_YEAR_MS;
  const gen = createCertificate({
    subject: { commonName: name, organization: global.organization || AUTO_DEFAULT_NAME },
    sans: [name],
    isCa: true,
    keyUsage: ['digitalSignature', 'keyCertSign'],
    extKeyUsage: ['clientAuth', 'serverAuth'],
    validityMs,
  });
  return { cert: gen.certPem, key: gen.keyPem };
}

async function generateInMemory(logger: Logger, global: TLSConfig): Promise<KeyPairPem> {
  const pair = generate(global);
  logger.info('generated a self-signed TLS certificate, kept in memory (set BURROW_HOME to keep one across restarts)');
  return pair;
}

async function writeAtomic(file: string, data: string, mode: number): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await fs.writeFile(tmp, data, { mode });
  await fs.rename(tmp, file);
}

// ---- options: versions, cipher suites, ALPN -------------------------------------------------

/** "VersionTLS12", "TLS12", "1.2", "tls1.2" → "TLSv1.2". */
export function parseTlsVersion(s: string | undefined): SecureVersion | undefined {
  if (!s) return undefined;
  const m = /1\.?([0-3])$/.exec(s.trim());
  if (!m) return undefined;
  return `TLSv1${m[1] === '0' ? '' : '.' + m[1]}` as SecureVersion;
}

/** Go cipher-suite names → OpenSSL names (TLS 1.3 suites keep their names). */
const GO_CIPHERS: Record<string, string> = {
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 'ECDHE-RSA-AES128-GCM-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 'ECDHE-RSA-AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: 'ECDHE-ECDSA-AES128-SHA',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: 'ECDHE-RSA-AES128-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: 'ECDHE-ECDSA-AES256-SHA',
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: 'ECDHE-RSA-AES256-SHA',
  TLS_AES_128_GCM_SHA256: 'TLS_AES_128_GCM_SHA256',
  TLS_AES_256_GCM_SHA384: 'TLS_AES_256_GCM_SHA384',
  TLS_CHACHA20_POLY1305_SHA256: 'TLS_CHACHA20_POLY1305_SHA256',
};

function applyTlsOptions(out: TlsOptions | ConnectionOptions, o: TLSOptionsConfig | undefined, logger?: Logger): void {
  if (!o) return;
  const min = parseTlsVersion(o.minVersion);
  const max = parseTlsVersion(o.maxVersion);
  if (min) out.minVersion = min;
  if (max) out.maxVersion = max;
  if (o.cipherSuites?.length) {
    const names: string[] = [];
    for (const c of o.cipherSuites) {
      const n = GO_CIPHERS[c];
      if (n) names.push(n);
      else logger?.warn({ cipherSuite: c }, 'unknown TLS cipher suite ignored');
    }
    if (names.length) out.ciphers = names.join(':');
  }
  if (o.alpn?.length) out.ALPNProtocols = o.alpn;
}
