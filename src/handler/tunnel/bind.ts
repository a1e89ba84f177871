/**
 * BIND on the server (protocol.md §2.2): a client registers a connector for its tunnel. The
 * connection then carries an smux session in the smux *client* role; this function owns it
 * until the session dies, and removes the connector from the pool at once when it does.
 */
import type { Logger } from 'pino';
import type { Conn } from '../../core/transport';
import type { HandleResult } from '../../core/handler';
import { splitHostPort, isUnspecifiedHost, joinHostPort, stripPort } from '../../core/addr';
import { buildBindResponse, statusResponse, type ParsedRequest } from '../../protocol/relay/message';
import { STATUS_FORBIDDEN } from '../../protocol/relay/constants';
import {
  makeTunnelId,
  randomUuidBytes,
  tunnelEndpoint,
  tunnelIdToString,
  FLAG_CONNECTOR_UDP,
  FLAG_CONNECTOR_HTTPS,
} from '../../protocol/relay/tunnel-id';
import { Session } from '../../protocol/smux/session';
import { BurrowError, isSendTimeout } from '../../core/errors';
import { ConnectorEntry, type Network } from './pool';
import type { TunnelServer } from './server';
import type { CustomRefusal, NameHold } from './public-names';
import { effectiveWeight } from '../../core/options/tunnel';

/** Streams a client may open towards the server (burrow's drain notice is one). */
const MAX_CLIENT_OPENED_STREAMS = 16;

/** The name a BIND gets, and the public names its connector holds until it goes. */
interface BoundName {
  host: string;
  holds: NameHold[];
}

/**
 * Which name the server answers for a BIND (protocol.md §2.2 step 3, plus public mode). In
 * public mode the connector holds its endpoint name and, when granted, its custom name; a
 * custom name shaped like another tunnel's endpoint is refused (BURROW_ERR_FORBIDDEN), any other
 * taken one falls back to the endpoint, as gost does.
 */
async function bindName(server: TunnelServer, tunnelId: string, endpoint: string, requested: string): Promise<BoundName> {
  const custom = !isUnspecifiedHost(requested) && requested.toLowerCase() !== endpoint;
  const names = server.publicNames;
  if (names) {
    let got: NameHold | CustomRefusal | undefined;
    if (custom) {
      got = await names.holdCustom(requested, tunnelId);
      if (got === 'reserved') {
        throw new BurrowError('BURROW_ERR_FORBIDDEN', `name ${requested} is reserved for another tunnel's endpoint`);
      }
    }
    const holds = [await names.holdEndpoint(endpoint, tunnelId)];
    if (typeof got === 'object') holds.push(got);
    return { host: typeof got === 'object' ? got.name : endpoint, holds };
  }
  if (!custom || !server.ingress) return { host: endpoint, holds: [] };
  const rule = server.ingress.exact(requested);
  if (rule !== undefined && (rule === null || rule.private || rule.tunnelId !== tunnelId)) return { host: endpoint, holds: [] };
  return { host: requested, holds: [] };
}

/**
 * A BIND of a revoked tunnel (web API) gets FORBIDDEN and the log says why, once per client
 * address a minute (a revoked client keeps retrying). True when refused.
 */
async function refuseRevoked(conn: Conn, tunnelId: string, server: TunnelServer, log: Logger): Promise<boolean> {
  const r = server.revoked.get(tunnelId);
  if (!r) return false;
  const why = r.reason ? `: ${r.reason}` : '';
  const msg = `bind refused: tunnel ${tunnelId} is revoked since ${new Date(r.since).toISOString()}${why}`;
  server.warnings.warn(log, stripPort(conn.remote), 'revoked tunnel', msg);
  await new Promise<void>((resolve) => conn.stream.end(statusResponse(STATUS_FORBIDDEN), () => resolve()));
  return true;
}

export async function handleBind(
  conn: Conn,
  req: ParsedRequest,
  server: TunnelServer,
  log: Logger,
): Promise<HandleResult> {
  const network: Network = req.network === 'udp' ? 'udp' : 'tcp';
  const tid = req.tunnelId!;
  const tunnelId = tunnelIdToString(tid);
  const endpoint = tunnelEndpoint(tid);
  let reqHost = '';
  let reqPort = 0;
  try {
    const hp = splitHostPort(req.dstAddr ?? '');
    reqHost = hp.host;
    reqPort = hp.port;
  } catch {
    // Unparsable ("0.0.0.0::0" from some gost builds): no custom host.
  }
  if (reqHost.includes(':') && !reqHost.startsWith('[')) reqHost = reqHost === '::' ? '' : reqHost;
  const connectorId = makeTunnelId(randomUuidBytes(), network === 'udp' ? FLAG_CONNECTOR_UDP : 0, tid.weight);
  const cid = tunnelIdToString(connectorId);

  if (await refuseRevoked(conn, tunnelId, server, log)) return { inputBytes: 0, outputBytes: 0 };
  // Limits are checked before answering OK, so an over-limit client gets a status, not a session.
  server.pool.assertCanAdd(tunnelId);
  let bound: BoundName;
  try {
    bound = await bindName(server, tunnelId, endpoint, reqHost);
  } catch (err) {
    if (!(err instanceof BurrowError && err.code === 'BURROW_ERR_FORBIDDEN')) throw err;
    // One warning per client address a minute: refused claims may come in a flood.
    server.warnings.warn(log, stripPort(conn.remote), 'reserved name', `bind refused: ${err.message}`);
    await new Promise<void>((resolve) => conn.stream.end(statusResponse(STATUS_FORBIDDEN), () => resolve()));
    return { inputBytes: 0, outputBytes: 0 };
  }
  const release = (): void => {
    for (const h of bound.holds) h.release();
  };
  const host = bound.host;
  // Another BIND of the tunnel may have filled the pool, or the tunnel been revoked, while the
  // names were claimed.
  try {
    server.pool.assertCanAdd(tunnelId);
  } catch (err) {
    release();
    throw err;
  }
  if (await refuseRevoked(conn, tunnelId, server, log)) {
    release();
    return { inputBytes: 0, outputBytes: 0 };
  }
  // In public mode the answer is the full public name (`<endpoint>.<domain>`), so every client,
  // gost's included, prints where its service can be reached; it names what the client holds.
  const answerHost = server.publicNames ? server.publicNames.hostFor(host) : host;
  // A public name the entry points terminate TLS for: the connector ID's HTTPS flag tells a
  // burrow client to print an https:// URL (gost clients ignore the flag).
  const https = server.publicNames !== undefined && server.terminatesTls?.(answerHost) === true;
  const answeredId = https ? { ...connectorId, flag: connectorId.flag | FLAG_CONNECTOR_HTTPS } : connectorId;
  conn.stream.write(buildBindResponse({ host: answerHost, port: reqPort, connectorId: answeredId }));
  const session = new Session(conn.stream, { client: true, config: server.smux });
  const entry = new ConnectorEntry(cid, tunnelId, network, tid.weight, session, conn.remote);
  entry.names = bound.holds.map((h) => h.name);
  server.pool.add(entry);
  server.sd?.register(cid, tunnelId, network);
  const addr = joinHostPort(answerHost, reqPort);
  log.info(
    { connector: cid, weight: effectiveWeight(tid.weight), endpoint: host, network },
    `${addr}/${network}: tunnel=${tunnelId}, connector=${cid}, weight=${effectiveWeight(tid.weight)} established`,
  );
  server.checkReachable(tunnelId, log);
  // A client never opens streams towards the server; burrow clients open one to announce a
  // graceful drain (gost servers simply close it). Stop routing new streams here.
  // Only the first one means anything: later ones (a flood of SYNs) are closed without a word.
  let clientOpened = 0;
  const peer = stripPort(conn.remote);
  const clog = log.child({ connector: cid });
  session.on('stream', (s) => {
    s.destroy();
    if (++clientOpened > MAX_CLIENT_OPENED_STREAMS) {
      // gost clients open none and burrow clients one: a flood of SYNs is abuse. Closing the
      // session ends it at once (only this connector; the client may reconnect).
      if (!session.isClosed) {
        server.warnings.warn(
          clog,
          peer,
          'streams opened by a client',
          `client opened more than ${MAX_CLIENT_OPENED_STREAMS} streams; closing its session`,
        );
        session.destroy(new BurrowError('BURROW_ERR_LIMIT', 'client opened too many streams'));
      }
      return;
    }
    if (!entry.drain()) return;
    log.info({ connector: cid }, `connector ${cid} is draining`);
  });
  // A client breaking the protocol on a stream (past its window, bogus window updates) loses
  // that stream; one warning per client address and kind a minute.
  session.on('violation', (err: Error, limit: string) => {
    server.warnings.warn(clog, peer, limit, `client broke the smux protocol: ${err.message}`);
  });
  await new Promise<void>((resolve) => {
    if (session.isClosed) resolve();
    else session.once('close', () => resolve());
  });
  const why = session.closeError;
  if (isSendTimeout(why)) {
    // A client that sends (keepalives) but stopped reading holds every stream routed to it.
    server.warnings.warn(clog, peer, 'sendTimeout', `client stopped reading, closing its session: ${why.message}`);
  }
  server.pool.remove(entry);
  server.sd?.deregister(cid);
  // The names' TTL starts when their last connector has gone.
  release();
  log.info({ connector: cid }, `remove connector: ${tunnelId} ${cid}`);
  return { inputBytes: 0, outputBytes: 0 };
}
