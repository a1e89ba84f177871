/**
 * TLS at an entry point (first byte `0x16`, behavior.md §4.4). When the entry point has a
 * certificate for the ClientHello's SNI (and the name is not in `entrypoint.passthrough`), TLS
 * is terminated here and the requests go to the HTTP side (terminate.ts). Otherwise, as gost:
 * the SNI picks the tunnel (ingress, then public names), and the bytes pass through untouched
 * on a stream to `<sni>:443`. No SNI, no route, or a private rule: the connection is closed.
 */
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { joinHostPort, stripPort } from '../../../core/addr';
import { peek } from '../../../io/peek';
import { destroy } from '../../../io/pipe';
import { parseClientHelloSni } from '../../../protocol/sniff/tls';
import type { Ingress } from '../../../ingress/ingress';
import type { TunnelServer } from '../server';
import { ACME_TLS_ALPN, terminate, type EntryTls } from './terminate';
import { remoteStream } from '../forward';

/** The largest ClientHello read for its SNI. */
const TLS_MAX_HELLO_BYTES = 64 * 1024;

/** What the TLS path reads of its entry point (dispatch.ts's context has it). */
export interface TlsContext {
  readonly server: TunnelServer;
  readonly ingress: Ingress | undefined;
  /** `entrypoint.sniffTimeout`: the deadline of the ClientHello. */
  readonly sniffTimeoutMs: number;
  /** Termination (certificates, passthrough), when the entry point has any. */
  readonly tls: EntryTls | undefined;
  /** Serves a terminated connection's requests (the HTTP side). */
  readonly http: {
    handle(socket: net.Socket, peer: string, log?: Logger, first?: Buffer, secure?: boolean): void;
    handleH2(socket: net.Socket, peer: string, log?: Logger): void;
  };
  /** Closes a connection that broke a rule, with one warning per peer and limit a minute. */
  refuse(socket: net.Socket, remote: string, log: Logger, err: Error): void;
}

/**
 * Serves a TLS connection whose first chunk (`first`, already put back on the socket) was read
 * by the dispatcher. A ClientHello is almost always whole in that chunk: it is parsed there,
 * without a second read of the socket; otherwise the socket is peeked until it is whole.
 */
export async function handleTls(ctx: TlsContext, socket: net.Socket, remote: string, log: Logger, first?: Buffer): Promise<void> {
  const parsed = first === undefined ? undefined : parseClientHelloSni(first);
  const hello = parsed?.complete
    ? parsed
    : (
        await peek<{ sni: string | undefined; alpn: string[] }>(
          socket,
          (buf) => {
            const r = parseClientHelloSni(buf);
            return r.complete ? { done: true, value: r } : { done: false };
          },
          { timeoutMs: ctx.sniffTimeoutMs, maxBytes: TLS_MAX_HELLO_BYTES },
        )
      ).value;
  const sni = hello.sni;
  if (!sni) {
    ctx.server.warnings.warn(log, stripPort(remote), 'SNI required', 'tls: no SNI in ClientHello, closing');
    destroy(socket);
    return;
  }
  if (ctx.tls !== undefined && (await terminated(ctx, ctx.tls, socket, sni, hello.alpn, remote, log))) return;
  const route = ctx.server.lookupPublic(sni, ctx.ingress);
  if (!route) {
    log.error({ host: sni }, `no route to host ${sni}`);
    destroy(socket);
    return;
  }
  if (route.private) {
    log.error({ host: sni }, `tunnel ${route.tunnelId} is private for host ${sni}`);
    destroy(socket);
    return;
  }
  let stream: Duplex;
  try {
    const dst = joinHostPort(sni, 443);
    // No connector here: the server of the fleet that holds the tunnel (forward.ts).
    stream =
      remoteStream(ctx.server, { tunnelId: route.tunnelId, network: 'tcp', src: remote, client: remote, dst }, log) ??
      ctx.server.openTunnelStream(route.tunnelId, 'tcp', remote, dst);
  } catch (err) {
    log.error({ host: sni }, (err as Error).message);
    destroy(socket);
    return;
  }
  log.debug({ host: sni, tunnel: route.tunnelId }, `${remote} <-> ${sni}`);
  ctx.server.splice(socket, stream, remote, log);
}

/** Terminates the connection when a certificate is there for `sni`; false: pass it through. */
async function terminated(ctx: TlsContext, edge: EntryTls, socket: net.Socket, sni: string, alpn: string[], remote: string, log: Logger): Promise<boolean> {
  const o = edge.opts;
  const failed = (err: Error): void => ctx.refuse(socket, remote, log.child({ host: sni }), err);
  if (alpn.includes(ACME_TLS_ALPN) && o.alpnChallengeContext !== undefined) {
    // TLS-ALPN-01 (RFC 8737): the challenge certificate, and the connection ends after the handshake.
    const challenge = await o.alpnChallengeContext(sni);
    if (challenge !== undefined) {
      terminate(socket, challenge, [ACME_TLS_ALPN], o.handshakeTimeoutMs, log, { secure: (t) => t.end(), failed });
      return true;
    }
  }
  const context = await edge.contextFor(sni);
  if (context === undefined || socket.destroyed) return false;
  terminate(socket, context, o.alpn, o.handshakeTimeoutMs, log, {
    secure: (t) => (t.alpnProtocol === 'h2' ? ctx.http.handleH2(t, remote, log) : ctx.http.handle(t, remote, log, undefined, true)),
    failed,
  });
  return true;
}
