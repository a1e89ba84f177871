/** Options of the `tunnel` handler (the server) and the `tunnel` connector (clients and visitors). */
import { TUNNEL_MUX_OPTIONS } from './mux';
import { ENTRYPOINT_ACME_OPTIONS } from './acme';
import { isUuid } from '../uuid';
import { bool, duration, entries, gostOnly, int, list, num, str, type ParsedOptions } from './options';


const SEND_TIMEOUT_DOC =
  'close a spliced connection (visitor CONNECT, TLS pass-through, WebSocket) when one side has taken no bytes for this ' +
  'long while data waits for it, and a tunnel client\'s session when its connection takes no bytes that long (a client ' +
  'that sends keepalives but stopped reading); `0` = never';

export const TUNNEL_HANDLER_OPTIONS = {
  entrypoint: str('entrypoint', { default: undefined, expect: '[host]:port', doc: 'address of the public HTTP/TLS entry point' }),
  entrypoints: entries('entrypoints', { doc: 'extra entry points: list of `{addr, ingress}`' }),
  ingress: str('ingress', { default: undefined, doc: 'name of an `ingresses:` entry' }),
  tunnel: str('tunnel', {
    default: undefined,
    doc: 'inline rules `host:uuid,host2:$uuid` (`$` = private) when `ingress` names none; a malformed rule gets a warning and is ignored (as gost ignores it)',
  }),
  direct: bool('tunnel.direct', { default: false, doc: 'visitors route by their own tunnel ID' }),
  entrypointId: str('entrypoint.id', { default: undefined, doc: 'visitors presenting this tunnel ID are public entry points' }),
  entrypointReadTimeout: duration('entrypoint.readTimeout', { default: 15_000, zeroIsDefault: true, doc: 'wait for a response head through the tunnel, counted from the end of the request body (as Go\'s ResponseHeaderTimeout)' }),
  entrypointKeepalive: bool('entrypoint.keepalive', {
    default: true,
    defaultText: 'true ★ (gost: false)',
    burrow: true,
    doc:
      'requests go on with `Connection: keep-alive`; each request picks its connector (weights, weight 255, failover) and a ' +
      'keep-alive client connection keeps one tunnel stream per connector it was sent to (and the tunnel client its backend ' +
      'connection) for its next requests to that connector, and a stream whose exchange is over waits up to 4 s for a later ' +
      'connection from the same client IP to the same host on the same connector (at most 64 per connector, host and IP, ' +
      '1,024 per entry point; idle streams give way when `tunnel.maxStreams` is reached), so clients that close after each ' +
      'request (`Connection: close`, HTTP/1.0) reuse streams and backend connections too. A connection to another server of ' +
      'the fleet for a tunnel held there is kept the same way, per visitor address and node ([scale-out.md](scale-out.md)). ' +
      '`false` = gost\'s one stream per ' +
      'request with `Connection: close` for every request',
  }),
  entrypointSniffTimeout: duration('entrypoint.sniffTimeout', {
    default: 15_000,
    zeroIsDefault: true,
    burrow: true,
    doc: 'deadline for the first request head / ClientHello (gost has none)',
  }),
  entrypointIdleTimeout: duration('entrypoint.idleTimeout', { default: 60_000, zeroIsDefault: true, burrow: true, doc: 'idle keep-alive connections at the entry point' }),
  entrypointRelay: bool('entrypoint.relay', {
    default: true,
    burrow: true,
    doc:
      'accept relay requests on the entry point port, checked exactly as on the tunnel port (auther, rules, privacy, ' +
      '`tunnel.connRate`; gost checks nothing there). `false` refuses them, which also stops forwarding between servers ' +
      'of a fleet ([SECURITY.md](../SECURITY.md))',
  }),
  entrypointBacklog: int('entrypoint.backlog', {
    default: undefined,
    defaultText: '`backlog`, else 4096',
    min: 1,
    max: 65_535,
    burrow: true,
    doc: 'listen backlog of the entry point (capped by `net.core.somaxconn`)',
  }),
  entrypointCertFile: list('entrypoint.certFile', {
    burrow: true,
    doc:
      'certificate files (PEM, chain included) the entry point terminates TLS with, chosen by SNI: exact names of the ' +
      'certificates\' DNS SANs (CN without SANs), then wildcards (`*.example.net`, one label); a TLS connection for any other ' +
      'name is passed through as gost does. A file that does not load is a configuration error ([docs/https.md](https.md))',
  }),
  entrypointKeyFile: list('entrypoint.keyFile', { burrow: true, doc: 'the private key files of `entrypoint.certFile`, one per certificate, in the same order' }),
  entrypointPassthrough: list('entrypoint.passthrough', {
    burrow: true,
    doc: 'hosts (`app.example.net`, `*.example.net`) whose TLS is always passed through to the client, certificate or not (end-to-end TLS)',
  }),
  entrypointTlsHandshakeTimeout: duration('entrypoint.tlsHandshakeTimeout', {
    default: 10_000,
    zeroIsDefault: true,
    burrow: true,
    doc: 'deadline of the TLS handshake of a terminated connection',
  }),
  entrypointHttp2: bool('entrypoint.http2', {
    default: true,
    burrow: true,
    doc:
      'offer HTTP/2 (ALPN `h2`) on terminated TLS; each HTTP/2 request goes through the tunnel as HTTP/1.1 on a stream ' +
      'of its own, at most 100 concurrent streams per connection. `false` = HTTP/1.1 only',
  }),
  entrypointForwardedHeaders: bool('entrypoint.forwardedHeaders', {
    default: undefined,
    defaultText: '— (terminated TLS only)',
    burrow: true,
    doc:
      'requests carry `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host` to the origin: by default on requests ' +
      'of terminated TLS only (gost adds none to plain HTTP), `true` on plain HTTP too, `false` never. From a peer in ' +
      '`entrypoint.trustedProxies` the headers it sent are kept (its `X-Forwarded-For` appended to), from anyone else they are replaced',
  }),
  entrypointRedirectHttps: bool('entrypoint.redirectHttps', {
    default: false,
    burrow: true,
    doc: 'plain HTTP requests for a host the entry point has a certificate for get `308` to `https://` (except `/.well-known/acme-challenge/`)',
  }),
  bindAuth: str('tunnel.bindAuth', {
    default: undefined,
    burrow: true,
    expect: 'user:pass[,user:pass…]',
    doc: '`user:pass[,user:pass...]`: BIND is checked against these only, and the service\'s auther checks CONNECT only ([SECURITY.md](../SECURITY.md))',
  }),
  bindAuther: str('tunnel.bindAuther', {
    default: undefined,
    burrow: true,
    doc: 'the same with an `authers:` entry (YAML); its users may be limited to tunnel IDs (`tunnels: [...]`)',
  }),
  ...ENTRYPOINT_ACME_OPTIONS,
  entrypointCompression: gostOnly('entrypoint.compression', 'let the HTTP transport negotiate gzip'),
  entrypointProxyProtocol: int('entrypoint.ProxyProtocol', {
    default: 0,
    defaultText: '0 (off)',
    min: 0,
    max: 2,
    doc:
      'read a PROXY header (v1 or v2) at the start of each entry point connection (10 s deadline); believed only from ' +
      '`entrypoint.trustedProxies`, a header from anyone else closes the connection ([docs/proxy-protocol.md](proxy-protocol.md))',
  }),
  entrypointTrustedProxies: list('entrypoint.trustedProxies', {
    burrow: true,
    doc:
      'IPs/CIDRs of the load balancers in front of the entry point: their PROXY headers and, on plain HTTP, their ' +
      '`X-Forwarded-For` / `CF-Connecting-IP` / `X-Real-Ip` give the visitor\'s address. When set, those headers count from ' +
      'no one else; unset, forwarded-for headers are passed on from anyone as in gost (never used for limits)',
  }),
  readTimeout: duration('readTimeout', {
    default: 15_000,
    defaultText: '15s ★ (gost: none)',
    zeroIsDefault: true,
    burrow: true,
    doc: 'deadline for the first relay request',
  }),
  sendTimeout: duration('sendTimeout', { default: 60_000, burrow: true, doc: SEND_TIMEOUT_DOC }),
  publicDomain: str('tunnel.publicDomain', { default: undefined, burrow: true, doc: 'public mode: register `<endpoint>.<domain>` on every BIND' }),
  publicTtl: duration('tunnel.publicTTL', { default: 24 * 3600_000, zeroIsDefault: true, burrow: true, doc: 'how long a public name stays its tunnel\'s after the tunnel\'s last connector left (never expires while one is connected; see [docs/public-names.md](public-names.md))' }),
  customTtl: duration('tunnel.customTTL', { default: 3600_000, zeroIsDefault: true, burrow: true, doc: 'the same for a custom name (`rtcp://hello/...`) in public mode' }),
  allowCustomNames: bool('tunnel.allowCustomNames', { default: true, burrow: true, doc: 'honour custom names in public mode' }),
  publicStore: str('tunnel.publicStore', {
    default: undefined,
    defaultText: '— (memory)',
    burrow: true,
    doc:
      '`redis://[[user]:password@]host:port[/db]` (or `rediss://`): public names are also kept in Redis, in gost-plugins\' ' +
      'layout (key = the bare name, value = the tunnel ID, with the name\'s TTL as expiry, refreshed while the tunnel is ' +
      'connected). Names survive a restart (a custom name stays its owner\'s) and servers sharing the store agree on who owns ' +
      'one. Only BINDs ask Redis; routing reads memory. When Redis does not answer, BINDs are decided in memory with one warning',
  }),
  publicStoreKey: str('tunnel.publicStoreKey', { default: '', defaultText: '""', burrow: true, doc: 'prefix of the keys in the store' }),
  publicStoreTimeout: duration('tunnel.publicStoreTimeout', {
    default: 2000,
    zeroIsDefault: true,
    burrow: true,
    doc: 'how long a BIND waits for the store before deciding in memory',
  }),
  maxTunnels: int('tunnel.maxTunnels', { default: 0, defaultText: '0 (no limit)', min: 0, burrow: true, doc: 'tunnels the server accepts' }),
  maxConnectors: int('tunnel.maxConnectors', { default: 0, defaultText: '0 (no limit)', min: 0, burrow: true, doc: 'connectors per tunnel' }),
  maxStreams: int('tunnel.maxStreams', { default: 0, defaultText: '0 (no limit)', min: 0, burrow: true, doc: 'concurrent streams per connector' }),
  connRate: num('tunnel.connRate', { default: 0, defaultText: '0 (off)', min: 0, burrow: true, doc: 'per-IP connection rate on the tunnel port and the entry point\'s relay path (per second)' }),
  connBurst: int('tunnel.connBurst', {
    default: 0,
    defaultText: '2 × connRate',
    min: 0,
    zeroIsDefault: true,
    burrow: true,
    doc: 'burst of the per-IP connection rate',
  }),
  ...TUNNEL_MUX_OPTIONS,
  tunnelTtl: duration('tunnel.ttl', {
    default: 15_000,
    zeroIsDefault: true,
    doc: 'how often service-discovery registrations are renewed (dead connectors are dropped at once, not on this period as in gost)',
  }),
  sd: str('sd', { default: undefined, doc: 'name of an `sds:` entry: connectors bound here are registered there ([docs/scale-out.md](scale-out.md))' }),
  sdRedis: str('tunnel.sd', {
    default: undefined,
    burrow: true,
    expect: 'redis://[[user]:password@]host:port[/db] or sentinel://host:port[,host:port...]/<master name>[/db]',
    doc: 'service discovery in Redis, in gost-plugins\' layout (hash = tunnel ID, field = connector ID); the same as an `sds:` entry with `redis`; `sentinel://` finds the master through Redis Sentinel',
  }),
  sdAdvertise: str('sd.advertise', {
    default: undefined,
    defaultText: 'the entry point\'s address',
    burrow: true,
    expect: 'host:port',
    doc: 'the address registered for other servers to reach this one; without it an entry point on all interfaces registers the address this server reaches Redis from (Redis) or `:port` (HTTP plugin)',
  }),
  sdTrusted: list('sd.trusted', {
    burrow: true,
    doc:
      'IPs/CIDRs of the fleet\'s servers: a request they forward counts against the visitor\'s address (limits, lockout) and may reach a public host without credentials; default nobody ([docs/scale-out.md](scale-out.md))',
  }),
  sdTimeout: duration('sd.timeout', {
    default: 15_000,
    zeroIsDefault: true,
    burrow: true,
    doc: 'cross-server routing: how long connecting to the server that holds a tunnel, and its answer, may take',
  }),
  sdExpiration: duration('sd.expiration', {
    default: 60_000,
    zeroIsDefault: true,
    burrow: true,
    doc: 'with `tunnel.sd`: how long a registration counts without renewal, and the key\'s expiry',
  }),
  observePeriod: gostOnly('observePeriod', 'stats reporting period', { aliases: ['observer.period', 'observer.observePeriod'] }),
  observerResetTraffic: gostOnly('observer.resetTraffic', 'stats reporting'),
  sniffingWebsocket: gostOnly('sniffing.websocket', 'recording of WebSocket traffic'),
  sniffingWebsocketSampleRate: gostOnly('sniffing.websocket.sampleRate', 'recording of WebSocket traffic'),
  limiterRefreshInterval: gostOnly('limiter.refreshInterval', 'traffic limiter cache'),
  limiterCleanupInterval: gostOnly('limiter.cleanupInterval', 'traffic limiter cache'),
  skipauth: gostOnly('skipauth', 'client IPs/CIDRs exempt from auth'),
};

/** The tunnel handler's options, parsed (`parseOptions(TUNNEL_HANDLER_OPTIONS, md)`). */
export type TunnelHandlerOptionValues = ParsedOptions<typeof TUNNEL_HANDLER_OPTIONS>;

export const TUNNEL_CONNECTOR_OPTIONS = {
  tunnelId: str('tunnel.id', {
    default: undefined,
    defaultText: 'random per process',
    aliases: ['tunnelID'],
    expect: 'UUID',
    check: (s) => (isUuid(s) ? undefined : s.startsWith('$') ? 'a UUID without the "$" marker (it belongs in ingress rules)' : 'a UUID such as 4d21094e-b74c-4916-86c1-d9fa36ea677b'),
    doc: 'the tunnel\'s UUID',
  }),
  all: bool('tunnel.all', {
    default: false,
    burrow: true,
    doc:
      'with a node list (`-F tunnel://a:8443,b:8443?…`): keep a session to every server of the list at once rather than to one at a time, so each server routes to this client itself ([docs/scale-out.md](scale-out.md))',
  }),
  weight: int('tunnel.weight', {
    default: 0,
    defaultText: '0 (= 1)',
    min: 0,
    max: 255,
    doc: 'connector weight; 255 takes all traffic. 0 (gost\'s default, sent as 0 on the wire) counts as 1, and the logs show 1',
  }),
  connectTimeout: duration('connectTimeout', {
    default: 15_000,
    defaultText: '15s ★ (gost: none)',
    zeroIsDefault: true,
    burrow: true,
    doc: 'deadline for the CONNECT/BIND exchange',
  }),
  sendTimeout: duration('sendTimeout', {
    default: 60_000,
    burrow: true,
    doc: 'the session to the server closes (and reconnects) when its connection takes no bytes this long while frames wait; `0` = never',
  }),
  ...TUNNEL_MUX_OPTIONS,
  recordMode: gostOnly('record.mode', 'sends a Metadata feature'),
};

/** The weight a connector counts with (0 = 1, as the server's pool counts it). */
export function effectiveWeight(weight: number): number {
  return weight === 0 ? 1 : weight;
}
