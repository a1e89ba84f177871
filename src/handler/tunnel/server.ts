/**
 * The state one tunnel server shares between its relay handler (handler.ts), its BIND
 * sessions (bind.ts) and its public entry points (entrypoint.ts, http-proxy.ts): a module of
 * its own so that those files depend on it and not on each other.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Conn } from '../../core/transport';
import type { Ingress } from '../../ingress/ingress';
import type { SmuxConfig } from '../../protocol/smux/config';
import type { PeerWarnings } from '../../limit/rate';
import type { ConnectorEntry, Network, TunnelPool } from './pool';
import type { PublicNames } from './public-names';
import type { SdRegistry } from '../../sd/registry';

/** Shared state of one tunnel server, used by the relay handler and its entry points. */
export interface TunnelServer {
  readonly nodeId: string;
  readonly pool: TunnelPool;
  readonly ingress: Ingress | undefined;
  readonly publicNames: PublicNames | undefined;
  /** Service discovery (`sd`, `tunnel.sd`): connectors bound here are registered there. */
  readonly sd: SdRegistry | undefined;
  readonly smux: Partial<SmuxConfig>;
  /** One warning per attacking peer and limit a minute (entry points, tunnel port, sessions). */
  readonly warnings: PeerWarnings;
  /** Tunnel for a host at a public entry point (ingress, then public names). */
  lookupPublic(host: string, ingress?: Ingress): { tunnelId: string; private: boolean } | undefined;
  /**
   * Opens a stream to the tunnel and writes the stream header; on `entry` first when given
   * (a connector picked by `pool.select`).
   */
  openTunnelStream(tunnelId: string, network: Network, src: string, dst: string, entry?: ConnectorEntry): Duplex;
  /**
   * Splices a visitor connection (`near`, from `nearAddr`) and its tunnel stream until both
   * end, bounded by `sendTimeout`: a side that takes no bytes that long ends both, with one
   * warning per peer (the tunnel client or the visitor) a minute.
   */
  splice(near: Duplex, stream: Duplex, nearAddr: string, log: Logger): void;
  /**
   * Serves a relay request (CONNECT or BIND) on a connection an entry point accepted, exactly
   * as on the tunnel port: rate limit, auther, rule check, privacy, the same statuses. `log`
   * already carries the handler's fields.
   */
  relay(conn: Conn, log: Logger): void;
  /**
   * A connector of the tunnel was registered: warns (once per tunnel ID) when nothing can
   * reach it, i.e. no ingress rule names it, tunnel.direct is off and public mode is off.
   */
  checkReachable(tunnelId: string, log: Logger): void;
}
