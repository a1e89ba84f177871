/**
 * TLS at an entry point (first byte `0x16`, behavior.md §4.4): the ClientHello's SNI picks the
 * tunnel (ingress, then public names), and the bytes pass through untouched (no termination)
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

/** The largest ClientHello read for its SNI. */
const TLS_MAX_HELLO_BYTES = 64 * 1024;

/** What the TLS path reads of its entry point (dispatch.ts's context has it). */
export interface TlsContext {
  readonly server: TunnelServer;
  readonly ingress: Ingress | undefined;
  /** `entrypoint.sniffTimeout`: the deadline of the ClientHello. */
  readonly sniffTimeoutMs: number;
}

export async function handleTls(ctx: TlsContext, socket: net.Socket, remote: string, log: Logger): Promise<void> {
  const { value: sni } = await peek<string | undefined>(
    socket,
    (buf) => {
      const r = parseClientHelloSni(buf);
      return r.complete ? { done: true, value: r.sni } : { done: false };
    },
    { timeoutMs: ctx.sniffTimeoutMs, maxBytes: TLS_MAX_HELLO_BYTES },
  );
  if (!sni) {
    ctx.server.warnings.warn(log, stripPort(remote), 'SNI required', 'tls: no SNI in ClientHello, closing');
    destroy(socket);
    return;
  }
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
    stream = ctx.server.openTunnelStream(route.tunnelId, 'tcp', remote, joinHostPort(sni, 443));
  } catch (err) {
    log.error({ host: sni }, (err as Error).message);
    destroy(socket);
    return;
  }
  log.debug({ host: sni, tunnel: route.tunnelId }, `${remote} <-> ${sni}`);
  ctx.server.splice(socket, stream, remote, log);
}
