/** Options of the port-forwarding handlers: tcp/udp/forward (visitors, local) and rtcp/rudp (clients, remote). */
import { bool, duration, gostOnly, int } from './options';

const COMMON = {
  sniffing: bool('sniffing', { default: false, doc: 'route by HTTP Host / TLS SNI found in the traffic' }),
  sniffingTimeout: duration('sniffing.timeout', { default: 15_000, zeroIsDefault: true, doc: 'deadline for sniffing' }),
  idleTimeout: duration('idleTimeout', { default: 0, defaultText: 'off', doc: 'close a connection idle this long' }),
  sendTimeout: duration('sendTimeout', {
    default: 60_000,
    burrow: true,
    doc:
      'close a connection when one side (e.g. a target that stopped reading) has taken no bytes for this long while data ' +
      'waits for it; `0` = never. The clock runs only while a write waits, so a slow reader that makes progress is never cut',
  }),
  readTimeout: duration('readTimeout', { default: 15_000, zeroIsDefault: true, doc: 'wait for a response head / ServerHello from the target in sniffed mode' }),
  httpKeepalive: gostOnly('http.keepalive', 'keep upstream HTTP connections in sniffed mode'),
  proxyProtocol: gostOnly('proxyProtocol', 'send a PROXY header v1/v2 to the target'),
  mitm: gostOnly('mitm', 'TLS interception'),
};

export const LOCAL_FORWARD_HANDLER_OPTIONS = {
  ...COMMON,
  stateless: gostOnly('stateless', 'stateless UDP relaying'),
  bufferSize: gostOnly('bufferSize', 'UDP buffer size of the handler (burrow reads whole datagrams)', {
    aliases: ['readBufferSize', 'udp.bufferSize'],
    warn: false,
  }),
};

export const REMOTE_FORWARD_HANDLER_OPTIONS = {
  ...COMMON,
  sendProxyProtocol: int('sendProxyProtocol', {
    default: 0,
    defaultText: '0 (off)',
    min: 0,
    max: 2,
    burrow: true,
    doc:
      'write a PROXY header (version 1 or 2) with the visitor\'s address as source and the target as destination: rtcp at ' +
      'the start of each connection to the target, rudp (2 only) before each datagram ([docs/proxy-protocol.md](proxy-protocol.md))',
  }),
};
