/**
 * The `tunnel` connector: the client side of the relay protocol.
 *
 * - connect (visitor, protocol.md §3.1): CONNECT for the target, read the status; the stream
 *   then carries raw bytes (tcp) or length-framed datagrams (udp).
 * - bind (client behind NAT, protocol.md §2.1): BIND with the requested address, read the
 *   endpoint and connector ID; the connection then carries an smux session in the smux
 *   *server* role (the server opens streams).
 *
 * `tunnel.id` must be a UUID (no `$`); without one, a random tunnel ID is made per process as
 * gost does. Both exchanges have a deadline (`connectTimeout`, default 15 s; gost has none for
 * BIND).
 */
import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Conn } from '../../core/transport';
import type { BindRequest, BindResult, ConnectRequest, Connector } from '../../core/handler';
import type { AuthConfig } from '../../core/config';
import { TUNNEL_CONNECTOR_OPTIONS, effectiveWeight } from '../../core/options/tunnel';
import { parseOptions } from '../../core/options/options';
import { Metadata } from '../../core/metadata';
import { BurrowError, ConfigError } from '../../core/errors';
import {
  buildBindRequest,
  buildConnectRequest,
  decodeResponse,
  parseBindResponse,
} from '../../protocol/relay/message';
import { parseTunnelId, tunnelIdToString, type TunnelId } from '../../protocol/relay/tunnel-id';
import { readRelayMessage } from '../../io/read-message';
import { Session } from '../../protocol/smux/session';
import { smuxConfigFromMetadata } from '../../protocol/smux/config';
import { closedWithoutAnswerHint, foreignOf, serverMismatchHint } from '../../protocol/sniff/foreign';
import { TLSSocket } from 'node:tls';

export const STATUS_TEXT: Record<number, string> = {
  0x01: 'bad request',
  0x02: 'unauthorized',
  0x03: 'forbidden',
  0x04: 'timeout',
  0x05: 'service unavailable',
  0x06: 'host unreachable',
  0x07: 'network unreachable',
  0x08: 'internal server error',
};

/** An error status from the server; `status` is the relay status byte. */
export class RelayStatusError extends BurrowError {
  constructor(readonly status: number, what: string) {
    super(
      status === 0x02 ? 'BURROW_ERR_UNAUTHORIZED' : 'BURROW_ERR_TUNNEL_UNAVAILABLE',
      `${what}: server answered 0x${status.toString(16).padStart(2, '0')} (${STATUS_TEXT[status] ?? 'unknown status'})`,
    );
  }
}

export interface TunnelConnectorOptions {
  metadata: Metadata;
  auth?: AuthConfig;
  logger: Logger;
  /** Source of the per-process random tunnel ID when none is configured. */
  randomId?: string;
}

/** The connector's tunnel ID from `tunnel.id` / `tunnelID` text; throws ConfigError for text that is not a plain UUID. */
export function connectorTunnelId(text: string | undefined, fallback: string): TunnelId {
  if (text === undefined || text === '') return parseTunnelId(fallback);
  if (text.startsWith('$')) throw new ConfigError(`tunnel.id "${text}": a "$" prefix is only allowed in ingress rules`);
  try {
    return parseTunnelId(text);
  } catch {
    throw new ConfigError(`tunnel.id "${text}" is not a UUID (expected e.g. 4d21094e-b74c-4916-86c1-d9fa36ea677b)`);
  }
}

/** True when the relay runs over TLS (tls, or wss: its socket is under the WebSocket stream). */
function isTls(stream: Duplex): boolean {
  return stream instanceof TLSSocket;
}

export function createTunnelConnector(opts: TunnelConnectorOptions): Connector & { tunnelId: string; weight: number } {
  const md = opts.metadata;
  // tunnel.id has its own messages (the "$" marker, the nil UUID): read it before the rest.
  const id = connectorTunnelId(md.getString(...[TUNNEL_CONNECTOR_OPTIONS.tunnelId.key, ...TUNNEL_CONNECTOR_OPTIONS.tunnelId.aliases]), opts.randomId ?? randomUUID());
  const o = parseOptions(TUNNEL_CONNECTOR_OPTIONS, md);
  // Sent as given (gost sends 0 by default); the server's pool counts 0 as 1.
  const weight = o.weight;
  const timeoutMs = o.connectTimeout;
  const smux = smuxConfigFromMetadata(md);
  const auth = opts.auth && (opts.auth.username || opts.auth.password) ? opts.auth : undefined;

  async function exchange(stream: Duplex, request: Buffer, what: string): Promise<ReturnType<typeof decodeResponse>> {
    stream.write(request);
    const msg = await readRelayMessage(stream, timeoutMs).catch((err: Error) => {
      const foreign = foreignOf(err);
      let text = foreign ? serverMismatchHint(foreign, isTls(stream)) : err.message;
      // A server that closes without a word on a well-formed request most often expects
      // another transport (a TLS listener refusing plain bytes, for one).
      if (!foreign && err instanceof BurrowError && err.code === 'BURROW_ERR_CLOSED') text += `: ${closedWithoutAnswerHint(isTls(stream))}`;
      throw new BurrowError('BURROW_ERR_DIAL', `${what}: ${text}`, { cause: err });
    });
    const resp = decodeResponse(msg);
    if (resp.status !== 0) throw new RelayStatusError(resp.status, what);
    return resp;
  }

  return {
    tunnelId: tunnelIdToString(id),
    weight: effectiveWeight(weight),
    async connect(conn: Conn, req: ConnectRequest): Promise<Duplex> {
      const request = buildConnectRequest({
        srcAddr: req.src ?? conn.remote,
        dstAddr: req.dst,
        tunnelId: id,
        udp: req.network === 'udp',
        auth,
      });
      await exchange(conn.stream, request, `connect ${req.dst}/${req.network}`);
      return conn.stream;
    },
    async bind(conn: Conn, req: BindRequest): Promise<BindResult> {
      const request = buildBindRequest({
        srcAddr: conn.local,
        bindAddr: req.bindAddr,
        tunnelId: id,
        weight,
        udp: req.network === 'udp',
        auth,
      });
      const resp = parseBindResponse(
        await exchange(conn.stream, request, `create tunnel ${tunnelIdToString(id)}`),
      );
      const session = new Session(conn.stream, { client: false, config: smux });
      return {
        session,
        addr: resp.bindAddr ?? req.bindAddr,
        endpoint: resp.endpoint ?? '',
        connectorId: resp.connectorId ? tunnelIdToString(resp.connectorId) : '',
        https: resp.https === true,
      };
    },
  };
}
