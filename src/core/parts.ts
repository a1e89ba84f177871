/**
 * The parts registry: every listener, handler, connector and dialer burrow implements, by the
 * name gost gives it, with its documentation and its option declarations. The command line's
 * scheme checks, the config check, `--help`, the option checks and docs/options.md all read
 * this one table; app/build.ts maps every name here to its implementation through a table typed
 * by these names, so a part registered here without an implementation (or the reverse) does
 * not compile.
 *
 * Names gost knows but burrow does not implement are listed separately so they are reported as
 * "not supported by burrow" rather than as typos.
 */
import type { OptionShape } from './options/options';
import { REMOTE_FORWARD_HANDLER_OPTIONS, LOCAL_FORWARD_HANDLER_OPTIONS } from './options/forward';
import { TRANSPORT_MUX_OPTIONS } from './options/mux';
import {
  REVERSE_LISTENER_OPTIONS,
  TCP_DIALER_OPTIONS,
  TCP_LISTENER_OPTIONS,
  TLS_DIALER_OPTIONS,
  TLS_LISTENER_OPTIONS,
  UDP_LISTENER_OPTIONS,
  WSS_DIALER_OPTIONS,
  WSS_LISTENER_OPTIONS,
  WS_DIALER_OPTIONS,
  WS_LISTENER_OPTIONS,
} from './options/transport';
import { TUNNEL_CONNECTOR_OPTIONS, TUNNEL_HANDLER_OPTIONS } from './options/tunnel';
import { SERVICE_OPTIONS, HOP_OPTIONS } from './options/scopes';

export type PartKind = 'listener' | 'handler' | 'connector' | 'dialer';

export interface PartDecl<S extends OptionShape = OptionShape> {
  readonly doc: string;
  readonly options: S;
  /** Further prose for the options reference (settings that are not metadata keys). */
  readonly notes?: string;
}

function parts<T extends Record<string, PartDecl>>(t: T): T {
  return t;
}

export const LISTENER_PARTS = parts({
  tcp: { doc: 'plain TCP', options: TCP_LISTENER_OPTIONS },
  udp: { doc: 'UDP: each peer address is a session (a server\'s `tunnel+udp://`, a visitor\'s `udp://`)', options: UDP_LISTENER_OPTIONS },
  rtcp: { doc: 'remote TCP: the port is bound on the tunnel server through the chain (a client\'s `rtcp://`)', options: REVERSE_LISTENER_OPTIONS },
  rudp: { doc: 'remote UDP: as rtcp, for datagrams', options: REVERSE_LISTENER_OPTIONS },
  tls: { doc: 'TLS over TCP', options: TLS_LISTENER_OPTIONS },
  ws: { doc: 'WebSocket', options: WS_LISTENER_OPTIONS },
  wss: { doc: 'WebSocket over TLS', options: WSS_LISTENER_OPTIONS },
  mtls: { doc: 'TLS carrying an smux session; each stream is one connection', options: { ...TLS_LISTENER_OPTIONS, ...TRANSPORT_MUX_OPTIONS } },
  mws: { doc: 'WebSocket carrying an smux session', options: { ...WS_LISTENER_OPTIONS, ...TRANSPORT_MUX_OPTIONS } },
  mwss: { doc: 'WebSocket over TLS carrying an smux session', options: { ...WSS_LISTENER_OPTIONS, ...TRANSPORT_MUX_OPTIONS } },
});

const FORWARD_NOTES =
  'Forwarder nodes (YAML `forwarder.nodes`) take `filter.host`, `filter.protocol` and `filter.path`: host: `example.com`, ' +
  '`.example.com`, `*.example.com`; protocol (with `sniffing`): `http`, `tls` or `ssh`; path: a prefix of a sniffed HTTP ' +
  'request\'s path. A node\'s filters must all fit; unfiltered nodes are the fallback; nodes with `metadata.backup: true` come last.';

export const HANDLER_PARTS = parts({
  tunnel: {
    doc: 'the tunnel server: accepts tunnel clients and visitors, runs the public entry points',
    options: TUNNEL_HANDLER_OPTIONS,
    notes:
      'Authentication: `tunnel://user:pass@:8443`, or `handler.auther`/`authers` naming `authers:` entries (see the README). ' +
      'Failures answer `01 02 00 00`; guessing is stopped per address and user with a growing back-off ([SECURITY.md](../SECURITY.md)).',
  },
  tcp: { doc: 'a visitor / local port forwarder for TCP: each connection goes through the chain to a target', options: LOCAL_FORWARD_HANDLER_OPTIONS, notes: FORWARD_NOTES },
  udp: { doc: 'a visitor / local port forwarder for UDP', options: LOCAL_FORWARD_HANDLER_OPTIONS, notes: FORWARD_NOTES },
  rtcp: { doc: 'a tunnel client: connections arriving through the tunnel go to the targets', options: REMOTE_FORWARD_HANDLER_OPTIONS, notes: FORWARD_NOTES },
  rudp: { doc: 'a tunnel client for UDP', options: REMOTE_FORWARD_HANDLER_OPTIONS, notes: FORWARD_NOTES },
  forward: { doc: 'gost\'s generic forwarder (as tcp, on any listener)', options: LOCAL_FORWARD_HANDLER_OPTIONS, notes: FORWARD_NOTES },
});

export const CONNECTOR_PARTS = parts({
  tunnel: {
    doc: 'the relay protocol\'s client side: CONNECT for visitors, BIND for tunnel clients',
    options: TUNNEL_CONNECTOR_OPTIONS,
    notes: 'Credentials: `user:pass@` in the URL, `auth` (base64 of `user:pass`) in the query, or the node\'s `connector.auth`; sent in the UserAuth feature.',
  },
  forward: { doc: 'the node itself forwards to a fixed target: the connection is the payload stream', options: {} },
});

export const DIALER_PARTS = parts({
  tcp: { doc: 'plain TCP', options: TCP_DIALER_OPTIONS },
  tls: { doc: 'TLS over TCP', options: TLS_DIALER_OPTIONS },
  ws: { doc: 'WebSocket', options: WS_DIALER_OPTIONS },
  wss: { doc: 'WebSocket over TLS', options: WSS_DIALER_OPTIONS },
  mtls: { doc: 'TLS carrying an smux session shared by the dials to one address', options: { ...TLS_DIALER_OPTIONS, ...TRANSPORT_MUX_OPTIONS } },
  mws: { doc: 'WebSocket carrying an smux session', options: { ...WS_DIALER_OPTIONS, ...TRANSPORT_MUX_OPTIONS } },
  mwss: { doc: 'WebSocket over TLS carrying an smux session', options: { ...WSS_DIALER_OPTIONS, ...TRANSPORT_MUX_OPTIONS } },
});

export type ListenerType = keyof typeof LISTENER_PARTS;
export type HandlerType = keyof typeof HANDLER_PARTS;
export type ConnectorType = keyof typeof CONNECTOR_PARTS;
export type DialerType = keyof typeof DIALER_PARTS;

export const PARTS: Record<PartKind, Record<string, PartDecl>> = {
  listener: LISTENER_PARTS,
  handler: HANDLER_PARTS,
  connector: CONNECTOR_PARTS,
  dialer: DIALER_PARTS,
};

/** The declaration of a part, or undefined for a name burrow does not implement. */
export function partOf(kind: PartKind, name: string): PartDecl | undefined {
  return Object.hasOwn(PARTS[kind], name) ? PARTS[kind][name] : undefined;
}

export const LISTENER_TYPES = Object.keys(LISTENER_PARTS) as ListenerType[];
export const HANDLER_TYPES = Object.keys(HANDLER_PARTS) as HandlerType[];
export const CONNECTOR_TYPES = Object.keys(CONNECTOR_PARTS) as ConnectorType[];
export const DIALER_TYPES = Object.keys(DIALER_PARTS) as DialerType[];

/** gost part names burrow does not implement (yet): accepted by the URL splitter, refused by the check. */
export const GOST_ONLY_LISTENERS = ['kcp', 'quic', 'h2', 'h2c', 'grpc', 'http3', 'mtcp', 'dtls', 'ssh', 'sshd', 'obfs-http', 'obfs-tls', 'otls', 'pht', 'phts', 'ftcp', 'icmp', 'tun', 'tap', 'redirect', 'tproxy', 'unix', 'runix', 'serial', 'dns'];
export const GOST_ONLY_HANDLERS = ['auto', 'http', 'http2', 'socks', 'socks4', 'socks5', 'ss', 'ssu', 'sni', 'relay', 'dns', 'redirect', 'tun', 'tap', 'file', 'serial', 'unix', 'sshd', 'metrics', 'router'];
export const GOST_ONLY_CONNECTORS = ['http', 'http2', 'socks', 'socks4', 'socks5', 'ss', 'ssu', 'relay', 'sni', 'direct', 'router', 'serial', 'unix', 'sshd'];
/** `udp` is gost's datagram dialer (`tunnel+udp://`); burrow's clients reach the server over a stream transport. */
export const GOST_ONLY_DIALERS = ['udp', 'kcp', 'quic', 'h2', 'h2c', 'grpc', 'http3', 'mtcp', 'dtls', 'ssh', 'obfs-http', 'obfs-tls', 'otls', 'pht', 'phts', 'ftcp', 'icmp', 'wt', 'unix', 'serial'];

export { SERVICE_OPTIONS, HOP_OPTIONS };
