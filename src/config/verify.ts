/**
 * Cross-field checks on the merged config, after the schema: part types burrow implements,
 * unique names, references between sections, addresses and tunnel IDs. Errors name the
 * source and path of the offending item (origin.ts); soft problems become warnings.
 *
 * Where gost is lenient in a way that hides mistakes, burrow is strict: gost ignores a chain or
 * auther name that does not exist (so a typo silently disables the chain or the auth) and
 * turns a bad port into port 0. An `ingress` name that does not exist is *not* an error: gost
 * then falls back to the handler's inline `tunnel=` rules.
 */
import { ConfigError } from '../core/errors';
import { Metadata, parseGoDurationMs } from '../core/metadata';
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
import { splitHostPort } from '../core/addr';
import { TrustedPeers } from '../limit/trusted-peers';
import { parseUserPassList } from '../auth/auther';
import { isUuid, uuidHex } from '../core/uuid';
import { parseRule } from '../forward/matcher';
import { parseRedisSdUrl } from '../sd/sd';
import { expandAddr } from './address';
import { checkOptions } from './options-check';
import type { ApiConfig, Config, HopConfig, NodeConfig, ServiceConfig } from '../core/config';
import { originOr, where, type Origin } from './origin';
import { FileCertificates, listOption } from '../tls/files';
import { readCaPem } from '../tls/acme/ca-file';

/** Throws ConfigError on the first problem; appends soft problems to `warnings`. */
export function verifyConfig(cfg: Config, warnings: string[] = []): void {
  const chains = uniqueNames(cfg.chains ?? [], 'chain', 'chains');
  const hops = uniqueNames(cfg.hops ?? [], 'hop', 'hops');
  const authers = uniqueNames(cfg.authers ?? [], 'auther', 'authers');
  const ingresses = uniqueNames(cfg.ingresses ?? [], 'ingress', 'ingresses');
  const sds = uniqueNames(cfg.sds ?? [], 'sd', 'sds');
  uniqueNames(cfg.services ?? [], 'service', 'services');

  const refs: Refs = { chains, hops, authers, ingresses, sds, sdsOff: new Set() };
  cfg.sds?.forEach((sd, i) => {
    const o = originOr(sd, `sds[${i}]`);
    if (sd.redis) verifyLoaders({ redis: sd.redis }, o);
    if (sd.redis?.expiration !== undefined && !(Number(parseGoDurationMs(sd.redis.expiration)) > 0)) {
      fail(o, 'redis.expiration', `expected a positive duration such as 60s, found '${sd.redis.expiration}'`);
    }
    if (sd.plugin) {
      const type = (sd.plugin.type || 'grpc').toLowerCase();
      if (type !== 'http') {
        warnings.push(`${where(o, 'plugin.type')}: ${type} sd plugins are not implemented by burrow (only type: http, or the built-in redis form); connectors are not registered`);
        refs.sds.delete(sd.name);
        refs.sdsOff.add(sd.name);
      } else if (!isHttpUrl(sd.plugin.addr)) fail(o, 'plugin.addr', `expected the plugin's http:// or https:// URL, found '${sd.plugin.addr}'`);
    }
    if (!sd.plugin && !sd.redis) fail(o, 'plugin', 'expected plugin: {type: http, addr: URL} or redis: {addr, db, password, expiration}');
  });
  cfg.services?.forEach((svc, i) => verifyService(svc, originOr(svc, `services[${i}]`), refs, warnings));
  cfg.chains?.forEach((chain, c) => {
    const co = originOr(chain, `chains[${c}]`);
    uniqueNames(chain.hops.filter((h) => h.name !== ''), 'hop', `${co.path}.hops`, co.source);
    chain.hops.forEach((hop, h) => {
      const ho = originOr(hop, `${co.path}.hops[${h}]`);
      if (!hop.nodes?.length && !hops.has(hop.name)) {
        fail(ho, 'nodes', `hop '${hop.name}' has no nodes and there is no top-level hop of that name${known(hops)}`);
      }
      verifyHop(hop, ho);
    });
  });
  cfg.hops?.forEach((hop, h) => verifyHop(hop, originOr(hop, `hops[${h}]`)));
  checkOptions(cfg, warnings);

  if (cfg.api?.auther) checkRef(authers, cfg.api.auther, 'auther', originOr(cfg.api, 'api'), 'auther');
  if (cfg.api) verifyApi(cfg.api, originOr(cfg.api, 'api'));
  if (cfg.metrics?.auther) checkRef(authers, cfg.metrics.auther, 'auther', { source: 'config', path: 'metrics' }, 'auther');

  cfg.ingresses?.forEach((ing, i) => {
    const o = originOr(ing, `ingresses[${i}]`);
    ing.rules?.forEach((rule, r) => {
      const id = rule.endpoint.startsWith('$') ? rule.endpoint.slice(1) : rule.endpoint;
      if (!isUuid(id)) {
        warnings.push(`${where(o, `rules[${r}].endpoint`)}: endpoint "${rule.endpoint}" is not a tunnel ID (UUID, optionally prefixed with "$"); the rule can never match`);
      }
    });
    verifyLoaders(ing, o);
  });
  cfg.authers?.forEach((a, i) => {
    const o = originOr(a, `authers[${i}]`);
    verifyLoaders(a, o);
    if (a.plugin) {
      const type = (a.plugin.type || 'grpc').toLowerCase();
      if (type !== 'http') {
        warnings.push(`${where(o, 'plugin.type')}: ${type} auther plugins are not implemented by burrow (only type: http); this auther accepts nobody`);
      } else {
        if (!isHttpUrl(a.plugin.addr)) fail(o, 'plugin.addr', `expected the plugin's http:// or https:// URL, found '${a.plugin.addr}'`);
      }
    }
  });
}

/** The redis and http sources of an ingress or auther: an address, a key type, a URL. */
function verifyLoaders(
  item: { redis?: { addr: string; type?: string }; http?: { url: string } },
  o: Origin,
): void {
  if (item.redis) {
    const r = item.redis;
    if (!r.addr.trim()) fail(o, 'redis.addr', 'expected a Redis address host:port, found an empty string');
    try {
      splitHostPort(r.addr.trim());
    } catch (err) {
      fail(o, 'redis.addr', `expected a Redis address host:port: ${(err as Error).message}`);
    }
    if (r.type && !['hash', 'set'].includes(r.type.toLowerCase())) {
      fail(o, 'redis.type', `expected hash or set, found '${r.type}'`);
    }
  }
  if (item.http && !isHttpUrl(item.http.url)) fail(o, 'http.url', `expected an http:// or https:// URL, found '${item.http.url}'`);
}

function isHttpUrl(text: string): boolean {
  try {
    const { protocol } = new URL(text);
    return protocol === 'http:' || protocol === 'https:';
  } catch {
    return false;
  }
}

interface Refs {
  chains: Set<string>;
  hops: Set<string>;
  authers: Set<string>;
  ingresses: Set<string>;
  sds: Set<string>;
  /** sds burrow cannot use (gRPC plugins): referring to one is not an error, and does nothing. */
  sdsOff: Set<string>;
}

/** Why a `backlog` value is bad, or undefined when it is a positive integer (or absent). */
function backlogProblem(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  const text = String(v).trim();
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 2 ** 31 - 1) {
    return `expected a positive integer (listen backlog; the kernel caps it at net.core.somaxconn), found '${text}'`;
  }
  return undefined;
}

/**
 * The web API can change what the server forwards: on an address other hosts can reach it needs
 * credentials unless `allowUnauthenticated` says it is wanted. Allowed origins must be origins.
 */
function verifyApi(api: ApiConfig, o: Origin): void {
  let host: string;
  try {
    host = splitHostPort(api.addr).host;
  } catch (err) {
    fail(o, 'addr', `api address "${api.addr}": ${(err as Error).message} (expected [host]:port)`);
  }
  const credentials = api.auther !== undefined || (api.auth !== undefined && api.auth.username !== '');
  if (!credentials && !api.allowUnauthenticated && !isLoopbackHost(host)) {
    fail(
      o,
      'addr',
      `the web API on "${api.addr}" is reachable from other hosts and has no credentials: ` +
        'set auth (user:pass@ on -api) or auther, listen on 127.0.0.1, or set allowUnauthenticated: true',
    );
  }
  api.allowOrigins?.forEach((origin, i) => {
    let ok = false;
    try {
      const u = new URL(origin);
      ok = (u.protocol === 'http:' || u.protocol === 'https:') && u.origin === origin.replace(/\/$/, '');
    } catch {
      /* not a URL */
    }
    if (!ok) fail(o, `allowOrigins[${i}]`, `"${origin}" is not an origin (expected scheme://host[:port], e.g. https://ui.example.com)`);
  });
}

/** localhost, 127.0.0.0/8 and ::1 (an empty host means every interface). */
function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

function fail(o: Origin, sub: string, message: string): never {
  const path = sub ? (sub.startsWith('[') ? `${o.path}${sub}` : `${o.path}.${sub}`) : o.path;
  throw new ConfigError(message, { source: o.source, path: path || undefined });
}

function known(names: Set<string>): string {
  return names.size > 0 ? ` (defined: ${[...names].join(', ')})` : ' (none are defined)';
}

function uniqueNames(items: Array<{ name: string }>, kind: string, listPath: string, source?: string): Set<string> {
  const seen = new Map<string, Origin>();
  items.forEach((item, i) => {
    const o = source ? { source, path: `${listPath}[${i}]` } : originOr(item, `${listPath}[${i}]`);
    const first = seen.get(item.name);
    if (first) fail(o, 'name', `duplicate ${kind} name '${item.name}' (also defined at ${where(first)})`);
    seen.set(item.name, o);
  });
  return new Set(seen.keys());
}

function checkRef(names: Set<string>, name: string, kind: string, o: Origin, sub: string): void {
  if (!names.has(name)) fail(o, sub, `${kind} '${name}' is not defined${known(names)}`);
}

function checkType(o: Origin, sub: string, kind: string, type: string, supported: readonly string[], gostOnly: readonly string[]): void {
  if (supported.includes(type)) return;
  if (gostOnly.includes(type)) {
    fail(o, sub, `${kind} type '${type}' is not supported by burrow (supported: ${supported.join(', ')})`);
  }
  fail(o, sub, `unknown ${kind} type '${type}' (burrow supports: ${supported.join(', ')})`);
}

/** `trustedProxies` (IPs/CIDRs) and `tunnel.bindAuther` (an auther's name), where they are set. */
function verifyAccessOptions(svc: ServiceConfig, o: Origin, refs: Refs): void {
  const parts = [
    ['metadata', svc.metadata],
    ['listener.metadata', svc.listener.metadata],
    ['handler.metadata', svc.handler.metadata],
  ] as const;
  for (const [part, md] of parts) {
    if (!md) continue;
    const m = new Metadata(md);
    for (const key of ['trustedProxies', 'entrypoint.trustedProxies']) {
      try {
        TrustedPeers.parse(m.get(key));
      } catch (err) {
        fail(o, `${part}.${key}`, (err as Error).message);
      }
    }
    const certs = listOption(m.get('entrypoint.certFile'));
    const keys = listOption(m.get('entrypoint.keyFile'));
    if (part === 'handler.metadata' && (certs.length > 0 || keys.length > 0)) {
      try {
        FileCertificates.load(certs, keys);
      } catch (err) {
        fail(o, `${part}.entrypoint.certFile`, (err as Error).message);
      }
    }
    const acmeCa = m.getString('entrypoint.acmeCA');
    if (part === 'handler.metadata' && m.getString('entrypoint.acme') && acmeCa) {
      try {
        readCaPem(acmeCa);
      } catch (err) {
        fail(o, `${part}.entrypoint.acmeCA`, (err as Error).message);
      }
    }
    const bind = m.getString('tunnel.bindAuther');
    if (bind) checkRef(refs.authers, bind, 'auther', o, `${part}.tunnel.bindAuther`);
    const inline = m.getString('tunnel.bindAuth');
    try {
      if (inline !== undefined) parseUserPassList(inline);
    } catch (err) {
      fail(o, `${part}.tunnel.bindAuth`, (err as Error).message);
    }
  }
}

/** True when a metadata value turns an option on (not absent, "", 0, "0" or false). */
function given(v: unknown): boolean {
  return v !== undefined && v !== null && v !== '' && v !== 0 && v !== '0' && v !== false && v !== 'false';
}

/**
 * PROXY headers: `proxyProtocol` is read by listeners that accept TCP connections; on a udp,
 * rtcp or rudp listener it could not apply, and saying nothing would leave it silently ignored.
 * `sendProxyProtocol=1` on rudp: v1 has no UDP.
 */
function verifyProxyProtocol(svc: ServiceConfig, o: Origin): void {
  const ltype = svc.listener.type ?? 'tcp';
  if (ltype === 'udp' || ltype === 'rtcp' || ltype === 'rudp') {
    for (const [part, md] of [['metadata', svc.metadata], ['listener.metadata', svc.listener.metadata]] as const) {
      if (!md || !given(new Metadata(md).get('proxyProtocol'))) continue;
      const hint =
        ltype === 'udp'
          ? 'a udp listener has no connection to read a PROXY header from'
          : `an ${ltype} listener accepts nothing itself (its connections come through the tunnel); to send the visitor's address to the target use sendProxyProtocol=1|2`;
      fail(o, `${part}.proxyProtocol`, `proxyProtocol applies to tcp, tls, ws, wss, mtls, mws and mwss listeners: ${hint}`);
    }
  }
  if (svc.handler.type === 'rudp') {
    const md = new Metadata({ ...(svc.metadata ?? {}), ...(svc.handler.metadata ?? {}) });
    const v = md.get('sendProxyProtocol');
    if (v === 1 || v === '1') fail(o, 'handler.metadata.sendProxyProtocol', 'PROXY protocol v1 carries TCP only: use sendProxyProtocol=2 on rudp');
  }
}

function verifyService(svc: ServiceConfig, o: Origin, refs: Refs, warnings: string[]): void {
  checkType(o, 'handler.type', 'handler', svc.handler.type, HANDLER_TYPES, GOST_ONLY_HANDLERS);
  checkType(o, 'listener.type', 'listener', svc.listener.type, LISTENER_TYPES, GOST_ONLY_LISTENERS);

  const binds = svc.listener.type === 'rtcp' || svc.listener.type === 'rudp';
  if (svc.addr === '') {
    if (!binds) fail(o, 'addr', `missing listen address (expected [host]:port, e.g. ":8443")`);
  } else {
    try {
      expandAddr(svc.addr, { portRequired: !binds, allowRange: false });
    } catch (err) {
      fail(o, 'addr', (err as Error).message);
    }
  }

  if (svc.handler.chain) checkRef(refs.chains, svc.handler.chain, 'chain', o, 'handler.chain');
  if (svc.listener.chain) checkRef(refs.chains, svc.listener.chain, 'chain', o, 'listener.chain');
  verifyAccessOptions(svc, o, refs);
  verifyProxyProtocol(svc, o);
  for (const [part, cfg] of [['handler', svc.handler], ['listener', svc.listener]] as const) {
    if (cfg.auther) checkRef(refs.authers, cfg.auther, 'auther', o, `${part}.auther`);
    cfg.authers?.forEach((a, i) => checkRef(refs.authers, a, 'auther', o, `${part}.authers[${i}]`));
  }
  if (svc.forwarder?.hop) checkRef(refs.hops, svc.forwarder.hop, 'hop', o, 'forwarder.hop');
  svc.forwarder?.nodes?.forEach((node, i) => {
    if (node.addr === '') fail(o, `forwarder.nodes[${i}].addr`, 'missing target address (expected host[:port])');
    try {
      expandAddr(node.addr);
    } catch (err) {
      fail(o, `forwarder.nodes[${i}].addr`, (err as Error).message);
    }
    if (node.matcher?.rule !== undefined) {
      try {
        parseRule(node.matcher.rule);
      } catch (err) {
        fail(o, `forwarder.nodes[${i}].matcher.rule`, `${(err as Error).message} in "${node.matcher.rule}"`);
      }
    }
    for (const list of ['rewriteURL', 'rewriteBody'] as const) {
      node.http?.[list]?.forEach((r, j) => {
        try {
          new RegExp(r.match);
        } catch (err) {
          fail(o, `forwarder.nodes[${i}].http.${list}[${j}].match`, `expected a regular expression, found "${r.match}" (${(err as Error).message})`);
        }
      });
    }
  });

  const backlogs: Array<[string, Metadata, string]> = [
    ['listener.metadata', new Metadata(svc.listener.metadata), 'backlog'],
    ['handler.metadata', new Metadata(svc.handler.metadata), 'backlog'],
    ['handler.metadata', new Metadata(svc.handler.metadata), 'entrypoint.backlog'],
  ];
  for (const [part, bmd, key] of backlogs) {
    const problem = backlogProblem(bmd.get(key));
    if (problem) fail(o, `${part}.${key}`, problem);
  }

  if (svc.handler.type === 'tunnel') {
    const md = new Metadata(svc.handler.metadata);
    const ingress = svc.handler.ingress ?? md.getString('ingress');
    if (ingress && !refs.ingresses.has(ingress)) {
      warnings.push(`${where(o, 'handler')}: ingress '${ingress}' is not defined; the handler uses its inline "tunnel" rules instead (as gost does)`);
    }
    const store = md.getString('tunnel.publicStore');
    if (store) {
      let proto: string;
      try {
        proto = new URL(store).protocol;
      } catch {
        proto = '';
      }
      if (proto !== 'redis:' && proto !== 'rediss:') {
        fail(o, 'handler.metadata.tunnel.publicStore', `expected a Redis URL redis://[[user]:password@]host:port[/db] (or rediss://), found '${store.replace(/:[^:@/]*@/, ':***@')}'`);
      }
      if (!md.getString('tunnel.publicDomain')) {
        warnings.push(`${where(o, 'handler.metadata')}: tunnel.publicStore has no effect without tunnel.publicDomain`);
      }
    }
    const sdName = md.getString('sd');
    const sdUrl = md.getString('tunnel.sd');
    const sdOff = !sdUrl && sdName !== undefined && refs.sdsOff.has(sdName);
    if (sdName && !sdUrl && !sdOff) checkRef(refs.sds, sdName, 'sd', o, 'handler.metadata.sd');
    if (sdUrl) {
      try {
        parseRedisSdUrl(sdUrl);
      } catch (err) {
        fail(o, 'handler.metadata.tunnel.sd', (err as Error).message);
      }
    }
    if ((sdUrl || (sdName && !sdOff)) && !md.getString('sd.advertise') && !md.getString('entrypoint') && !md.get('entrypoints')) {
      fail(o, 'handler.metadata.sd.advertise', 'service discovery needs an entry point (entrypoint=) or sd.advertise: it registers where other servers reach this one');
    }
    const epid = md.getString('entrypoint.id');
    if (epid && !isUuid(epid)) {
      warnings.push(`${where(o, 'handler.metadata')}: entrypoint.id "${epid}" is not a UUID; gost ignores it, so no visitor is treated as a public entry point`);
    }
  }
}

function verifyHop(hop: HopConfig, o: Origin): void {
  hop.nodes?.forEach((node, n) => verifyNode(node, originOr(node, `${o.path}.nodes[${n}]`)));
}

function verifyNode(node: NodeConfig, o: Origin): void {
  checkType(o, 'connector.type', 'connector', node.connector!.type, CONNECTOR_TYPES, GOST_ONLY_CONNECTORS);
  checkType(o, 'dialer.type', 'dialer', node.dialer!.type, DIALER_TYPES, GOST_ONLY_DIALERS);
  if (node.addr === '') fail(o, 'addr', 'missing node address (expected host:port, e.g. "example.com:8443")');
  try {
    expandAddr(node.addr, { portRequired: true, allowRange: false });
  } catch (err) {
    fail(o, 'addr', (err as Error).message);
  }
  if (node.connector!.type === 'tunnel') verifyTunnelId(node, o);
}

/** connector/tunnel/metadata.go: "tunnelID" / "tunnel.id" must parse as a UUID (start-up error). */
function verifyTunnelId(node: NodeConfig, o: Origin): void {
  const raw = node.connector?.metadata ?? {};
  const md = new Metadata(raw);
  const id = md.getString('tunnelID', 'tunnel.id');
  if (id === undefined || id === '') return;
  const key = Object.keys(raw).find((k) => ['tunnelid', 'tunnel.id'].includes(k.toLowerCase())) ?? 'tunnel.id';
  const sub = `connector.metadata.${key}`;
  if (id.startsWith('$')) {
    fail(o, sub, `invalid tunnel ID "${id}": the "$" private-tunnel marker belongs in ingress rules, not in the connector's tunnel.id (expected a UUID such as 4d21094e-b74c-4916-86c1-d9fa36ea677b)`);
  }
  if (!isUuid(id)) fail(o, sub, `invalid tunnel ID "${id}" (expected a UUID such as 4d21094e-b74c-4916-86c1-d9fa36ea677b)`);
  if (/^0+$/.test(uuidHex(id))) fail(o, sub, `invalid tunnel ID "${id}": the nil UUID is not a tunnel ID`);
}

export { isUuid };
