/**
 * TLS termination at an entry point (docs/https.md): a connection whose SNI has a certificate
 * (the providers are asked in order: files first) is decrypted here, over the socket the
 * ClientHello was peeked from (the peeked bytes were put back, none is lost), and its requests
 * go to the HTTP side as plain HTTP ones do. A name in `entrypoint.passthrough`, or one no
 * provider has a certificate for, is passed through untouched as before (tls.ts).
 *
 * The handshake has its own deadline (`entrypoint.tlsHandshakeTimeout`); a handshake that fails
 * or runs out of time closes the connection with one warning per peer and limit a minute.
 */
import tls, { type SecureContext } from 'node:tls';
import type net from 'node:net';
import type { Logger } from 'pino';
import type { CertificateProvider } from '../../../tls/provider';
import type { HostPatterns } from '../../../tls/files';
import { destroy } from '../../../io/pipe';
import { BurrowError } from '../../../core/errors';

/** The ALPN protocol of TLS-ALPN-01 challenges (RFC 8737). */
export const ACME_TLS_ALPN = 'acme-tls/1';

/** A provider that can say at once whether it has a certificate (for redirects and the BIND answer). */
interface KnowsNames {
  has(servername: string): boolean;
}
function knowsNames(p: CertificateProvider): p is CertificateProvider & KnowsNames {
  return typeof (p as Partial<KnowsNames>).has === 'function';
}

export interface EntryTlsOptions {
  /** Asked in order; the first context given wins. */
  providers: readonly CertificateProvider[];
  /** Hosts always passed through (`entrypoint.passthrough`). */
  passthrough: HostPatterns;
  handshakeTimeoutMs: number;
  /** ALPN protocols offered to visitors, most preferred first. */
  alpn: readonly string[];
  /** ACME HTTP-01: the key authorization for `host` and `path`, when a challenge is pending. */
  httpChallenge?: (host: string, path: string) => string | undefined;
  /** ACME TLS-ALPN-01: the challenge certificate for `servername` (a ClientHello offering `acme-tls/1`). */
  alpnChallengeContext?: (servername: string) => SecureContext | undefined | Promise<SecureContext | undefined>;
}

export class EntryTls {
  constructor(readonly opts: EntryTlsOptions) {}

  /** Whether the entry point terminates TLS for `host`, as far as the providers can say at once. */
  terminates(host: string): boolean {
    if (this.opts.passthrough.matches(host)) return false;
    return this.opts.providers.some((p) => knowsNames(p) && p.has(host));
  }

  /** The context to terminate `sni` with, or undefined for passthrough. */
  async contextFor(sni: string): Promise<SecureContext | undefined> {
    if (this.opts.passthrough.matches(sni)) return undefined;
    for (const p of this.opts.providers) {
      const c = await p.contextFor(sni);
      if (c !== undefined) return c;
    }
    return undefined;
  }
}

export interface Terminated {
  /** Called with the decrypted socket once the handshake is done. */
  secure(t: tls.TLSSocket): void;
  /** The handshake failed or ran out of time (the connection is closed already). */
  failed(err: Error): void;
}

function ignore(): void {}

/** Terminates TLS on `socket` (its ClientHello put back) with `context`. */
export function terminate(
  socket: net.Socket,
  context: SecureContext,
  alpn: readonly string[],
  timeoutMs: number,
  log: Logger,
  then: Terminated,
): void {
  const t = new tls.TLSSocket(socket, { isServer: true, secureContext: context, ALPNProtocols: [...alpn] });
  let settled = false;
  const fail = (err: Error): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    destroy(t);
    destroy(socket);
    then.failed(err);
  };
  const timer = setTimeout(() => {
    const err = new Error(`no TLS handshake within ${timeoutMs} ms (entrypoint.tlsHandshakeTimeout)`) as Error & { code: string };
    err.code = 'BURROW_ERR_TIMEOUT';
    fail(err);
  }, timeoutMs);
  timer.unref();
  const onError = (err: Error): void => {
    const e = new Error(`TLS handshake: ${err.message}`) as Error & { code?: string };
    e.code = (err as { code?: string }).code === 'ECONNRESET' ? 'ECONNRESET' : undefined;
    fail(e);
  };
  const onClose = (): void => fail(new BurrowError('BURROW_ERR_CLOSED', 'TLS handshake: connection closed'));
  // The handshake's records are read only while the socket reads, and a peer that leaves is
  // seen only by a reader: the socket flows during the handshake, and what comes before the
  // HTTP side takes over (application data right after the handshake) is put back for it.
  const early: Buffer[] = [];
  const onData = (chunk: Buffer): void => void early.push(chunk);
  t.on('data', onData);
  t.on('error', onError);
  t.once('close', onClose);
  t.once('secure', () => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    t.off('close', onClose);
    t.off('data', onData);
    t.pause();
    for (let i = early.length - 1; i >= 0; i--) t.unshift(early[i]!);
    // Errors after the handshake are the reader's ('close' follows).
    t.off('error', onError);
    t.on('error', ignore);
    log.debug({ alpn: t.alpnProtocol || undefined, tls: t.getProtocol() }, 'entrypoint: TLS terminated');
    then.secure(t);
  });
}
