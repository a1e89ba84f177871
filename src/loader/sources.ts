/**
 * External data sources of the ingress and auther loaders, as gost has them (behavior.md §1.1,
 * config.md §2.5–2.6): a Redis key (a hash, or a set of "a b" lines) and an HTTP URL whose body
 * is in the file format. Each `load` is one read; the caller decides when (at start and every
 * `reload` period) and logs a failure as a warning, so a source that is down contributes nothing
 * for that round and never stops the service.
 *
 * ioredis is loaded only when a Redis source is configured (start-up time).
 */
import type { Redis as RedisClient, RedisOptions } from 'ioredis';
import { readFile } from 'node:fs/promises';
import { splitHostPort } from '../core/addr';

export interface RedisSourceConfig {
  addr: string;
  db?: number;
  username?: string;
  password?: string;
  /** Default "gost". */
  key?: string;
  /** "hash" (default) or "set". */
  type?: string;
}

export const REDIS_DEFAULT_KEY = 'gost';
const REDIS_DEFAULT_PORT = 6379;
/** How long one load may take (connecting included) before it counts as failed. */
export const SOURCE_TIMEOUT_MS = 5000;

/** What a Redis key held: hash entries (field → value) or set members (lines). */
export type RedisData = { kind: 'hash'; entries: Array<[string, string]> } | { kind: 'set'; lines: string[] };

/**
 * One Redis connection, opened at its first use and kept (ioredis reconnects on its own,
 * backing off up to 5 s). `run` bounds each use by `timeoutMs` and, while the connection is
 * down, reports the connection's own error (say, ECONNREFUSED), which says more than the
 * command's ("Reached the max retries per request limit") and stays the same from one try to
 * the next. Used by the loader sources and by the public-name store.
 */
/**
 * `sentinel://[[user]:password@]host:port[,host:port...]/<master name>[/db]` (also spelled
 * `redis+sentinel://`, where no URL query decodes the `+` into a space first): a Redis
 * replicated under Sentinel, as ioredis connects to it (it asks the sentinels for the master,
 * and again after a failover). The password is the data nodes'; the sentinels are asked without
 * one. Throws with what was expected.
 */
export function parseSentinelUrl(text: string): RedisOptions {
  const expected = 'sentinel://[[user]:password@]host:port[,host:port...]/<master name>[/db]';
  const m = /^(?:redis\+)?sentinel:\/\/(?:([^@/]*)@)?([^/]+)\/([^/]+)(?:\/(\d+))?\/?$/.exec(text);
  if (!m) throw new Error(`expected ${expected}, found '${text.replace(/:[^:@/]*@/, ':***@')}'`);
  const [, userinfo, hosts, name, db] = m;
  const sentinels = hosts!.split(',').map((hp) => {
    const { host, port } = splitHostPort(hp.trim());
    if (!host) throw new Error(`sentinel '${hp}' has no host (expected ${expected})`);
    return { host, port: port || 26379 };
  });
  let username: string | undefined;
  let password: string | undefined;
  if (userinfo) {
    const i = userinfo.indexOf(':');
    username = decodeURIComponent(i < 0 ? userinfo : userinfo.slice(0, i)) || undefined;
    password = i < 0 ? undefined : decodeURIComponent(userinfo.slice(i + 1)) || undefined;
  }
  return { sentinels, name: decodeURIComponent(name!), db: db ? Number(db) : 0, username, password };
}

/** A URL for parseSentinelUrl. */
export function isSentinelUrl(text: string): boolean {
  return text.startsWith('sentinel:') || text.startsWith('redis+sentinel:');
}

export class RedisLink {
  readonly #client: RedisClient;
  readonly #timeoutMs: number;
  #lastError: Error | undefined;

  /** `target`: a redis:// URL, or host/port/db/credentials. */
  constructor(target: string | RedisOptions, timeoutMs: number, connectionName: string) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { Redis } = require('ioredis') as typeof import('ioredis');
    const opts: RedisOptions = {
      lazyConnect: true,
      connectTimeout: timeoutMs,
      // A command waits for at most one reconnection, then fails: `run` reports it.
      maxRetriesPerRequest: 1,
      retryStrategy: (times: number) => Math.min(times * 200, 5000),
      connectionName,
    };
    if (typeof target === 'string' && isSentinelUrl(target)) target = parseSentinelUrl(target);
    this.#client = typeof target === 'string' ? new Redis(target, opts) : new Redis({ ...target, ...opts });
    this.#client.on('error', (err: Error) => {
      this.#lastError = err;
    });
    this.#timeoutMs = timeoutMs;
  }

  /** Runs `op` on the connected client within the deadline; rejects with a message that says why. */
  async run<T>(op: (client: RedisClient) => Promise<T>): Promise<T> {
    const c = this.#client;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.#timeoutMs} ms`)), this.#timeoutMs);
    });
    try {
      const go = async (): Promise<T> => {
        if (c.status === 'wait') await c.connect();
        return op(c);
      };
      return await Promise.race([go(), deadline]);
    } catch (err) {
      const down = c.status !== 'ready' && this.#lastError !== undefined;
      throw new Error((down ? this.#lastError!.message : (err as Error).message) || String(err), { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.#client.disconnect();
  }
}

/** ioredis options for a loader's `redis` section (addr without a port: 6379). */
export function redisOptions(cfg: Pick<RedisSourceConfig, 'addr' | 'db' | 'username' | 'password'>): RedisOptions {
  let host = cfg.addr;
  let port = REDIS_DEFAULT_PORT;
  try {
    const hp = splitHostPort(cfg.addr);
    host = hp.host;
    if (hp.port) port = Number(hp.port);
  } catch {
    /* an address without a port: the default one */
  }
  return { host: host || '127.0.0.1', port, db: cfg.db ?? 0, username: cfg.username || undefined, password: cfg.password || undefined };
}

/**
 * One Redis key of one loader, on its own connection (opened at the first load). Connection
 * errors between loads are not logged here: the next load fails and says why.
 */
export class RedisSource {
  readonly key: string;
  readonly kind: 'hash' | 'set';
  readonly #cfg: RedisSourceConfig;
  readonly #timeoutMs: number;
  #link: RedisLink | undefined;
  #closed = false;

  constructor(cfg: RedisSourceConfig, timeoutMs = SOURCE_TIMEOUT_MS) {
    this.#cfg = cfg;
    this.key = cfg.key || REDIS_DEFAULT_KEY;
    const t = (cfg.type || 'hash').toLowerCase();
    if (t !== 'hash' && t !== 'set') throw new Error(`redis type "${cfg.type}": expected hash or set`);
    this.kind = t;
    this.#timeoutMs = timeoutMs;
  }

  /** "redis addr db N key K" for messages (never the password). */
  get label(): string {
    return `redis ${this.#cfg.addr} db ${this.#cfg.db ?? 0} key ${this.key}`;
  }

  #connect(): RedisLink {
    if (this.#link) return this.#link;
    this.#link = new RedisLink(redisOptions(this.#cfg), this.#timeoutMs, 'burrow');
    return this.#link;
  }

  /** Reads the key: HGETALL for a hash, SMEMBERS for a set. A missing key reads as empty. */
  async load(): Promise<RedisData> {
    if (this.#closed) throw new Error(`${this.label}: closed`);
    try {
      return await this.#connect().run(async (c): Promise<RedisData> => {
        if (this.kind === 'set') return { kind: 'set', lines: await c.smembers(this.key) };
        return { kind: 'hash', entries: Object.entries(await c.hgetall(this.key)) };
      });
    } catch (err) {
      throw new Error(`${this.label}: ${(err as Error).message}`, { cause: err });
    }
  }

  close(): void {
    this.#closed = true;
    this.#link?.close();
    this.#link = undefined;
  }
}

export interface HttpSourceConfig {
  url: string;
  /** Milliseconds; default SOURCE_TIMEOUT_MS. */
  timeoutMs?: number;
}

/** Bodies larger than this are refused (a rule or user list, not a download). */
export const HTTP_SOURCE_MAX_BYTES = 16 * 1024 * 1024;

/** GETs the URL; only status 200 counts (gost's rule). Returns the body as UTF-8 text. */
export async function loadHttpText(cfg: HttpSourceConfig): Promise<string> {
  const ms = cfg.timeoutMs && cfg.timeoutMs > 0 ? cfg.timeoutMs : SOURCE_TIMEOUT_MS;
  let res: Response;
  try {
    res = await fetch(cfg.url, { signal: AbortSignal.timeout(ms), redirect: 'follow' });
  } catch (err) {
    const e = err as Error & { cause?: Error };
    const why = e.name === 'TimeoutError' ? `no answer within ${ms} ms` : (e.cause?.message ?? e.message);
    throw new Error(`http ${cfg.url}: ${why}`, { cause: err });
  }
  if (res.status !== 200) {
    await res.body?.cancel().catch(() => undefined);
    throw new Error(`http ${cfg.url}: status ${res.status} (expected 200)`);
  }
  const len = Number(res.headers.get('content-length') ?? NaN);
  if (len > HTTP_SOURCE_MAX_BYTES) {
    await res.body?.cancel().catch(() => undefined);
    throw new Error(`http ${cfg.url}: body of ${len} bytes is larger than ${HTTP_SOURCE_MAX_BYTES}`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of res.body ?? []) {
      total += (chunk as Uint8Array).length;
      if (total > HTTP_SOURCE_MAX_BYTES) throw new Error(`body larger than ${HTTP_SOURCE_MAX_BYTES} bytes`);
      chunks.push(Buffer.from(chunk as Uint8Array));
    }
  } catch (err) {
    const e = err as Error;
    throw new Error(`http ${cfg.url}: ${e.name === 'TimeoutError' ? `no answer within ${ms} ms` : e.message}`, { cause: err });
  }
  return Buffer.concat(chunks).toString('utf8');
}

interface WarnLogger {
  warn(msg: string): void;
  info(msg: string): void;
  debug(msg: string): void;
}

/**
 * Logs a source's failures without repeating itself every reload period: a warning when it
 * starts failing (or fails differently), debug lines while it goes on failing the same way,
 * and one info line when it answers again.
 */
export class SourceHealth {
  #failing: string | undefined;

  /**
   * `perOutage`: one warning from the first failure until `ok`, whatever the later errors say
   * (a Redis that goes away reports several errors in turn: closed, retries exhausted, ...).
   * Otherwise a failure that reads differently from the last one is warned about again.
   */
  constructor(
    readonly logger: WarnLogger,
    readonly prefix: string,
    readonly perOutage = false,
  ) {}

  failed(err: unknown): void {
    const msg = `${this.prefix}: ${(err as Error)?.message ?? String(err)}`;
    const still = this.perOutage ? this.#failing !== undefined : msg === this.#failing;
    if (still) this.logger.debug(`${msg} (still failing)`);
    else this.logger.warn(msg);
    this.#failing = msg;
  }

  ok(what: string): void {
    if (this.#failing === undefined) return;
    this.#failing = undefined;
    this.logger.info(`${this.prefix}: ${what} answers again`);
  }
}

export interface LoaderSourcesOptions<T> {
  /** Start of every log line ("ingress x", "auther y"). */
  prefix: string;
  logger: WarnLogger;
  filePath?: string;
  redis?: RedisSourceConfig;
  http?: HttpSourceConfig;
  /** The items of a file or of an http body. */
  parse(text: string): T[];
  /** The items of a Redis key. */
  fromRedis(data: RedisData): T[];
  /** Called before each read of the file (the owner's FilePoller marks its version). */
  beforeFile?(): Promise<void>;
}

/**
 * The `file`, `redis` and `http` sources of one ingress or auther. Each read gives the source's
 * items, or undefined when the source is not configured or failed (a failure is logged once
 * through the source's own SourceHealth, its recovery at info): what the owner does with a
 * failed round is its own rule.
 */
export class LoaderSources<T> {
  readonly #opts: LoaderSourcesOptions<T>;
  readonly #redis: RedisSource | undefined;
  readonly #health: { file: SourceHealth; redis: SourceHealth; http: SourceHealth };

  constructor(opts: LoaderSourcesOptions<T>) {
    this.#opts = opts;
    this.#redis = opts.redis ? new RedisSource(opts.redis) : undefined;
    const h = (): SourceHealth => new SourceHealth(opts.logger, opts.prefix);
    this.#health = { file: h(), redis: h(), http: h() };
  }

  /** Some source besides inline items is configured. */
  get external(): boolean {
    return Boolean(this.#opts.filePath || this.#redis || this.#opts.http);
  }

  async #read(health: SourceHealth, what: string, load: () => Promise<T[]>): Promise<T[] | undefined> {
    try {
      const items = await load();
      health.ok(what);
      return items;
    } catch (err) {
      health.failed(err);
      return undefined;
    }
  }

  async file(): Promise<T[] | undefined> {
    const path = this.#opts.filePath;
    if (!path) return undefined;
    await this.#opts.beforeFile?.();
    return this.#read(this.#health.file, `file ${path}`, async () => {
      try {
        return this.#opts.parse(await readFile(path, 'utf8'));
      } catch (err) {
        throw new Error(`file ${path}: ${(err as Error).message}`, { cause: err });
      }
    });
  }

  redis(): Promise<T[] | undefined> {
    const r = this.#redis;
    if (!r) return Promise.resolve(undefined);
    return this.#read(this.#health.redis, r.label, async () => this.#opts.fromRedis(await r.load()));
  }

  http(): Promise<T[] | undefined> {
    const h = this.#opts.http;
    if (!h) return Promise.resolve(undefined);
    return this.#read(this.#health.http, `http ${h.url}`, async () => this.#opts.parse(await loadHttpText(h)));
  }

  close(): void {
    this.#redis?.close();
  }
}

/**
 * Runs `fn` one call at a time: a call while one runs waits for one more run after it, shared by
 * all who asked meanwhile. A source slower than the reload period then queues no more than one
 * reload, and an older answer never overwrites a newer one.
 */
export function coalesced(fn: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  let queued: Promise<void> | undefined;
  const start = (): Promise<void> => {
    const p = fn().finally(() => {
      if (running === p) running = undefined;
    });
    running = p;
    return p;
  };
  return () => {
    if (!running) return start();
    queued ??= running
      .catch(() => undefined)
      .then(() => {
        queued = undefined;
        return start();
      });
    return queued;
  };
}

export interface HttpPluginConfig {
  /** The plugin's URL. */
  url: string;
  timeoutMs?: number;
  /** `tls` of the plugin: with it, the certificate is checked only when `secure`. */
  tls?: { secure?: boolean; serverName?: string };
}

/**
 * POSTs `body` as JSON to an HTTP plugin (gost's plugin protocol) and returns the decoded JSON
 * answer; anything but status 200 with a JSON body is an error.
 */
export async function postPluginJson(cfg: HttpPluginConfig, body: unknown): Promise<unknown> {
  const text = await pluginRequest(cfg, 'POST', body);
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`plugin ${cfg.url}: the answer is not JSON`);
  }
}

/**
 * One request to an HTTP plugin: `method` to the plugin's URL (with `query` added), `body` sent
 * as JSON when given. Resolves with the answer's text on status 200; any other status, a
 * connection error or an answer over 1 MiB is an error that names the plugin. `timeoutMs`
 * bounds the whole exchange (connect, request, the answer to its last byte), so a plugin that
 * drips its answer cannot hold a login (or a registration) for longer.
 */
export function pluginRequest(cfg: HttpPluginConfig, method: string, body?: unknown, query?: Record<string, string>): Promise<string> {
  const ms = cfg.timeoutMs && cfg.timeoutMs > 0 ? cfg.timeoutMs : SOURCE_TIMEOUT_MS;
  const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const url = new URL(cfg.url);
  for (const [k, v] of Object.entries(query ?? {})) url.searchParams.set(k, v);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = (url.protocol === 'https:' ? require('node:https') : require('node:http')) as typeof import('node:https');
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (data) headers['Content-Length'] = String(data.length);
  return new Promise((resolve, reject) => {
    const req = mod.request(
      url,
      {
        method,
        headers,
        rejectUnauthorized: cfg.tls?.secure ?? false,
        servername: cfg.tls?.serverName || undefined,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > 1024 * 1024) req.destroy(new Error('answer larger than 1 MiB'));
          else chunks.push(c);
        });
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`plugin ${cfg.url}: status ${res.statusCode} (expected 200)`));
          resolve(Buffer.concat(chunks).toString('utf8'));
        });
        res.on('error', (err) => reject(new Error(`plugin ${cfg.url}: ${err.message}`)));
      },
    );
    const deadline = setTimeout(() => req.destroy(new Error(`no complete answer within ${ms} ms`)), ms);
    req.on('close', () => clearTimeout(deadline));
    req.on('error', (err) => reject(new Error(err.message.startsWith('plugin ') ? err.message : `plugin ${cfg.url}: ${err.message}`)));
    req.end(data);
  });
}
