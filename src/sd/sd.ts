/**
 * Service discovery (gost's `sd`): where the connectors of a tunnel are bound in a fleet of
 * servers. Each server registers the connectors bound to it — connector ID, tunnel ID, its own
 * node ID, the network and the address other servers reach it at (its entry point) — renews them
 * while they live and removes them when they go; a server asks for a tunnel's services to find
 * the other nodes that hold it.
 *
 * Two forms, both gost's:
 * - the HTTP plugin (`plugin: {type: http, addr: URL}`): POST registers, PUT renews, DELETE
 *   deregisters, each with the JSON body `{id, name, node, network, address}`; GET `?name=<tunnel>`
 *   answers `{"services": [...]}` in the same shape. Only status 200 counts.
 * - Redis, in the layout of gost-plugins' reference sd plugin, so a burrow server and gost
 *   servers behind that plugin share one database: a hash per tunnel whose key is the bare
 *   tunnel ID, field = connector ID, value = JSON `{"Node","Network","Address","Renew"}` with
 *   Renew in Unix seconds; every write sets the key's expiry again, and a reader ignores entries
 *   whose Renew is older than the expiration.
 */
import { splitHostPort } from '../core/addr';
import { parseGoDurationMs } from '../core/metadata';
import { RedisLink, isSentinelUrl, parseSentinelUrl, pluginRequest, type HttpPluginConfig } from '../loader/sources';

/** One registered connector (gost's sd.Service). */
export interface SdService {
  /** Connector ID. */
  id: string;
  /** Tunnel ID. */
  name: string;
  /** Node ID of the server the connector is bound to. */
  node: string;
  /** "tcp" or "udp". */
  network: string;
  /** host:port where other servers reach that node (its entry point). */
  address: string;
}

export interface ServiceDiscovery {
  /** For messages: the form and where (never a password). */
  readonly label: string;
  register(s: SdService): Promise<void>;
  renew(s: SdService): Promise<void>;
  deregister(s: SdService): Promise<void>;
  /** The services registered for a tunnel. */
  get(tunnelId: string): Promise<SdService[]>;
  /**
   * The address this server reaches the store from (the local end of its connection), when the
   * form knows one: the address a node on all interfaces advertises without `sd.advertise`.
   */
  localHost?(): Promise<string | undefined>;
  close(): void;
}

/** The HTTP plugin form. */
export class HttpSd implements ServiceDiscovery {
  readonly label: string;
  readonly #cfg: HttpPluginConfig;

  constructor(cfg: HttpPluginConfig) {
    this.#cfg = cfg;
    this.label = `sd plugin ${cfg.url}`;
  }

  async register(s: SdService): Promise<void> {
    await pluginRequest(this.#cfg, 'POST', wire(s));
  }

  async renew(s: SdService): Promise<void> {
    await pluginRequest(this.#cfg, 'PUT', wire(s));
  }

  async deregister(s: SdService): Promise<void> {
    await pluginRequest(this.#cfg, 'DELETE', wire(s));
  }

  async get(tunnelId: string): Promise<SdService[]> {
    const text = await pluginRequest(this.#cfg, 'GET', undefined, { name: tunnelId });
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new Error(`plugin ${this.#cfg.url}: the answer is not JSON`);
    }
    const list = (body as { services?: unknown } | null)?.services;
    if (list === undefined || list === null) return [];
    if (!Array.isArray(list)) throw new Error(`plugin ${this.#cfg.url}: "services" is not a list`);
    const out: SdService[] = [];
    for (const v of list as unknown[]) {
      if (!v || typeof v !== 'object') continue;
      const o = v as Record<string, unknown>;
      const text = (k: string): string => (typeof o[k] === 'string' ? (o[k] as string) : '');
      out.push({ id: text('id'), name: text('name'), node: text('node'), network: text('network'), address: text('address') });
    }
    return out;
  }

  close(): void {}
}

/** The JSON body of gost's HTTP sd plugin. */
function wire(s: SdService): SdService {
  return { id: s.id, name: s.name, node: s.node, network: s.network, address: s.address };
}

export interface RedisSdConfig {
  /** host:port. */
  addr: string;
  /** A Redis under Sentinel: the sentinels and the master's name (then `addr` is only a label). */
  sentinel?: { sentinels: Array<{ host: string; port: number }>; name: string };
  db?: number;
  username?: string;
  password?: string;
  /** How long an entry counts without renewal, and the key's expiry, ms. */
  expirationMs: number;
  /** How long one Redis command may take, ms. */
  timeoutMs: number;
}

/** Default `expiration` of the Redis form. */
export const SD_DEFAULT_EXPIRATION_MS = 60_000;
const REDIS_DEFAULT_PORT = 6379;

/** An entry's value in the hash, gost-plugins' `service` struct (field names as Go writes them). */
interface RedisEntry {
  Node: string;
  Network: string;
  Address: string;
  Renew: number;
}

/** The built-in Redis form. */
export class RedisSd implements ServiceDiscovery {
  readonly label: string;
  readonly #link: RedisLink;
  readonly #expirationMs: number;
  readonly #now: () => number;

  constructor(cfg: RedisSdConfig, now: () => number = Date.now) {
    let host = cfg.addr;
    let port = REDIS_DEFAULT_PORT;
    try {
      const hp = splitHostPort(cfg.addr);
      host = hp.host;
      if (hp.port) port = hp.port;
    } catch {
      /* no port: the default one */
    }
    const where = cfg.sentinel ? { sentinels: cfg.sentinel.sentinels, name: cfg.sentinel.name } : { host: host || '127.0.0.1', port };
    this.#link = new RedisLink(
      { ...where, db: cfg.db ?? 0, username: cfg.username || undefined, password: cfg.password || undefined },
      cfg.timeoutMs,
      'burrow-sd',
    );
    this.#expirationMs = cfg.expirationMs;
    this.#now = now;
    this.label = `sd redis ${cfg.addr} db ${cfg.db ?? 0}`;
  }

  /** Writes the entry with Renew = now and sets the key's expiry again. */
  async #write(s: SdService): Promise<void> {
    const value: RedisEntry = { Node: s.node, Network: s.network, Address: s.address, Renew: Math.floor(this.#now() / 1000) };
    await this.#link.run((c) =>
      c
        .multi()
        .hset(s.name, s.id, JSON.stringify(value))
        .pexpire(s.name, this.#expirationMs)
        .exec()
        .then(execOk),
    );
  }

  register(s: SdService): Promise<void> {
    return this.#write(s);
  }

  /**
   * gost-plugins renews only an entry that is still there; a server here writes the whole entry
   * again, so a Redis that lost its data (restarted empty) has it back at the next renewal.
   */
  renew(s: SdService): Promise<void> {
    return this.#write(s);
  }

  async deregister(s: SdService): Promise<void> {
    await this.#link.run((c) => c.hdel(s.name, s.id));
  }

  async get(tunnelId: string): Promise<SdService[]> {
    const all = await this.#link.run((c) => c.hgetall(tunnelId));
    const now = this.#now();
    const out: SdService[] = [];
    for (const [id, text] of Object.entries(all)) {
      let v: Partial<RedisEntry>;
      try {
        v = JSON.parse(text) as Partial<RedisEntry>;
      } catch {
        continue;
      }
      if (!v || typeof v !== 'object' || typeof v.Node !== 'string' || typeof v.Address !== 'string' || !v.Node || !v.Address) continue;
      if (typeof v.Renew !== 'number' || now - v.Renew * 1000 > this.#expirationMs) continue;
      out.push({ id, name: tunnelId, node: v.Node, network: typeof v.Network === 'string' ? v.Network : '', address: v.Address });
    }
    return out;
  }

  async localHost(): Promise<string | undefined> {
    return this.#link.run(async (c) => (c as unknown as { stream?: { localAddress?: string } }).stream?.localAddress);
  }

  close(): void {
    this.#link.close();
  }
}

/** A MULTI's answer: throws the first command's error. */
function execOk(results: Array<[Error | null, unknown]> | null): void {
  if (!results) throw new Error('transaction aborted');
  for (const [err] of results) if (err) throw err;
}

/** `tunnel.sd=redis://[[user]:password@]host:port[/db]` → the Redis form's settings. */
export function parseRedisSdUrl(text: string): Omit<RedisSdConfig, 'expirationMs' | 'timeoutMs'> {
  if (isSentinelUrl(text)) {
    const o = parseSentinelUrl(text);
    const sentinels = o.sentinels as Array<{ host: string; port: number }>;
    return {
      addr: `sentinel ${o.name} at ${sentinels.map((s) => `${s.host}:${s.port}`).join(',')}`,
      sentinel: { sentinels, name: o.name! },
      db: o.db,
      username: o.username,
      password: o.password,
    };
  }
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new Error(`expected a Redis URL redis://[[user]:password@]host:port[/db], found '${redact(text)}'`);
  }
  if (u.protocol !== 'redis:') throw new Error(`expected a Redis URL redis://[[user]:password@]host:port[/db], found '${redact(text)}'`);
  if (!u.hostname) throw new Error(`the Redis URL '${redact(text)}' has no host`);
  const path = u.pathname.replace(/^\//, '');
  if (path !== '' && !/^\d+$/.test(path)) throw new Error(`the Redis URL '${redact(text)}' names database '${path}' (expected a number)`);
  return {
    addr: `${u.hostname}:${u.port || REDIS_DEFAULT_PORT}`,
    db: path ? Number(path) : 0,
    username: decodeURIComponent(u.username) || undefined,
    password: decodeURIComponent(u.password) || undefined,
  };
}

function redact(text: string): string {
  return text.replace(/:[^:@/]*@/, ':***@');
}

/** An `sds:` entry as the config has it (gost's `plugin`, or burrow's built-in `redis`). */
export interface SdSpec {
  name: string;
  plugin?: { type?: string; addr: string; timeout?: string; tls?: { secure?: boolean; serverName?: string } };
  redis?: { addr: string; db?: number; username?: string; password?: string; expiration?: string };
}

/** How long one Redis command of the sd may take. */
export const SD_REDIS_TIMEOUT_MS = 2000;

/**
 * The service discovery an `sds:` entry describes; undefined for a gRPC plugin, which burrow does
 * not implement (config checking warns). Throws with the path inside the entry and what was
 * expected (the caller names the entry).
 */
export function createSd(spec: SdSpec): ServiceDiscovery | undefined {
  if (spec.redis) {
    const r = spec.redis;
    let expirationMs = SD_DEFAULT_EXPIRATION_MS;
    if (r.expiration !== undefined) {
      const ms = parseGoDurationMs(r.expiration);
      if (ms === undefined || !(ms > 0)) throw new Error(`redis.expiration: expected a positive duration such as 60s, found '${r.expiration}'`);
      expirationMs = ms;
    }
    return new RedisSd({ addr: r.addr, db: r.db, username: r.username, password: r.password, expirationMs, timeoutMs: SD_REDIS_TIMEOUT_MS });
  }
  if (spec.plugin) {
    const type = (spec.plugin.type || 'grpc').toLowerCase();
    if (type !== 'http') return undefined;
    return new HttpSd({
      url: spec.plugin.addr,
      timeoutMs: spec.plugin.timeout ? parseGoDurationMs(spec.plugin.timeout) : undefined,
      tls: spec.plugin.tls,
    });
  }
  throw new Error('expected plugin: {type: http, addr: URL} or redis: {addr, db, password, expiration}');
}
