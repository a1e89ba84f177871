/**
 * The part type names burrow implements, by kind. The CLI and the config schema validate
 * against these lists; app/builtins.ts registers one implementation per name.
 * Names gost knows but burrow does not implement are listed separately so they can be
 * reported as "not supported yet" rather than as typos.
 */
export const LISTENER_TYPES = ['tcp', 'udp', 'rtcp', 'rudp', 'tls', 'ws', 'wss', 'mtls', 'mws', 'mwss'] as const;
export const HANDLER_TYPES = ['tunnel', 'tcp', 'udp', 'rtcp', 'rudp', 'forward'] as const;
export const CONNECTOR_TYPES = ['tunnel', 'forward'] as const;
export const DIALER_TYPES = ['tcp', 'udp', 'tls', 'ws', 'wss', 'mtls', 'mws', 'mwss'] as const;

/** gost part names burrow does not implement (yet): accepted by the URL splitter, refused at build. */
export const GOST_ONLY_LISTENERS = ['kcp', 'quic', 'h2', 'h2c', 'grpc', 'http3', 'mtcp', 'dtls', 'ssh', 'sshd', 'obfs-http', 'obfs-tls', 'otls', 'pht', 'phts', 'ftcp', 'icmp', 'tun', 'tap', 'redirect', 'tproxy', 'unix', 'runix', 'serial', 'dns'];
export const GOST_ONLY_HANDLERS = ['auto', 'http', 'http2', 'socks', 'socks4', 'socks5', 'ss', 'ssu', 'sni', 'relay', 'dns', 'redirect', 'tun', 'tap', 'file', 'serial', 'unix', 'sshd', 'metrics', 'router'];
export const GOST_ONLY_CONNECTORS = ['http', 'http2', 'socks', 'socks4', 'socks5', 'ss', 'ssu', 'relay', 'sni', 'direct', 'router', 'serial', 'unix', 'sshd'];
export const GOST_ONLY_DIALERS = ['kcp', 'quic', 'h2', 'h2c', 'grpc', 'http3', 'mtcp', 'dtls', 'ssh', 'obfs-http', 'obfs-tls', 'otls', 'pht', 'phts', 'ftcp', 'icmp', 'wt', 'unix', 'serial'];
