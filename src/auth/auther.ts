/**
 * Authentication of tunnel clients and visitors (behavior.md §8): user/password pairs from
 * inline `auths`, the handler's own `user:pass@`, a `file` ("user pass" per line, reloaded when
 * the file changes), a `redis` hash (field = user, value = password; a set holds "user pass"
 * lines) and an `http` URL (a body in the file format), the last two read at start and every
 * `reload` period. For one user name the later source wins (inline, file, redis, http: gost's
 * priority); a source that fails keeps what it last gave. Several authers: any may accept.
 *
 * Failed attempts are rate limited per client IP: after `maxFailures` failures within
 * `windowMs`, further attempts from that IP are refused without being checked until the window
 * passes. Passwords are compared in constant time and never logged.
 */
import { FilePoller } from '../io/file-watch';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { stripPort } from '../core/addr';
import { LoaderSources, SourceHealth, coalesced, postPluginJson, type HttpPluginConfig, type HttpSourceConfig, type RedisData, type RedisSourceConfig } from '../io/sources';

export interface AutherOptions {
  name: string;
  auths?: Array<{ username: string; password: string }>;
  filePath?: string;
  redis?: RedisSourceConfig;
  http?: HttpSourceConfig;
  /** An HTTP auther plugin (gost's): it alone decides, the other sources are not used. */
  plugin?: HttpPluginConfig;
  reloadMs?: number;
  maxFailures?: number;
  windowMs?: number;
  logger: Logger;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export function parseAuthText(text: string): Array<{ username: string; password: string }> {
  const out: Array<{ username: string; password: string }> = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const [u, p] = line.split(/\s+/, 2);
    if (u) out.push({ username: u, password: p ?? '' });
  }
  return out;
}

/** Users from a Redis key: hash fields are user names, set members are "user pass" lines. */
export function authsFromRedis(data: RedisData): Array<{ username: string; password: string }> {
  if (data.kind === 'set') return parseAuthText(data.lines.join('\n'));
  return data.entries.filter(([u]) => u !== '').map(([username, password]) => ({ username, password }));
}

type Digests = Map<string, Buffer>;

function digests(list: Array<{ username: string; password: string }>): Digests {
  return new Map(list.map((a) => [a.username, digest(a.password)]));
}

export class Auther {
  readonly name: string;
  readonly #inline: Map<string, Buffer>;
  #file: Digests = new Map();
  #redisUsers: Digests = new Map();
  #httpUsers: Digests = new Map();
  readonly #sources: LoaderSources<{ username: string; password: string }>;
  /** How the plugin (if any) is answering. */
  readonly #pluginHealth: SourceHealth;
  readonly #opts: AutherOptions;
  readonly #failures = new Map<string, { count: number; since: number }>();
  readonly #maxFailures: number;
  readonly #windowMs: number;
  #timer: NodeJS.Timeout | undefined;
  readonly #poller: FilePoller | undefined;

  constructor(opts: AutherOptions) {
    this.name = opts.name;
    this.#opts = opts;
    this.#inline = digests(opts.auths ?? []);
    this.#maxFailures = opts.maxFailures ?? 5;
    this.#windowMs = opts.windowMs ?? 60_000;
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

  /** True when the pair is known. `remote` ("ip:port") keys the failure rate limit. */
  authenticate(username: string, password: string, remote = ''): boolean {
    if (this.#opts.plugin) return false; // only `check` asks a plugin
    const ip = stripPort(remote);
    if (this.#locked(ip)) return false;
    const want =
      this.#httpUsers.get(username) ?? this.#redisUsers.get(username) ?? this.#file.get(username) ?? this.#inline.get(username);
    const ok = want !== undefined && timingSafeEqual(want, digest(password));
    if (!ok) this.#failed(ip);
    return ok;
  }

  /**
   * `authenticate`, or for a plugin auther its answer (POST {service, username, password,
   * client} → {ok}); a plugin that fails or does not answer refuses, with one warning.
   */
  async check(username: string, password: string, remote = '', service = ''): Promise<boolean> {
    const plugin = this.#opts.plugin;
    if (!plugin) return this.authenticate(username, password, remote);
    const ip = stripPort(remote);
    if (this.#locked(ip)) return false;
    let ok = false;
    try {
      const res = (await postPluginJson(plugin, { service, username, password, client: remote })) as { ok?: unknown } | null;
      ok = res !== null && typeof res === 'object' && res.ok === true;
      this.#pluginHealth.ok(`plugin ${plugin.url}`);
    } catch (err) {
      this.#pluginHealth.failed(err);
    }
    if (!ok) this.#failed(ip);
    return ok;
  }

  #locked(ip: string): boolean {
    const f = this.#failures.get(ip);
    if (f && Date.now() - f.since > this.#windowMs) this.#failures.delete(ip);
    else if (f && f.count >= this.#maxFailures) return true;
    return false;
  }

  #failed(ip: string): void {
    const cur = this.#failures.get(ip);
    if (cur) cur.count++;
    else this.#failures.set(ip, { count: 1, since: Date.now() });
    if (this.#failures.size > 100_000) this.#failures.clear();
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
  authenticate(username: string, password: string, remote = ''): boolean {
    return this.authers.some((a) => a.authenticate(username, password, remote));
  }
  /** Like `authenticate`, asking plugin authers too (in turn, until one accepts). */
  async check(username: string, password: string, remote = '', service = ''): Promise<boolean> {
    for (const a of this.authers) if (await a.check(username, password, remote, service)) return true;
    return false;
  }
  close(): void {
    for (const a of this.authers) a.close();
  }
}
