/**
 * Stream transports by name, as gost's listener/dialer registries (protocol.md §8).
 *
 * Extension point for the multiplexed variants (mtls, mws, mwss; protocol.md §8.4): each wraps
 * the matching base transport here (tls, ws, wss) in an outer smux v1 session. A listener
 * factory `m<x>` builds `LISTENERS[x]`, runs a server session on every accepted Conn and hands
 * each accepted smux stream to `onConn`; a dialer factory keeps one client session over
 * `DIALERS[x]` and opens a stream per dial(), releasing the session in `close()`. Add them to
 * the two maps below under their gost names.
 */
import type { DialerFactory, ListenerFactory } from '../core/transport';
import type { DialerType, ListenerType } from '../core/parts';
import { createTcpDialer, createTcpListener } from './tcp';
import type * as TlsModule from './tls';
import type * as WsModule from './ws';

/** The TLS transports (and node:tls) are loaded only when a service uses them. */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const tls = (): typeof TlsModule => require('./tls') as typeof TlsModule;
const createTlsListener: ListenerFactory = (o) => tls().createTlsListener(o);
const createTlsDialer: DialerFactory = (o) => tls().createTlsDialer(o);

/** The WebSocket transports (and the `ws` package) are loaded only when a service uses them. */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const ws = (): typeof WsModule => require('./ws') as typeof WsModule;
const createWsListener: ListenerFactory = (o) => ws().createWsListener(o);
const createWssListener: ListenerFactory = (o) => ws().createWssListener(o);
const createWsDialer: DialerFactory = (o) => ws().createWsDialer(o);
const createWssDialer: DialerFactory = (o) => ws().createWssDialer(o);
import { muxDialer, muxListener } from './mux';

/** The stream listeners (udp, rtcp and rudp are built by app/build.ts with what they need beyond these options). */
export const LISTENERS: Record<Exclude<ListenerType, 'udp' | 'rtcp' | 'rudp'>, ListenerFactory> = {
  tcp: createTcpListener,
  tls: createTlsListener,
  ws: createWsListener,
  wss: createWssListener,
  mtls: muxListener(createTlsListener),
  mws: muxListener(createWsListener),
  mwss: muxListener(createWssListener),
};

export const DIALERS: Record<DialerType, DialerFactory> = {
  tcp: createTcpDialer,
  tls: createTlsDialer,
  ws: createWsDialer,
  wss: createWssDialer,
  mtls: muxDialer(createTlsDialer),
  mws: muxDialer(createWsDialer),
  mwss: muxDialer(createWssDialer),
};
