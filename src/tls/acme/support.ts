/**
 * What the ACME manager (manager.ts) needs beside the protocol: where it stores by default, the
 * per-CA slug, trusting a private CA for one directory's requests, reading that CA's file, a
 * certificate's validity and a deadline on a promise.
 */
import https from 'node:https';
import { homedir } from 'node:os';
import { join } from 'node:path';
import * as acme from 'acme-client';
import { ConfigError } from '../../core/errors';
import { readCaPem } from './ca-file';

/**
 * The default storage directory: `$BURROW_HOME/acme`, else `$XDG_DATA_HOME/burrow/acme`, else
 * `~/.local/share/burrow/acme`.
 */
export function defaultAcmeStorage(env: NodeJS.ProcessEnv = process.env): string {
  if (env['BURROW_HOME']) return join(env['BURROW_HOME'], 'acme');
  if (env['XDG_DATA_HOME']) return join(env['XDG_DATA_HOME'], 'burrow', 'acme');
  return join(homedir(), '.local', 'share', 'burrow', 'acme');
}

/** The per-CA subdirectory (and Redis key part) for a directory URL: host and path, made safe. */
export function directorySlug(directoryUrl: string): string {
  const u = new URL(directoryUrl);
  return `${u.host}${u.pathname}`.replace(/[^A-Za-z0-9.-]+/g, '_').replace(/^[._]+|[._]+$/g, '') || 'acme';
}

// acme-client talks to the CA through one shared axios instance: a CA file applies to the
// requests for its directory's origin only.
const agents = new Map<string, { agent: https.Agent; refs: number }>();
let interceptorAdded = false;
export function trustCa(directoryUrl: string, ca: string): () => void {
  const origin = new URL(directoryUrl).origin;
  if (!interceptorAdded) {
    interceptorAdded = true;
    acme.axios.interceptors.request.use((config) => {
      if (config.url) {
        const a = agents.get(safeOrigin(config.url));
        if (a) config.httpsAgent = a.agent;
      }
      return config;
    });
  }
  // Managers for the same CA share its agent (the first one's CA file).
  const entry = agents.get(origin) ?? { agent: new https.Agent({ ca }), refs: 0 };
  entry.refs++;
  agents.set(origin, entry);
  return () => {
    const e = agents.get(origin);
    if (!e) return;
    if (--e.refs <= 0) {
      agents.delete(origin);
      e.agent.destroy();
    }
  };
}

function safeOrigin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '';
  }
}

/** The PEM of `entrypoint.acmeCA`, or a ConfigError naming the file and what is wrong. */
export function readCaFile(file: string): string {
  try {
    return readCaPem(file);
  } catch (err) {
    throw new ConfigError((err as Error).message, { path: 'entrypoint.acmeCA', cause: err });
  }
}

export function certValidity(pem: string): { notBefore: number; notAfter: number } {
  const info = acme.crypto.readCertificateInfo(pem);
  return { notBefore: info.notBefore.getTime(), notAfter: info.notAfter.getTime() };
}

export function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    t.unref();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}
