/**
 * A relay CONNECT at an entry point (first byte `0x01`, protocol.md §3.4): from a peer server
 * node or a visitor pointed here, routed by its tunnel ID alone (no ingress, no privacy check),
 * answered with a relay status, then spliced with a tunnel stream.
 */
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { STATUS_BAD_REQUEST, STATUS_SERVICE_UNAVAILABLE } from '../../../core/errors';
import { readRelayMessage } from '../../../io/read-message';
import { decodeRequest, parseRequest, statusResponse } from '../../../protocol/relay/message';
import { isZero, tunnelIdToString } from '../../../protocol/relay/tunnel-id';
import type { EntryContext } from './dispatch';

export async function handleRelay(ctx: EntryContext, socket: net.Socket, remote: string, log: Logger): Promise<void> {
  const req = parseRequest(decodeRequest(await readRelayMessage(socket, ctx.sniffTimeoutMs)));
  const reply = (status: number): void => {
    socket.end(statusResponse(status));
  };
  if (!req.tunnelId || isZero(req.tunnelId)) {
    reply(STATUS_BAD_REQUEST);
    return;
  }
  const tid = tunnelIdToString(req.tunnelId);
  const network = req.network === 'udp' ? 'udp' : 'tcp';
  let stream: Duplex;
  try {
    stream = ctx.server.openTunnelStream(tid, network, req.srcAddr ?? remote, req.dstAddr ?? ':0');
  } catch (err) {
    log.error({ tunnel: tid }, (err as Error).message);
    reply(STATUS_SERVICE_UNAVAILABLE);
    return;
  }
  socket.write(statusResponse(0));
  ctx.server.splice(socket, stream, remote, log);
}
