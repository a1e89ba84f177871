/**
 * Authentication of tunnel clients and visitors (behavior.md §8): user/password pairs from
 * inline `auths`, the handler's own `user:pass@`, a `file` ("user pass" per line, reloaded when
 * the file changes), a `redis` hash (field = user, value = password; a set holds "user pass"
 * lines) and an `http` URL (a body in the file format), the last two read at start and every
 * `reload` period. For one user name the later source wins (inline, file, redis, http: gost's
 * priority); a source that fails keeps what it last gave. Several authers: any may accept.
 *
 * A user may be limited to tunnels: `tunnels: [id, ...]` inline, a third column
 * (`user pass id1,id2`) in the file format; its credential is then good for those tunnel IDs
 * only (a request for another is refused like a wrong password).
 *
 * Guessing is stopped per address and user, and per address, with a growing back-off; a
 * repeated wrong password (a stale client) is not a new guess (lockout.ts). Passwords are
 * compared in constant time and never logged.
 */
import { FilePoller } from '../loader/file-watch';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { stripPort } from '../core/addr';
import { parseTunnelId, tunnelIdToString } from '../protocol/relay/tunnel-id';
import { Lockout, type LockoutOptions } from './lockout';
import { LoaderSources, SourceHealth, coalesced, postPluginJson, type HttpPluginConfig, type HttpSourceConfig, type RedisData, type RedisSourceConfig } from '../loader/sources';

/** A user: name, password and, optionally, the only tunnel IDs its credential is good for. */
export interface AuthUser {
  username: string;
  password: string;
  tunnels?: readonly string[];
}

export interface AutherOptions {
  name: string;
  auths?: AuthUser[];
  filePath?: string;
  redis?: RedisSourceConfig;
  http?: HttpSourceConfig;
  /** An HTTP auther plugin (gost's): it alone decides, the other sources are not used. */
  plugin?: HttpPluginConfig;
  reloadMs?: number;
  lockout?: LockoutOptions;
  logger: Logger;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export function parseAuthText(text: string): AuthUser[] {
  const out: AuthUser[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const [u, p, t] = line.split(/\s+/, 3);
    if (!u) continue;
    out.push(t ? { username: u, password: p ?? '', tunnels: t.split(',') } : { username: u, password: p ?? '' });
  }
  return out;
}

/**
 * `user:pass[,user:pass...]` (`tunnel.bindAuth`): a password may hold ':' but not ','.
 * Throws an Error naming an item without a user name.
 */
export function parseUserPassList(text: string): AuthUser[] {
  return text.split(',').map((item) => {
    const colon = item.indexOf(':');
    const username = colon < 0 ? item : item.slice(0, colon);
    if (username.trim() === '') throw new Error(`"${item}": expected user:pass[,user:pass...]`);
    return { username, password: colon < 0 ? '' : item.slice(colon + 1) };
  });
}

/** Users from a Redis key: hash fields are user names, set members are "user pass" lines. */
export function authsFromRedis(data: RedisData): AuthUser[] {
  if (data.kind === 'set') return parseAuthText(data.lines.join('\n'));
  return data.entries.filter(([u]) => u !== '').map(([username, password]) => ({ username, password }));
}

/** A user's password digest and, when limited, its tunnel IDs (canonical text). */
interface Known {
  digest: Buffer;
  tunnels: ReadonlySet<string> | undefined;
}
type Digests = Map<string, Known>;

/** A tunnel ID in canonical text, or the text as given when it is not one (matches nothing). */
function canonicalTunnel(t: string): string {
  try {
    return tunnelIdToString(parseTunnelId(t.trim()));
  } catch {
    return t.trim();
  }
}

function digests(list: AuthUser[]): Digests {
  return new Map(
    list.map((a) => [
      a.username,
      { digest: digest(a.password), tunnels: a.tunnels && a.tunnels.length > 0 ? new Set(a.tunnels.map(canonicalTunnel)) : undefined },
    ]),
  );
}

export class Auther {
  readonly name: string;
  readonly #inline: Digests;
  #file: Digests = new Map();
  #redisUsers: Digests = new Map();
  #httpUsers: Digests = new Map();
  readonly #sources: LoaderSources<AuthUser>;
  /** How the plugin (if any) is answering. */
  readonly #pluginHealth: SourceHealth;
  readonly #opts: AutherOptions;
  readonly #lockout: Lockout;
  #timer: NodeJS.Timeout | undefined;
  readonly #poller: FilePoller | undefined;

  constructor(opts: AutherOptions) {
    this.name = opts.name;
    this.#opts = opts;
    this.#inline = digests(opts.auths ?? []);
    this.#lockout = new Lockout(opts.lockout);
    this.#poller = opts.filePath ? new FilePoller(opts.filePath, () => this.#reloadFile()) : undefined;
    this.#sources = new LoaderSources({
      prefix: `auther ${this.name}`,
      logger: opts.logger,
      filePath: opts.filePath,
      redis: opts.redis,
      http: opts.http,
      parse: parseAuthText,
      fromRedis: authsFromRedis,
      beforeFile: async () => this.#poller?.mark(),
    });
    this.#pluginHealth = new SourceHealth(opts.logger, `auther ${this.name}`);
  }

  async start(): Promise<void> {
    if (!this.#sources.external) return;
    await this.reload();
    this.#poller?.start();
    if (this.#opts.reloadMs && this.#opts.reloadMs > 0) {
      this.#timer = setInterval(
        () => this.reload().catch((err: Error) => this.#opts.logger.warn(`auther ${this.name}: reload: ${err.message}`)),
        Math.max(1000, this.#opts.reloadMs),
      );
      this.#timer.unref();
    }
  }

  /**
   * Reloads run one at a time (a slow source must not let an older list win); a source that
   * fails keeps the users it last gave.
   */
  readonly #reload = coalesced(async () => {
    const s = this.#sources;
    const [, redisUsers, httpUsers] = await Promise.all([this.#reloadFile(), s.redis(), s.http()]);
    if (redisUsers) this.#redisUsers = digests(redisUsers);
    if (httpUsers) this.#httpUsers = digests(httpUsers);
  });

  reload(): Promise<void> {
    return this.#reload();
  }

  async #reloadFile(): Promise<void> {
    const users = await this.#sources.file();
    if (users) this.#file = digests(users);
  }

  /**
   * True when the pair is known (and, for a user limited to tunnels, `tunnelId` is one of
   * them). `remote` ("ip:port") keys the lockout.
   */
  authenticate(username: string, password: string, remote = '', tunnelId?: string): boolean {
    if (this.#opts.plugin) return false; // only `check` asks a plugin
    const ip = stripPort(remote);
    if (!this.#lockout.allowed(ip, username)) return false;
    const want =
      this.#httpUsers.get(username) ?? this.#redisUsers.get(username) ?? this.#file.get(username) ?? this.#inline.get(username);
    const ok =
      want !== undefined &&
      timingSafeEqual(want.digest, digest(password)) &&
      (want.tunnels === undefined || (tunnelId !== undefined && want.tunnels.has(tunnelId)));
    this.#settle(ip, username, password, ok);
    return ok;
  }

  /**
   * `authenticate`, or for a plugin auther its answer (POST {service, username, password,
   * client} → {ok}); a plugin that fails or does not answer refuses, with one warning.
   */
  async check(username: string, password: string, remote = '', service = '', tunnelId?: string): Promise<boolean> {
    const plugin = this.#opts.plugin;
    if (!plugin) return this.authenticate(username, password, remote, tunnelId);
    const ip = stripPort(remote);
    if (!this.#lockout.allowed(ip, username)) return false;
    let ok = false;
    try {
      const res = (await postPluginJson(plugin, { service, username, password, client: remote })) as { ok?: unknown } | null;
      ok = res !== null && typeof res === 'object' && res.ok === true;
      this.#pluginHealth.ok(`plugin ${plugin.url}`);
    } catch (err) {
      this.#pluginHealth.failed(err);
    }
    this.#settle(ip, username, password, ok);
    return ok;
  }

  #settle(ip: string, username: string, password: string, ok: boolean): void {
    if (ok) this.#lockout.succeeded(ip, username);
    else this.#lockout.failed(ip, username, password);
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#poller?.stop();
    this.#sources.close();
  }
}

/** Several authers: any may accept. */
export class AnyAuther {
  constructor(readonly authers: Auther[]) {}
  async start(): Promise<void> {
    for (const a of this.authers) await a.start();
  }
  authenticate(username: string, password: string, remote = '', tunnelId?: string): boolean {
    return this.authers.some((a) => a.authenticate(username, password, remote, tunnelId));
  }
  /** Like `authenticate`, asking plugin authers too (in turn, until one accepts). */
  async check(username: string, password: string, remote = '', service = '', tunnelId?: string): Promise<boolean> {
    for (const a of this.authers) if (await a.check(username, password, remote, service, tunnelId)) return true;
    return false;
  }
  close(): void {
    for (const a of this.authers) a.close();
  }
}
