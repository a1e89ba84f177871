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

export { ACME_TLS_ALPN } from '../../../tls/acme/alpn';

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

/** The connections whose handshake is under way, by their TCP socket. */
const pending = new WeakMap<net.Socket, Terminated>();
/** One TLS server object (never listening) per context, ALPN list and deadline. */
const servers = new WeakMap<SecureContext, Map<string, tls.Server>>();

function ignore(): void {}

/** The TCP socket under a TLSSocket made by a tls.Server. */
function parentOf(t: tls.TLSSocket): net.Socket | undefined {
  return (t as unknown as { _parent?: net.Socket })._parent;
}

function onSecure(t: tls.TLSSocket): void {
  const raw = parentOf(t);
  const then = raw && pending.get(raw);
  if (raw === undefined || then === undefined) {
    destroy(t);
    return;
  }
  pending.delete(raw);
  // Errors after the handshake are the reader's ('close' follows).
  t.on('error', ignore);
  then.secure(t);
}

function onClientError(this: tls.Server, err: Error & { code?: string }, t: tls.TLSSocket): void {
  const raw = parentOf(t);
  const then = raw && pending.get(raw);
  destroy(t);
  if (raw === undefined || then === undefined) return;
  pending.delete(raw);
  destroy(raw);
  if (err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') {
    const ms = (this as tls.Server & { [DEADLINE]?: number })[DEADLINE];
    then.failed(new BurrowError('BURROW_ERR_TIMEOUT', `no TLS handshake within ${ms} ms (entrypoint.tlsHandshakeTimeout)`));
  } else if (err.code === 'ECONNRESET') {
    then.failed(Object.assign(new Error(`TLS handshake: ${err.message}`), { code: 'ECONNRESET' }));
  } else {
    then.failed(new Error(`TLS handshake: ${err.message}`));
  }
}

const DEADLINE = Symbol('handshake deadline');

function serverFor(context: SecureContext, alpn: readonly string[], timeoutMs: number): tls.Server {
  let byKey = servers.get(context);
  if (byKey === undefined) servers.set(context, (byKey = new Map()));
  const key = `${alpn.join(',')}|${timeoutMs}`;
  let server = byKey.get(key);
  if (server === undefined) {
    server = tls.createServer({
      SNICallback: (_name, cb) => cb(null, context),
      ALPNProtocols: [...alpn],
      handshakeTimeout: timeoutMs,
    });
    (server as tls.Server & { [DEADLINE]?: number })[DEADLINE] = timeoutMs;
    server.on('secureConnection', onSecure);
    server.on('tlsClientError', onClientError);
    byKey.set(key, server);
  }
  return server;
}

/**
 * Terminates TLS on `socket` (its ClientHello put back) with `context`: Node's TLS server code
 * drives the handshake (a server object per context that never listens; the socket is handed to
 * it), so the decrypted socket is the one Node's HTTP/2 and TLS servers make, and the peer going
 * away during the handshake is seen at once.
 */
export function terminate(socket: net.Socket, context: SecureContext, alpn: readonly string[], timeoutMs: number, log: Logger, then: Terminated): void {
  pending.set(socket, {
    secure(t) {
      if (log.isLevelEnabled('debug')) log.debug({ alpn: t.alpnProtocol || undefined, tls: t.getProtocol() }, 'entrypoint: TLS terminated');
      then.secure(t);
    },
    failed: (err) => then.failed(err),
  });
  serverFor(context, alpn, timeoutMs).emit('connection', socket);
}
