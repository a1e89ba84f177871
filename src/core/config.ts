/**
 * The one typed configuration model. The CLI (-L/-F), YAML files and JSON files all normalise
 * into this shape, which mirrors gost v3's config file (spec/config.md §2) so that `-O yaml`
 * prints what gost would print. Metadata stays a free-form map (read through core/Metadata).
 */
import { DIAL_TIMEOUT, UDP_LISTENER_OPTIONS } from '../core/options/transport';
import { TUNNEL_CONNECTOR_OPTIONS, TUNNEL_HANDLER_OPTIONS } from '../core/options/tunnel';

export type MetadataMap = Record<string, unknown>;

export interface AuthConfig {
  username: string;
  password: string;
}

export interface TLSOptionsConfig {
  minVersion?: string;
  maxVersion?: string;
  cipherSuites?: string[];
  alpn?: string[];
}

export interface TLSConfig {
  certFile?: string;
  keyFile?: string;
  caFile?: string;
  secure?: boolean;
  serverName?: string;
  options?: TLSOptionsConfig;
  validity?: string;
  commonName?: string;
  organization?: string;
}

export interface SelectorConfig {
  strategy?: string;
  maxFails?: number;
  failTimeout?: string;
}

export interface HandlerConfig {
  type: string;
  chain?: string;
  retries?: number;
  auth?: AuthConfig;
  auther?: string;
  authers?: string[];
  ingress?: string;
  limiter?: string;
  observer?: string;
  metadata?: MetadataMap;
}

export interface ListenerConfig {
  type: string;
  chain?: string;
  tls?: TLSConfig;
  auth?: AuthConfig;
  auther?: string;
  authers?: string[];
  metadata?: MetadataMap;
}

export interface FilterConfig {
  host?: string;
  protocol?: string;
  path?: string;
}

/** A forwarder node's HTTP settings (sniffed HTTP, per request): gost's `forwarder.nodes[].http`. */
export interface HTTPNodeConfig {
  /** Host header sent to the node. */
  host?: string;
  /** Headers set on the request to the node (an existing one is replaced). */
  requestHeader?: Record<string, string>;
  /** Older gost name of requestHeader. */
  header?: Record<string, string>;
  /** Headers set on the response to the client. */
  responseHeader?: Record<string, string>;
  /** Basic authentication asked of clients. */
  auth?: { username: string; password: string };
  /** URL path rewrites: the first rule whose `match` (a regular expression) matches applies. */
  rewriteURL?: Array<{ match: string; replacement: string }>;
  /** Response body rewrites, for responses whose Content-Type is one of `type` (default text/html). */
  rewriteBody?: Array<{ match: string; replacement: string; type?: string }>;
}

export interface ForwardNodeConfig {
  name: string;
  addr: string;
  network?: string;
  filter?: FilterConfig;
  /** Deprecated flat forms of filter (gost still reads them). */
  host?: string;
  protocol?: string;
  path?: string;
  http?: HTTPNodeConfig;
  /** A routing rule (gost's Traefik-style matchers); takes precedence over `filter`. */
  matcher?: { rule: string; priority?: number };
  /** TLS to the node (the node speaks TLS; `secure` verifies its certificate). */
  tls?: TLSConfig;
  metadata?: MetadataMap;
}

export interface ForwarderConfig {
  nodes?: ForwardNodeConfig[];
  selector?: SelectorConfig;
  hop?: string;
}

export interface ServiceConfig {
  name: string;
  addr: string;
  handler: HandlerConfig;
  listener: ListenerConfig;
  forwarder?: ForwarderConfig;
  metadata?: MetadataMap;
}

export interface ConnectorConfig {
  type: string;
  auth?: AuthConfig;
  tls?: TLSConfig;
  metadata?: MetadataMap;
}

export interface DialerConfig {
  type: string;
  auth?: AuthConfig;
  tls?: TLSConfig;
  metadata?: MetadataMap;
}

export interface NodeConfig {
  name: string;
  addr: string;
  connector?: ConnectorConfig;
  dialer?: DialerConfig;
  metadata?: MetadataMap;
}

export interface HopConfig {
  name: string;
  selector?: SelectorConfig;
  metadata?: MetadataMap;
  nodes?: NodeConfig[];
}

export interface ChainConfig {
  name: string;
  metadata?: MetadataMap;
  hops: HopConfig[];
}

export interface IngressRuleConfig {
  hostname: string;
  endpoint: string;
}

export interface IngressConfig {
  name: string;
  rules?: IngressRuleConfig[];
  reload?: string;
  file?: { path: string };
  redis?: { addr: string; db?: number; username?: string; password?: string; key?: string; type?: string };
  http?: { url: string; timeout?: string };
  plugin?: { type?: string; addr: string; tls?: TLSConfig; token?: string; timeout?: string };
}

export interface AutherConfig {
  name: string;
  /** `tunnels`: the tunnel IDs the credential may be used for (absent: any). */
  auths?: Array<AuthConfig & { tunnels?: string[] }>;
  reload?: string;
  file?: { path: string };
  redis?: { addr: string; db?: number; password?: string; key?: string; type?: string };
  http?: { url: string; timeout?: string };
  plugin?: { type?: string; addr: string; tls?: TLSConfig; token?: string; timeout?: string };
}

export interface LogConfig {
  level?: string;
  format?: string;
  output?: string;
  rotation?: Record<string, unknown>;
}

export interface MetricsConfig {
  addr: string;
  path?: string;
  /** Most tunnels with per-tunnel series (default 1000). */
  maxTunnels?: number;
  auth?: AuthConfig;
  auther?: string;
}

export interface ApiConfig {
  addr: string;
  pathPrefix?: string;
  accesslog?: boolean;
  auth?: AuthConfig;
  auther?: string;
  /** burrow: serve the API without credentials on a non-loopback address (refused otherwise). */
  allowUnauthenticated?: boolean;
  /** burrow: origins (scheme://host[:port]) allowed to change state besides the API's own. */
  allowOrigins?: string[];
}

export interface Config {
  services?: ServiceConfig[];
  chains?: ChainConfig[];
  hops?: HopConfig[];
  authers?: AutherConfig[];
  ingresses?: IngressConfig[];
  sds?: SdConfig[];
  tls?: TLSConfig;
  log?: LogConfig;
  metrics?: MetricsConfig;
  api?: ApiConfig;
}

/** An `sds:` entry: gost's plugin form, or burrow's built-in Redis form. */
export interface SdConfig {
  name: string;
  plugin?: { type?: string; addr: string; tls?: TLSConfig; token?: string; timeout?: string };
  redis?: { addr: string; db?: number; username?: string; password?: string; expiration?: string };
}

/**
 * Defaults in one place (units in names). Those of part options come from the option
 * declarations (core/parts); the rest are not options.
 */
export const DEFAULTS = {
  relayHandshakeTimeoutMs: TUNNEL_HANDLER_OPTIONS.readTimeout.default,
  bindTimeoutMs: TUNNEL_CONNECTOR_OPTIONS.connectTimeout.default,
  dialTimeoutMs: DIAL_TIMEOUT.dialTimeout.default,
  entrypointSniffTimeoutMs: TUNNEL_HANDLER_OPTIONS.entrypointSniffTimeout.default,
  entrypointReadTimeoutMs: TUNNEL_HANDLER_OPTIONS.entrypointReadTimeout.default,
  tunnelTtlMs: 15_000,
  udpTtlMs: UDP_LISTENER_OPTIONS.ttl.default,
  udpReadQueueSize: UDP_LISTENER_OPTIONS.readQueueSize.default,
  udpBacklog: UDP_LISTENER_OPTIONS.backlog.default,
  udpReadBufferBytes: 4096,
  reconnectMinDelayMs: 1_000,
  reconnectMaxDelayMs: 5_000,
  shutdownGraceMs: 5_000,
  halfCloseReadTimeoutMs: 10_000,
  sendTimeoutMs: TUNNEL_HANDLER_OPTIONS.sendTimeout.default,
  selectorMaxFails: 1,
  selectorFailTimeoutMs: 10_000,
} as const;
