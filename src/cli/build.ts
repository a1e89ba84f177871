/**
 * -L / -F command-line values → the config model, mapped as gost's config/cmd does
 * (spec/config.md §4.2, §4.3): services "service-<i>", one chain "chain-0" with one hop
 * "hop-<i>" per -F and one node "node-<j>" per comma-separated address, forward targets
 * "target-<k>", query parameters copied into metadata (strings, as gost keeps them).
 *
 * Where gost silently falls back (unknown handler → auto, unknown connector → http) burrow
 * refuses with a ConfigError that names the flag: a service that cannot run is an error now,
 * not a log line later. Pure: no I/O. Throws ConfigError only.
 */
import {
  CONNECTOR_TYPES,
  DIALER_TYPES,
  GOST_ONLY_CONNECTORS,
  GOST_ONLY_DIALERS,
  GOST_ONLY_HANDLERS,
  GOST_ONLY_LISTENERS,
  HANDLER_TYPES,
  LISTENER_TYPES,
} from '../core/parts';
import { ConfigError } from '../core/errors';
import { formatDurationMs, Metadata } from '../core/metadata';
import type {
  AuthConfig,
  ChainConfig,
  Config,
  ForwardNodeConfig,
  HopConfig,
  MetadataMap,
  NodeConfig,
  SelectorConfig,
  ServiceConfig,
  TLSConfig,
} from '../core/config';
import { expandAddr, splitAddr } from '../config/address';
import { setOrigin } from '../config/origin';
import { parseGostUrl, type GostUrl } from './url';

/** Listener types whose services bind through the chain (listener.chain) instead of dialing. */
const BIND_LISTENERS = new Set(['rtcp', 'rudp', 'runix']);
/** With forward targets, these listener types also become the handler type (else "forward"). */
const SELF_FORWARD_LISTENERS = new Set(['tcp', 'udp', 'rtcp', 'rudp', 'tun', 'tap', 'dns', 'unix', 'runix', 'serial']);
/** Query keys gost turns into features burrow does not implement (-L: handler scope). */
const UNSUPPORTED_SERVICE_KEYS = ['admission', 'bypass', 'resolver', 'hosts', 'limiter.in', 'limiter.out', 'limiter.conn.in', 'limiter.conn.out', 'climiter', 'rlimiter'];
const UNSUPPORTED_HOP_KEYS = ['bypass', 'resolver', 'hosts'];
/** gost part names missing from core/parts that still count as "known" for the fallbacks. */
const OTHER_GOST_NAMES = ['socks4a', 'red', 'redu', 'stdio'];

const HANDLERS = new Set<string>([...HANDLER_TYPES, ...GOST_ONLY_HANDLERS]);
const LISTENERS = new Set<string>([...LISTENER_TYPES, ...GOST_ONLY_LISTENERS]);
const CONNECTORS = new Set<string>([...CONNECTOR_TYPES, ...GOST_ONLY_CONNECTORS]);
const DIALERS = new Set<string>([...DIALER_TYPES, ...GOST_ONLY_DIALERS]);
const ALL_NAMES = new Set<string>([...HANDLERS, ...LISTENERS, ...CONNECTORS, ...DIALERS, ...OTHER_GOST_NAMES]);

const list = (names: readonly string[]): string => names.join(', ');

/**
 * Builds the config gost builds from its -L and -F flags. Features gost would extract from
 * the query but burrow ignores are reported through `warnings` (when given).
 */
export function buildConfigFromCli(listen: string[], forward: string[], warnings: string[] = []): Config {
  const cfg: Config = {};
  let chain: ChainConfig | undefined;
  if (forward.length > 0) {
    chain = { name: 'chain-0', hops: [] };
    setOrigin(chain, 'command line (-F)', 'chains[0]');
    cfg.chains = [chain];
    forward.forEach((arg, i) => chain!.hops.push(buildHop(arg, i, warnings)));
  }

  const services: ServiceConfig[] = [];
  for (const arg of listen) {
    if (arg.trim() === '') throw new ConfigError('empty value (expected a URL such as tunnel://:8443)', { source: '-L ""' });
    for (const svc of buildServices(arg, warnings)) {
      const i = services.length;
      svc.name = `service-${i}`;
      setOrigin(svc, `-L ${JSON.stringify(arg)}`, `services[${i}]`);
      if (chain) {
        if (BIND_LISTENERS.has(svc.listener.type)) svc.listener.chain = chain.name;
        else svc.handler.chain = chain.name;
      }
      services.push(svc);
    }
  }
  if (services.length > 0) cfg.services = services;
  return cfg;
}

// ---------------------------------------------------------------------------------------------
// -L

function buildServices(arg: string, warnings: string[]): ServiceConfig[] {
  const u = parseGostUrl(arg, '-L');
  const source = `-L ${JSON.stringify(arg)}`;
  const fail = (msg: string): never => {
    throw new ConfigError(msg, { source });
  };

  if (u.host === '') fail('missing listen address (expected [host]:port after "://", e.g. tunnel://:8443)');
  let addrs: string[] = [];
  try {
    addrs = expandAddr(u.host);
  } catch (err) {
    fail((err as Error).message);
  }

  let { handler, listener } = resolveServiceTypes(u, fail);

  const targets: ForwardNodeConfig[] = [];
  const remotes = trimSlashes(u.path);
  if (remotes !== '') {
    for (const item of remotes.split(',')) {
      if (item === '') fail(`empty forward target in "${remotes}" (expected target1,target2,…)`);
      let expanded: string[] = [];
      try {
        expanded = expandAddr(item);
      } catch (err) {
        fail(`forward target: ${(err as Error).message}`);
      }
      for (const addr of expanded) targets.push({ name: `target-${targets.length}`, addr });
    }
    if (handler !== 'relay') handler = SELF_FORWARD_LISTENERS.has(listener) ? listener : 'forward';
  }
  checkServiceTypes(u, handler, listener, fail);

  const m = queryRecord(u);
  const auth = takeAuth(u, m, fail);
  const tls = takeServerTls(m);
  moveToScope(m, 'service', ['interface', 'netns', 'netns.out'], ['so_mark', 'proxyProtocol']);
  const selector = takeSelector(m);

  const serviceMd: MetadataMap = {};
  const handlerMd: MetadataMap = {};
  const listenerMd: MetadataMap = {};
  for (const [k, v] of Object.entries(m)) {
    if (k.startsWith('service.')) serviceMd[k.slice('service.'.length)] = v;
    else if (k.startsWith('handler.')) handlerMd[k.slice('handler.'.length)] = v;
    else if (k.startsWith('listener.')) listenerMd[k.slice('listener.'.length)] = v;
    else {
      handlerMd[k] = v;
      listenerMd[k] = v;
      serviceMd[k] = v;
    }
  }

  // gost extracts these from the handler metadata only (listener/service copies stay).
  const hmd = new Metadata(handlerMd);
  const retries = hmd.getInt('retries') ?? 0;
  if (retries > 0) deleteKeys(handlerMd, ['retries']);
  const unsupported = UNSUPPORTED_SERVICE_KEYS.filter((k) => isSet(hmd, k));
  if (unsupported.length > 0) {
    warnings.push(`${source}: ${unsupported.map((k) => `"${k}"`).join(', ')} not supported by burrow (ignored)`);
    deleteKeys(handlerMd, unsupported);
  }

  const services: ServiceConfig[] = addrs.map((addr) => ({
    name: '',
    addr,
    handler: {
      type: handler,
      ...(retries > 0 ? { retries } : {}),
      ...(auth ? { auth: { ...auth } } : {}),
      ...nonEmpty('metadata', { ...handlerMd }),
    },
    listener: {
      type: listener,
      ...(tls ? { tls: { ...tls } } : {}),
      ...nonEmpty('metadata', { ...listenerMd }),
    },
    ...nonEmpty('metadata', { ...serviceMd }),
  }));

  if (targets.length > 0) {
    services.forEach((svc, i) => {
      let nodes: ForwardNodeConfig[] | undefined;
      if (services.length === 1) nodes = targets;
      else if (targets.length === 1) nodes = targets;
      else if (i < targets.length) nodes = [targets[i]!];
      if (nodes) {
        svc.forwarder = {
          nodes: nodes.map((n) => ({ ...n })),
          ...(selector ? { selector: { ...selector } } : {}),
        };
      }
    });
  }
  return services;
}

function resolveServiceTypes(u: GostUrl, fail: (msg: string) => never): { handler: string; listener: string } {
  let handler = u.first;
  let listener = u.second;
  if (!HANDLERS.has(handler)) {
    if (!ALL_NAMES.has(handler)) {
      fail(`unknown handler "${handler}" in scheme "${u.scheme}" (burrow handlers: ${list(HANDLER_TYPES)})`);
    }
    handler = 'auto'; // a listener/dialer name in handler position: gost falls back to auto
  }
  if (!LISTENERS.has(listener)) {
    if (u.twoPart && !ALL_NAMES.has(listener)) {
      fail(`unknown listener "${listener}" in scheme "${u.scheme}" (burrow listeners: ${list(LISTENER_TYPES)})`);
    }
    listener = handler === 'ssu' ? 'udp' : 'tcp'; // e.g. tunnel:// → handler tunnel, listener tcp
  }
  return { handler, listener };
}

function checkServiceTypes(u: GostUrl, handler: string, listener: string, fail: (msg: string) => never): void {
  if (!(HANDLER_TYPES as readonly string[]).includes(handler)) {
    if (handler === 'auto') {
      const hint = LISTENERS.has(u.first) ? ` (did you mean tunnel+${u.first}://…?)` : '';
      fail(
        `no handler in scheme "${u.scheme}": gost would use its "auto" proxy handler, which burrow does not ` +
          `support${hint}; use one of: ${list(HANDLER_TYPES)}, or give forward targets (…/host:port)`,
      );
    }
    fail(`handler "${handler}" is not supported by burrow (supported handlers: ${list(HANDLER_TYPES)})`);
  }
  if (!(LISTENER_TYPES as readonly string[]).includes(listener)) {
    fail(`listener "${listener}" is not supported by burrow (supported listeners: ${list(LISTENER_TYPES)})`);
  }
}

// ---------------------------------------------------------------------------------------------
// -F

function buildHop(arg: string, index: number, warnings: string[]): HopConfig {
  const u = parseGostUrl(arg, '-F');
  const source = `-F ${JSON.stringify(arg)}`;
  const fail = (msg: string): never => {
    throw new ConfigError(msg, { source });
  };
  const { connector, dialer } = resolveNodeTypes(u, fail);

  const hosts = u.host.split(',').filter((h) => h !== '');
  if (hosts.length === 0) fail('missing node address (expected host:port after "://", e.g. tunnel://example.com:8443)');
  for (const h of hosts) {
    try {
      expandAddr(h, { portRequired: true, allowRange: false });
    } catch (err) {
      fail((err as Error).message);
    }
  }

  const m = queryRecord(u);
  const selector = takeSelector(m);
  const md = new Metadata(m);
  const unsupported = UNSUPPORTED_HOP_KEYS.filter((k) => isSet(md, k));
  if (unsupported.length > 0) {
    warnings.push(`${source}: ${unsupported.map((k) => `"${k}"`).join(', ')} not supported by burrow (ignored)`);
    deleteKeys(m, unsupported);
  }
  moveToScope(m, 'hop', ['interface'], ['so_mark', 'proxyProtocol']);

  // As gost: the hop sees every key not scoped to node/connector/dialer, auth and TLS included.
  const hopMd: MetadataMap = {};
  for (const [k, v] of Object.entries(m)) {
    if (k.startsWith('node.') || k.startsWith('connector.') || k.startsWith('dialer.')) continue;
    if (k.startsWith('hop.')) {
      hopMd[k.slice('hop.'.length)] = v;
      delete m[k];
      continue;
    }
    hopMd[k] = v;
  }

  const auth = takeAuth(u, m, fail);
  const tls = takeClientTls(m);
  const nodeMd: MetadataMap = {};
  const connectorMd: MetadataMap = {};
  const dialerMd: MetadataMap = {};
  for (const [k, v] of Object.entries(m)) {
    if (k.startsWith('node.')) nodeMd[k.slice('node.'.length)] = v;
    else if (k.startsWith('connector.')) connectorMd[k.slice('connector.'.length)] = v;
    else if (k.startsWith('dialer.')) dialerMd[k.slice('dialer.'.length)] = v;
    else {
      connectorMd[k] = v;
      dialerMd[k] = v;
      nodeMd[k] = v;
    }
  }

  const hop: HopConfig = {
    name: `hop-${index}`,
    ...(selector ? { selector } : {}),
    ...nonEmpty('metadata', hopMd),
    nodes: [],
  };
  setOrigin(hop, source, `chains[0].hops[${index}]`);
  hosts.forEach((addr, j) => {
    // gost takes the default SNI from the whole host list; per node is what a list means.
    const serverName = tls.serverName ?? defaultServerName(addr);
    const nodeTls: TLSConfig = { ...tls, ...(serverName ? { serverName } : {}) };
    const keepTls = nodeTls.secure === true || !!nodeTls.certFile || !!nodeTls.caFile || !!nodeTls.serverName;
    const node: NodeConfig = {
      name: `node-${j}`,
      addr,
      connector: {
        type: connector,
        ...(auth ? { auth: { ...auth } } : {}),
        ...nonEmpty('metadata', { ...connectorMd }),
      },
      dialer: {
        type: dialer,
        ...(keepTls ? { tls: nodeTls } : {}),
        ...nonEmpty('metadata', { ...dialerMd }),
      },
      ...nonEmpty('metadata', { ...nodeMd }),
    };
    setOrigin(node, source, `chains[0].hops[${index}].nodes[${j}]`);
    hop.nodes!.push(node);
  });
  return hop;
}

function resolveNodeTypes(u: GostUrl, fail: (msg: string) => never): { connector: string; dialer: string } {
  let connector = u.first;
  let dialer = u.second;
  if (!CONNECTORS.has(connector)) {
    if (!ALL_NAMES.has(connector)) {
      fail(`unknown connector "${connector}" in scheme "${u.scheme}" (burrow connectors: ${list(CONNECTOR_TYPES)})`);
    }
    connector = 'http'; // gost's fallback
  }
  if (!DIALERS.has(dialer)) {
    if (u.twoPart && !ALL_NAMES.has(dialer)) {
      fail(`unknown dialer "${dialer}" in scheme "${u.scheme}" (burrow dialers: ${list(DIALER_TYPES)})`);
    }
    dialer = connector === 'ssu' ? 'udp' : 'tcp';
  }
  if (!(CONNECTOR_TYPES as readonly string[]).includes(connector)) {
    const implied = connector !== u.first ? ` (gost's default when the scheme "${u.scheme}" names no connector)` : '';
    const hint = DIALERS.has(u.first) && !u.twoPart ? `; did you mean tunnel+${u.first}://…?` : '';
    fail(`connector "${connector}"${implied} is not supported by burrow (supported connectors: ${list(CONNECTOR_TYPES)})${hint}`);
  }
  if (!(DIALER_TYPES as readonly string[]).includes(dialer)) {
    const hint =
      dialer === 'udp'
        ? '; a tunnel client reaches the server over a stream transport (tunnel://, tunnel+tls://, tunnel+wss://, …) and UDP traffic goes through it with rudp:// and udp:// services'
        : '';
    fail(`dialer "${dialer}" is not supported by burrow (supported dialers: ${list(DIALER_TYPES)})${hint}`);
  }
  return { connector, dialer };
}

function defaultServerName(addr: string): string {
  try {
    return splitAddr(addr).host;
  } catch {
    return '';
  }
}

// ---------------------------------------------------------------------------------------------
// query parameters (keys are matched case-insensitively, like gost's metadata getters)

function queryRecord(u: GostUrl): MetadataMap {
  const m: MetadataMap = {};
  for (const [k, v] of u.query) m[k] = v;
  return m;
}

function isSet(md: Metadata, key: string): boolean {
  const v = md.getString(key);
  return v !== undefined && v !== '';
}

/** Deletes every key of `m` equal to one of `keys`, ignoring case. */
function deleteKeys(m: MetadataMap, keys: string[]): void {
  const lower = new Set(keys.map((k) => k.toLowerCase()));
  for (const k of Object.keys(m)) if (lower.has(k.toLowerCase())) delete m[k];
}

/** gost moves these keys into "<scope>.<key>" so they land in that scope's metadata only. */
function moveToScope(m: MetadataMap, scope: string, stringKeys: string[], intKeys: string[]): void {
  const md = new Metadata(m);
  for (const key of stringKeys) {
    const v = md.getString(key);
    if (v !== undefined && v !== '') {
      deleteKeys(m, [key]);
      m[`${scope}.${key}`] = v;
    }
  }
  for (const key of intKeys) {
    const v = md.getInt(key) ?? 0;
    if (v > 0) {
      deleteKeys(m, [key]);
      m[`${scope}.${key}`] = v;
    }
  }
}

function takeSelector(m: MetadataMap): SelectorConfig | undefined {
  const md = new Metadata(m);
  const strategy = md.getString('strategy') ?? '';
  const maxFails = md.getInt('maxFails', 'max_fails') ?? 0;
  const failTimeoutMs = md.getDurationMs('failTimeout', 'fail_timeout') ?? 0;
  if (strategy === '' && maxFails <= 0 && failTimeoutMs <= 0) return undefined;
  deleteKeys(m, ['strategy', 'maxFails', 'max_fails', 'failTimeout', 'fail_timeout']);
  return {
    strategy: strategy || 'round',
    maxFails: maxFails > 0 ? maxFails : 1,
    failTimeout: formatDurationMs(failTimeoutMs > 0 ? failTimeoutMs : 30_000),
  };
}

function takeAuth(u: GostUrl, m: MetadataMap, fail: (msg: string) => never): AuthConfig | undefined {
  const encoded = new Metadata(m).getString('auth') ?? '';
  deleteKeys(m, ['auth']);
  if (u.user) return { username: u.user.username, password: u.user.password ?? '' };
  if (encoded === '') return undefined;
  const text = decodeBase64(encoded);
  if (text === undefined) fail(`auth: "${encoded}" is not base64 (expected base64 of "user:pass")`);
  const colon = text!.indexOf(':');
  return colon < 0 ? { username: text!, password: '' } : { username: text!.slice(0, colon), password: text!.slice(colon + 1) };
}

/** Go's base64.RawURLEncoding, then StdEncoding; undefined when neither decodes. */
function decodeBase64(s: string): string | undefined {
  if (/^[A-Za-z0-9_-]*$/.test(s) && s.length % 4 !== 1) return Buffer.from(s, 'base64url').toString('utf8');
  if (/^[A-Za-z0-9+/]*={0,2}$/.test(s) && s.length % 4 === 0) return Buffer.from(s, 'base64').toString('utf8');
  return undefined;
}

const CERT_KEYS = ['tls.certFile', 'certFile', 'cert'];
const KEY_KEYS = ['tls.keyFile', 'keyFile', 'key'];
const CA_KEYS = ['tls.caFile', 'caFile', 'ca'];

/** Listener TLS from a -L query; kept only with a certificate, as gost does. */
function takeServerTls(m: MetadataMap): TLSConfig | undefined {
  const md = new Metadata(m);
  const certFile = md.getString(...CERT_KEYS) ?? '';
  const keyFile = md.getString(...KEY_KEYS) ?? '';
  const caFile = md.getString(...CA_KEYS) ?? '';
  deleteKeys(m, [...CERT_KEYS, ...KEY_KEYS, ...CA_KEYS]);
  if (certFile === '') return undefined;
  return { certFile, ...(keyFile ? { keyFile } : {}), ...(caFile ? { caFile } : {}) };
}

/** Dialer TLS fields from a -F query (serverName default is added per node). */
function takeClientTls(m: MetadataMap): TLSConfig {
  const md = new Metadata(m);
  const certFile = md.getString(...CERT_KEYS) ?? '';
  const keyFile = md.getString(...KEY_KEYS) ?? '';
  const caFile = md.getString(...CA_KEYS) ?? '';
  const secure = md.getBool('tls.secure', 'secure') ?? false;
  const serverName = md.getString('tls.serverName', 'serverName') ?? '';
  deleteKeys(m, [...CERT_KEYS, ...KEY_KEYS, ...CA_KEYS, 'tls.secure', 'secure', 'tls.serverName', 'serverName']);
  return {
    ...(certFile ? { certFile } : {}),
    ...(keyFile ? { keyFile } : {}),
    ...(caFile ? { caFile } : {}),
    ...(secure ? { secure } : {}),
    ...(serverName ? { serverName } : {}),
  };
}

function nonEmpty<K extends string>(key: K, m: MetadataMap): { [P in K]?: MetadataMap } {
  return (Object.keys(m).length > 0 ? { [key]: m } : {}) as { [P in K]?: MetadataMap };
}

function trimSlashes(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && s[a] === '/') a++;
  while (b > a && s[b - 1] === '/') b--;
  return s.slice(a, b);
}
