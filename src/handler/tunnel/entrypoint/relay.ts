/**
 * A relay request at an entry point (first byte `0x01`): a visitor pointed here, or another
 * server of a fleet handing on a visitor's request with the visitor's credentials. It is served
 * exactly as on the tunnel port (handler.ts serveRelay): connection rate, auther, the
 * host-to-tunnel rule and privacy check, the same statuses (gost checks nothing here).
 * `entrypoint.relay=false` turns the path off: such a connection is then taken for HTTP (and
 * refused as such).
 */
import type { Logger } from 'pino';
import type { Conn } from '../../../core/transport';

/** Serves one relay request on an accepted connection (the tunnel handler's code path). */
export type RelayServer = (conn: Conn, log: Logger) => void;
