/** Options of the stream and datagram transports (listeners and dialers). */
import { bool, duration, gostOnly, int, list, map, str } from './options';

/** Listen backlog by default (gost: 128): a burst beyond it is left established in the kernel, never accepted. */
export const DEFAULT_BACKLOG = 4096;

/** OS TCP keepalive under `prefix` ("" for tcp and tls, "tcp." under the ws dialer). */
export function tcpKeepalive(prefix: string) {
  return {
    keepalive: bool(`${prefix}keepalive`, { default: false, doc: 'OS TCP keepalive on accepted/dialed connections' }),
    keepaliveIdle: duration(`${prefix}keepalive.idle`, { default: 15_000, zeroIsDefault: true, doc: 'idle time before the first keepalive probe' }),
    keepaliveInterval: gostOnly(`${prefix}keepalive.interval`, 'Node cannot set the probe interval (the OS default is kept)'),
    keepaliveCount: gostOnly(`${prefix}keepalive.count`, 'Node cannot set the probe count (the OS default is kept)'),
  };
}
export const TCP_KEEPALIVE = tcpKeepalive('');
export const WS_TCP_KEEPALIVE = tcpKeepalive('tcp.');

export const BACKLOG = {
  backlog: int('backlog', { default: DEFAULT_BACKLOG, min: 1, max: 65_535, doc: 'listen backlog of tcp/tls/ws listeners and the entry point (gost: 128), capped by the kernel\'s net.core.somaxconn' }),
  mptcp: gostOnly('mptcp', 'multipath TCP'),
};

export const TRUSTED_PROXIES = {
  trustedProxies: list('trustedProxies', {
    burrow: true,
    doc:
      'IPs/CIDRs (`10.0.0.0/8,127.0.0.1,fd00::/8`) whose word about the original client is believed: PROXY headers ' +
      '(with `proxyProtocol`) and, on ws/wss, `X-Forwarded-For` / `CF-Connecting-IP` / `X-Real-Ip`; default nobody, so behind ' +
      'a load balancer or CDN limits and logs show the balancer until it is listed ' +
      '([SECURITY.md](../SECURITY.md#trusted-proxies-load-balancers-cdns-fleets))',
  }),
};

/** Accepting PROXY headers (gost's service key `proxyProtocol`; see docs/proxy-protocol.md). */
export const DEFAULT_PROXY_PROTOCOL_TIMEOUT_MS = 10_000;
export const PROXY_PROTOCOL_ACCEPT = {
  proxyProtocol: int('proxyProtocol', {
    default: 0,
    defaultText: '0 (off)',
    min: 0,
    max: 2,
    doc:
      'read a PROXY header (v1 or v2, whichever comes) at the start of each connection, before TLS or HTTP; believed only ' +
      'from `trustedProxies`, and a header from anyone else closes the connection ([docs/proxy-protocol.md](proxy-protocol.md))',
  }),
  proxyProtocolTimeout: duration('proxyProtocol.timeout', {
    default: DEFAULT_PROXY_PROTOCOL_TIMEOUT_MS,
    zeroIsDefault: true,
    burrow: true,
    doc: 'with `proxyProtocol`: a connection whose first bytes do not complete a PROXY header (or tell there is none) this long is closed',
  }),
  ...TRUSTED_PROXIES,
};

export const TCP_LISTENER_OPTIONS = { ...BACKLOG, ...TCP_KEEPALIVE, ...PROXY_PROTOCOL_ACCEPT };

/** TLS files in the metadata (the command line's `?cert=…&key=…`; YAML has `tls:`). */
export const TLS_FILES = {
  certFile: str('certFile', { default: undefined, aliases: ['cert', 'tls.certFile'], doc: 'certificate (PEM); without one a self-signed certificate is made' }),
  keyFile: str('keyFile', { default: undefined, aliases: ['key', 'tls.keyFile'], doc: 'private key (PEM)' }),
  caFile: str('caFile', { default: undefined, aliases: ['ca', 'tls.caFile'], doc: 'CA certificates (PEM): listeners require client certificates signed by them; dialers verify the server with them' }),
};

export const DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS = 10_000;
export const TLS_HANDSHAKE = {
  tlsHandshakeTimeout: duration('handshakeTimeout', {
    default: DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS,
    aliases: ['tls.handshakeTimeout'],
    doc: 'deadline for the TLS handshake; 0 = none',
  }),
};

export const TLS_LISTENER_OPTIONS = { ...TCP_LISTENER_OPTIONS, ...TLS_FILES, ...TLS_HANDSHAKE };

export const DEFAULT_WS_PATH = '/ws';
export const DEFAULT_WS_HANDSHAKE_TIMEOUT_MS = 10_000;
export const DEFAULT_WS_KEEPALIVE_INTERVAL_MS = 15_000;

export const WS_COMMON = {
  path: str('path', { default: DEFAULT_WS_PATH, aliases: ['ws.path'], doc: 'HTTP path of the WebSocket upgrade' }),
  header: map('header', { aliases: ['ws.header'], doc: 'extra HTTP headers (listener: on the upgrade response; dialer: on the request)' }),
  enableCompression: bool('enableCompression', { default: false, doc: 'permessage-deflate' }),
  wsHandshakeTimeout: duration('handshakeTimeout', {
    default: DEFAULT_WS_HANDSHAKE_TIMEOUT_MS,
    aliases: ['ws.handshakeTimeout', 'readHeaderTimeout'],
    doc: 'deadline for the WebSocket upgrade; 0 = none',
  }),
  readBufferSize: gostOnly('readBufferSize', 'WebSocket read buffer size (Node sizes its buffers itself)', { warn: false }),
  writeBufferSize: gostOnly('writeBufferSize', 'WebSocket write buffer size (Node sizes its buffers itself)', { warn: false }),
};

export const WS_LISTENER_OPTIONS = {
  ...TCP_LISTENER_OPTIONS,
  ...WS_COMMON,
};
export const WSS_LISTENER_OPTIONS = { ...WS_LISTENER_OPTIONS, ...TLS_FILES, ...TLS_HANDSHAKE, ...WS_COMMON };

export const DEFAULT_UDP_TTL_MS = 5_000;
export const UDP_LISTENER_OPTIONS = {
  udpKeepalive: bool('keepalive', { default: false, doc: 'keep a UDP session for many exchanges (else one reply)' }),
  ttl: duration('ttl', { default: DEFAULT_UDP_TTL_MS, aliases: ['keepalive.ttl'], zeroIsDefault: true, doc: 'idle UDP sessions expire after between ttl and 2×ttl' }),
  readQueueSize: int('readQueueSize', {
    default: 128,
    aliases: ['recvQueueSize'],
    min: 0,
    zeroIsDefault: true,
    doc: 'datagrams held per session (before its tunnel stream is up, or while the stream takes no more); beyond it they are dropped, with one warning',
  }),
  readBufferSize: int('readBufferSize', {
    default: 65_535,
    defaultText: '65535 ★ (gost: 4096)',
    burrow: true,
    aliases: ['udp.bufferSize', 'bufferSize'],
    min: 0,
    max: 65_535,
    zeroIsDefault: true,
    doc: 'largest datagram read; gost truncates to 4096 by default, burrow keeps whole datagrams',
  }),
  backlog: int('backlog', { default: 128, min: 0, zeroIsDefault: true, doc: 'UDP sessions waiting to be accepted' }),
  stateless: gostOnly('stateless', 'stateless UDP relaying'),
};

/** rudp/rtcp bind through the chain; gost's rudp keys are unused with the tunnel connector (gost too). */
export const REVERSE_LISTENER_OPTIONS = {
  ttl: gostOnly('ttl', 'unused with the tunnel connector (gost too)', { warn: false }),
  readBufferSize: gostOnly('readBufferSize', 'unused with the tunnel connector (gost too)', { warn: false }),
  readQueueSize: gostOnly('readQueueSize', 'unused with the tunnel connector (gost too)', { warn: false }),
  backlog: gostOnly('backlog', 'unused with the tunnel connector (gost too)', { warn: false }),
};

export const DIAL_TIMEOUT = {
  dialTimeout: duration('dialTimeout', { default: 15_000, doc: 'deadline for the TCP connect; 0 = none' }),
};
export const TCP_DIALER_OPTIONS = { ...DIAL_TIMEOUT, ...TCP_KEEPALIVE };

export const TLS_CLIENT = {
  secure: bool('secure', { default: false, aliases: ['tls.secure'], doc: 'verify the server certificate (and name)' }),
  serverName: str('serverName', { default: undefined, aliases: ['tls.serverName'], doc: 'TLS server name (SNI); default: the node\'s host' }),
};

export const TLS_DIALER_OPTIONS = { ...TCP_DIALER_OPTIONS, ...TLS_FILES, ...TLS_CLIENT, ...TLS_HANDSHAKE };

export const WS_DIALER_OPTIONS = {
  ...DIAL_TIMEOUT,
  ...WS_TCP_KEEPALIVE,
  ...WS_COMMON,
  host: str('host', { default: undefined, aliases: ['ws.host'], doc: 'Host header of the upgrade request; default: the node address' }),
  wsKeepalive: bool('keepalive', { default: false, aliases: ['ws.keepalive'], doc: 'send WebSocket pings' }),
  wsKeepaliveInterval: duration('ttl', {
    default: DEFAULT_WS_KEEPALIVE_INTERVAL_MS,
    aliases: ['keepalive.interval'],
    zeroIsDefault: true,
    doc: 'interval of the WebSocket pings (with `keepalive`)',
  }),
};
export const WSS_DIALER_OPTIONS = { ...WS_DIALER_OPTIONS, ...TLS_FILES, ...TLS_CLIENT };
